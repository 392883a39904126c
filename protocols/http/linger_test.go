//go:build unix

package http_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	nethttp "net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// sockBuf returns a Control function that sets a socket buffer size.
func sockBuf(opt, size int) func(string, string, syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size) }); err != nil {
			return err
		}
		return serr
	}
}

// TestTooLargeBodyGets413WhileSending: a client announces a body over the
// limit and keeps sending it; the server answers 413 at the head and
// closes. The client must read the 413 instead of losing it to a reset:
// the server shuts down its sending side after the answer and reads and
// drops the rest of the body for a while before it closes. Small socket
// buffers on both sides make sure the body cannot hide in the kernel.
func TestTooLargeBodyGets413WhileSending(t *testing.T) {
	tests := []struct {
		name string
		body int64 // announced Content-Length
		// sequential clients send the whole body, then read: such a client
		// fails at its first write error and never sees a 413 sent early.
		// The others read while a writer keeps sending.
		sequential bool
	}{
		{name: "send all then read", body: 512 << 10, sequential: true},
		{name: "read while sending", body: 1 << 30},
	}
	chunk := bytes.Repeat([]byte("b"), 16<<10)
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		lc := net.ListenConfig{Control: sockBuf(syscall.SO_RCVBUF, 16<<10)}
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ts := serveListener(t, e, ln, http.New(), 64<<10, appHandler(t))
		d := net.Dialer{Control: sockBuf(syscall.SO_SNDBUF, 16<<10), Timeout: ioTimeout}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				for round := 0; round < 3; round++ {
					nc, err := d.Dial("tcp", ts.addr)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { nc.Close() })
					nc.SetDeadline(time.Now().Add(ioTimeout))
					head := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.FormatInt(tc.body, 10) + "\r\n\r\n"
					if _, err := io.WriteString(nc, head); err != nil {
						t.Fatal(err)
					}
					var sent atomic.Int64
					writerDone := make(chan error, 1)
					if tc.sequential {
						for sent.Load() < tc.body {
							k, err := nc.Write(chunk)
							if err != nil {
								t.Fatalf("round %d: writing the body after %d bytes: %v", round, sent.Load(), err)
							}
							sent.Add(int64(k))
						}
					} else {
						go func() {
							for {
								k, err := nc.Write(chunk)
								sent.Add(int64(k))
								if err != nil {
									writerDone <- err
									return
								}
							}
						}()
						// Read once a good part of the body is on its way
						// (or the server has stopped taking it).
						for deadline := time.Now().Add(time.Second); sent.Load() < 256<<10 && len(writerDone) == 0 && time.Now().Before(deadline); {
							time.Sleep(time.Millisecond)
						}
					}
					resp, err := nethttp.ReadResponse(bufioReader(nc), nil)
					if err != nil {
						t.Fatalf("round %d: reading the answer after sending %d bytes: %v", round, sent.Load(), err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 413 || !resp.Close || err != nil {
						t.Fatalf("round %d: %d close=%v %q %v; want 413 and close", round, resp.StatusCode, resp.Close, body, err)
					}
					nc.Close()
					if !tc.sequential {
						<-writerDone
					}
				}
			})
		}
	})
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
