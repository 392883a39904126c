//go:build unix

package connections_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
)

// smallBuffers makes the kernel hold little on a socket, so that a peer
// that does not read backs up into the proxy quickly. A receive buffer
// gets 256 KiB, not less: with a window below loopback's 64 KiB segments,
// Linux's sender sat in zero-window probing for seconds (seen here with
// 16 KiB: snd_wnd 12288 < mss 13312, persist timer, rwnd_limited 99.7%).
func smallBuffers(opt int) func(network, address string, rc syscall.RawConn) error {
	size := 16 << 10
	if opt == syscall.SO_RCVBUF {
		size = 256 << 10
	}
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size) })
		if err != nil {
			return err
		}
		return serr
	}
}

// pattern is byte i of the proxied stream.
func pattern(i int) byte { return byte(i % 251) }

// slowConsumer accepts one connection and reads nothing from it until
// start is closed; then it reads to EOF and reports how many bytes of the
// pattern it got in order (or an error at the first wrong byte).
type slowConsumer struct {
	addr  string
	start chan struct{}
	done  chan error
	n     atomic.Int64
}

func newSlowConsumer(t testing.TB) *slowConsumer {
	t.Helper()
	lc := net.ListenConfig{Control: smallBuffers(syscall.SO_RCVBUF)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := &slowConsumer{addr: ln.Addr().String(), start: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			sc.done <- err
			return
		}
		defer c.Close()
		select {
		case <-sc.start:
		case <-time.After(20 * time.Second):
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReaderSize(c, 64<<10)
		i := 0
		for {
			b, err := r.ReadByte()
			if err == io.EOF {
				sc.done <- nil
				return
			}
			if err != nil {
				sc.done <- fmt.Errorf("after %d bytes: %w", i, err)
				return
			}
			if b != pattern(i) {
				sc.done <- fmt.Errorf("byte %d = %d, want %d", i, b, pattern(i))
				return
			}
			i++
			sc.n.Store(int64(i))
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return sc
}

// sendPattern writes total bytes of the pattern to c and half-closes it,
// then reads c to EOF; done gets the first error.
func sendPattern(c net.Conn, total int, done chan<- error) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 32<<10)
	for off := 0; off < total; {
		n := min(len(buf), total-off)
		for i := range n {
			buf[i] = pattern(off + i)
		}
		if _, err := c.Write(buf[:n]); err != nil {
			done <- fmt.Errorf("write at %d: %w", off, err)
			return
		}
		off += n
	}
	c.(*net.TCPConn).CloseWrite()
	_, err := io.Copy(io.Discard, c)
	done <- err
}

// TestPipeProxyBackpressure builds a TCP proxy: each accepted connection
// is piped both ways to a Client connected to a consumer that does not
// read at first. The proxy must pause the sender's connection with the
// Client's buffer at its limit plus at most one read, deliver every byte
// in order once the consumer reads, and pass the end of the stream on.
// With connect=late the Client connects only after the pause: the queue
// before the connection is bounded the same way.
func TestPipeProxyBackpressure(t *testing.T) {
	const (
		total    = 4 << 20
		limit    = 64 << 10
		maxChunk = 64 << 10 // the epoll engine's read buffer; the std engine reads 4 KiB
	)
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		for _, late := range []bool{false, true} {
			t.Run(fmt.Sprint("connect=", map[bool]string{false: "now", true: "late"}[late]), func(t *testing.T) {
				consumer := newSlowConsumer(t)
				clients := make(chan *connections.Client, 1)
				var fullAt atomic.Int64 // largest SendBufferLen seen in OnBufferFull
				srv, addr := serve(t, "tcp", connections.Config{
					Engine: engine.Name, CallbackGoroutines: engine.Pool,
					Handler: connections.Handler{OnConnect: func(c connections.Connection) {
						cl, err := connections.NewClient("tcp://"+consumer.addr, connections.ClientConfig{
							Config: connections.Config{
								MaxSendBufferSize: limit,
								Logger:            testkit.Logger(t),
								Handler: connections.Handler{OnBufferFull: func(c connections.Connection) {
									if n := int64(c.SendBufferLen()); n > fullAt.Load() {
										fullAt.Store(n)
									}
								}},
							},
							Dialer: &net.Dialer{Control: smallBuffers(syscall.SO_SNDBUF)},
						})
						if err != nil {
							t.Error(err)
							c.Close()
							return
						}
						if err := connections.Pipe(c, cl); err != nil {
							t.Error(err)
						}
						if err := connections.Pipe(cl, c); err != nil {
							t.Error(err)
						}
						if !late {
							cl.Connect()
						}
						clients <- cl
					}},
				})
				sent := make(chan error, 1)
				go sendPattern(dial(t, "tcp", addr), total, sent)
				cl := <-clients
				stopOnCleanup(t, cl)

				// Sample the Client's buffer for the whole transfer.
				var peak atomic.Int64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						if n := int64(cl.SendBufferLen()); n > peak.Load() {
							peak.Store(n)
						}
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Microsecond):
						}
					}
				}()
				defer func() { close(stop); wg.Wait() }()

				testkit.Eventually(t, testkit.Wait, testkit.Poll, "the proxy pausing the sender's connection", func() bool {
					cs := srv.Connections()
					return len(cs) == 1 && cs[0].State == "paused"
				})
				// The pause follows a full buffer (which may have shrunk
				// a little since, into the kernel) and holds it bounded.
				if n := cl.SendBufferLen(); fullAt.Load() == 0 || n > limit+maxChunk {
					t.Fatalf("paused with %d bytes queued for the consumer (OnBufferFull at %d), want at most %d",
						n, fullAt.Load(), limit+maxChunk)
				}
				if late {
					cl.Connect()
				}
				close(consumer.start)
				select {
				case err := <-consumer.done:
					if err != nil {
						t.Fatalf("consumer: %v", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("consumer got %d of %d bytes", consumer.n.Load(), total)
				}
				if n := consumer.n.Load(); n != total {
					t.Fatalf("consumer got %d bytes, want %d", n, total)
				}
				if err := <-sent; err != nil {
					t.Fatalf("sender: %v", err)
				}
				if p, f := peak.Load(), fullAt.Load(); p > limit+maxChunk || f > limit+maxChunk {
					t.Fatalf("Client buffer peaked at %d (%d at OnBufferFull), limit %d + one read %d", p, f, limit, maxChunk)
				}
				t.Logf("%d bytes through the pipe; Client buffer peak %d (limit %d)", total, peak.Load(), limit)
			})
		}
	})
}

// TestPipeClosesOtherSide: when the destination goes away, the source is
// closed, and the other way round.
func TestPipeClosesOtherSide(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		// The consumer reads one line and hangs up.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Close()
		}()
		var srcClosed atomic.Bool
		clients := make(chan *connections.Client, 1)
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Handler: connections.Handler{
				OnConnect: func(c connections.Connection) {
					cl, err := connections.NewClient("tcp://"+ln.Addr().String(), connections.ClientConfig{Config: connections.Config{Logger: testkit.Logger(t)}})
					if err != nil {
						t.Error(err)
						return
					}
					clients <- cl
					connections.Pipe(c, cl)
					connections.Pipe(cl, c)
					cl.Connect()
				},
				OnClose: func(connections.Connection) { srcClosed.Store(true) },
			},
		})
		c := dial(t, "tcp", addr)
		io.WriteString(c, "hello\n")
		stopOnCleanup(t, <-clients)
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read %d, %v; want EOF once the consumer hung up", n, err)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose of the source", srcClosed.Load)
	})
}

// TestPipeErrors: what Pipe refuses.
func TestPipeErrors(t *testing.T) {
	cl := newClient(t, "tcp://127.0.0.1:1", connections.ClientConfig{})
	gone := make(chan struct{})
	closedCl2, err := connections.NewClient("tcp://127.0.0.1:1", connections.ClientConfig{Config: connections.Config{
		Logger: testkit.Logger(t), Handler: connections.Handler{OnClose: func(connections.Connection) { close(gone) }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	closedCl2.Close()
	<-gone
	if err := connections.Pipe(cl, cl); err == nil {
		t.Error("Pipe to itself: no error")
	}
	if err := connections.Pipe(cl, closedCl2); !errors.Is(err, connections.ErrClosed) {
		t.Errorf("Pipe to a closed Client: %v", err)
	}
	if err := connections.Pipe(closedCl2, cl); !errors.Is(err, connections.ErrClosed) {
		t.Errorf("Pipe from a closed Client: %v", err)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	s := connections.NewServer(connections.Config{Logger: testkit.Logger(t), Handler: connections.Handler{
		OnMessage: func(c connections.Connection, _ []byte) { res <- connections.Pipe(c, cl) },
	}})
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	defer func() { s.Close(); <-done }()
	dial(t, "udp", pc.LocalAddr().String()).Write([]byte("x"))
	if err := <-res; !errors.Is(err, connections.ErrPipeUnsupported) {
		t.Errorf("Pipe from a datagram: %v", err)
	}
}
