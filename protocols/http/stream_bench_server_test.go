//go:build unix

package http_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// discardClient sends req on a new connection to addr and reads and drops
// everything until the connection closes; done is closed then.
func discardClient(b *testing.B, addr, req string) (done chan struct{}) {
	b.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(nc, req); err != nil {
		b.Fatal(err)
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer nc.Close()
		io.Copy(io.Discard, nc)
	}()
	return done
}

// BenchmarkStreamWriteLoopback streams 1 KiB pieces over a loopback
// socket to a client that reads as fast as it can: goes's StreamWriter
// (a producer goroutine backing off on ErrSendBufferFull until
// OnBufferDrain) side by side with net/http's ResponseWriter, Write then
// Flush per piece (chunked transfer coding). Allocations count the whole
// process: server, client and producer.
func BenchmarkStreamWriteLoopback(b *testing.B) {
	piece := bytes.Repeat([]byte("x"), 1024)
	// A producer that outruns the socket grows the send buffer up to
	// MaxSendBufferSize (1 MiB by default); the runtime lends buffers by
	// size class up to 4 MiB, so both limits run without allocating.
	for _, sendBuf := range []int{0, 32 << 10} {
		name := "impl=goes/sendbuf=1MiB"
		if sendBuf > 0 {
			name = "impl=goes/sendbuf=32KiB"
		}
		b.Run(name, func(b *testing.B) {
			drained := make(chan struct{}, 1)
			held := make(chan *http.StreamWriter, 1)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ts := serveConfig(b, testkit.Engine{Name: connections.EngineAuto}, ln, connections.Config{Protocol: http.New(), MaxSendBufferSize: sendBuf, Handler: connections.Handler{
				OnMessage: func(c connections.Connection, _ []byte) {
					w, err := http.Stream(c, &http.Response{Close: true})
					if err != nil {
						b.Error(err)
						return
					}
					held <- w
				},
				OnBufferDrain: func(connections.Connection) {
					select {
					case drained <- struct{}{}:
					default:
					}
				},
			}})
			done := discardClient(b, ts.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			w := <-held
			write := func(f func() error) {
				for {
					err := f()
					if !errors.Is(err, connections.ErrSendBufferFull) {
						if err != nil {
							b.Fatal(err)
						}
						return
					}
					select {
					case <-drained:
					case <-time.After(ioTimeout):
						b.Fatal("no OnBufferDrain")
					}
				}
			}
			b.SetBytes(int64(len(piece)))
			b.ReportAllocs()
			for b.Loop() {
				write(func() error { return w.Write(piece) })
			}
			write(func() error { return w.End() })
			<-done
		})
	}
	b.Run("impl=net-http", func(b *testing.B) {
		type rw struct {
			w nethttp.ResponseWriter
			f nethttp.Flusher
		}
		held := make(chan rw, 1)
		finish := make(chan struct{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			w.Header().Set("Connection", "close")
			held <- rw{w, w.(nethttp.Flusher)}
			<-finish
		})}
		served := make(chan struct{})
		go func() { defer close(served); hs.Serve(ln) }()
		defer func() { hs.Close(); <-served }()
		done := discardClient(b, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		h := <-held
		b.SetBytes(int64(len(piece)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.w.Write(piece); err != nil {
				b.Fatal(err)
			}
			h.f.Flush()
		}
		close(finish)
		<-done
	})
}
