package connections_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/text"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a server for cfg on a loopback listener of network and
// returns it with the address to dial; cleanup closes it.
func serve(t testing.TB, network string, cfg connections.Config) (*connections.Server, string) {
	t.Helper()
	cfg.Logger = testkit.Logger(t)
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t testing.TB, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func echo(c connections.Connection, data []byte) { c.SendBytes(data, false) }

func TestTextEchoTransports(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run("transport="+network, func(t *testing.T) {
				_, addr := serve(t, network, connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
					Protocol: text.New(), Transport: network,
					Handler: connections.Handler{OnMessage: echo},
				})
				c := dial(t, network, addr)
				r := bufio.NewReader(c)
				// Three pipelined lines, the last split across writes.
				io.WriteString(c, "one\ntwo\r\nthr")
				io.WriteString(c, "ee\n")
				for _, want := range []string{"one\n", "two\n", "three\n"} {
					got, err := r.ReadString('\n')
					if err != nil || got != want {
						t.Fatalf("read %q, %v; want %q", got, err, want)
					}
				}
			})
		}
	})
}

func TestRawSeedBenchmarkShape(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const resp = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello"
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool, Handler: connections.Handler{
			OnMessage: func(c connections.Connection, _ []byte) { c.Send(resp, false) },
		}})
		c := dial(t, "tcp", addr)
		buf := make([]byte, len(resp))
		for i := 0; i < 100; i++ {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != resp {
				t.Fatalf("round %d: %q, %v", i, buf, err)
			}
		}
	})
}

func TestConnectionInfoAndClose(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		var closed atomic.Int32
		var connected atomic.Int32
		s, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{
				OnConnect: func(c connections.Connection) {
					connected.Add(1)
					c.SetContext("user-1")
					c.Send("welcome", false)
				},
				OnMessage: func(c connections.Connection, data []byte) {
					if string(data) == "quit" {
						c.Send("bye", false)
						c.Close()
						return
					}
					c.Send(fmt.Sprintf("%v:%d", c.Context(), c.BytesRead()), false)
				},
				OnClose: func(connections.Connection) { closed.Add(1) },
			},
		})
		c := dial(t, "tcp", addr)
		r := bufio.NewReader(c)
		if l, _ := r.ReadString('\n'); l != "welcome\n" {
			t.Fatalf("greeting %q", l)
		}
		io.WriteString(c, "hi\n")
		if l, _ := r.ReadString('\n'); l != "user-1:3\n" {
			t.Fatalf("got %q", l)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "listing", func() bool { return len(s.Connections()) == 1 })
		info := s.Connections()[0]
		if info.Protocol != "text" || info.RemoteAddr != c.LocalAddr().String() || info.BytesIn != 3 || info.Engine != engine.Name {
			t.Fatalf("info %+v", info)
		}
		io.WriteString(c, "quit\n")
		if l, _ := r.ReadString('\n'); l != "bye\n" {
			t.Fatalf("got %q", l)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("after close: %v, want EOF", err)
		}
		c.Close() // or the server lingers, waiting for it
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { return closed.Load() == 1 && s.Stats().Connections == 0 })
		if st := s.Stats(); st.Connections != 0 || st.Accepted != 1 || st.Requests != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestBadInputClosesOnlyThatConnection sends an over-long line on one
// connection while another keeps working.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		var errs atomic.Int32
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol:       text.New(),
			MaxPackageSize: 64,
			Handler: connections.Handler{
				OnMessage: echo,
				OnError:   func(connections.Connection, error) { errs.Add(1) },
			},
		})
		good := dial(t, "tcp", addr)
		bad := dial(t, "tcp", addr)
		io.WriteString(bad, strings.Repeat("x", 200))
		if _, err := io.ReadAll(bad); err != nil {
			t.Fatalf("bad connection: %v, want clean close", err)
		}
		io.WriteString(good, "still here\n")
		if l, _ := bufio.NewReader(good).ReadString('\n'); l != "still here\n" {
			t.Fatalf("good connection got %q", l)
		}
		if errs.Load() != 1 {
			t.Fatalf("OnError ran %d times, want 1", errs.Load())
		}
	})
}

func TestPanicInCallbackIsRecovered(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		var gotErr atomic.Value
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, data []byte) {
					if string(data) == "boom" {
						panic("user bug")
					}
					echo(c, data)
				},
				OnError: func(_ connections.Connection, err error) { gotErr.Store(err) },
			},
		})
		c1 := dial(t, "tcp", addr)
		io.WriteString(c1, "boom\n")
		if _, err := io.ReadAll(c1); err != nil {
			t.Fatalf("panicking connection: %v", err)
		}
		if err, _ := gotErr.Load().(error); !errors.Is(err, connections.ErrPanic) {
			t.Fatalf("OnError got %v, want ErrPanic", err)
		}
		c2 := dial(t, "tcp", addr)
		io.WriteString(c2, "ok\n")
		if l, _ := bufio.NewReader(c2).ReadString('\n'); l != "ok\n" {
			t.Fatalf("got %q", l)
		}
	})
}

func TestReplyErrorIsSentBeforeClose(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool, Protocol: rejectAll{}})
		c := dial(t, "tcp", addr)
		io.WriteString(c, "anything")
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "NO\n" {
			t.Fatalf("got %q, %v", b, err)
		}
	})
}

type rejectAll struct{ text.Protocol }

func (rejectAll) Input(protocols.Conn, []byte) (int, error) {
	return 0, &protocols.ReplyError{Err: errors.New("reject: no"), Reply: []byte("NO\n")}
}

// TestSendBufferFullAndDrain streams far more than the send buffer holds
// to a reader that stops until the buffer is full and then reads until it
// has drained, three times over: OnBufferFull and OnBufferDrain alternate,
// and every byte the server queued arrives, none it was refused.
func TestSendBufferFullAndDrain(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const (
			limit  = 64 << 10
			rounds = 3
		)
		var full, drained, queued atomic.Int64
		var stop atomic.Bool
		chunk := strings.Repeat("y", 16<<10)
		fill := func(c connections.Connection) {
			for !stop.Load() && queued.Load() < 1<<30 {
				if c.Send(chunk, false) != nil {
					return
				}
				queued.Add(int64(len(chunk)))
			}
			c.Close()
		}
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			MaxSendBufferSize: limit,
			Handler: connections.Handler{
				OnMessage:     func(c connections.Connection, _ []byte) { fill(c) },
				OnBufferFull:  func(connections.Connection) { full.Add(1) },
				OnBufferDrain: func(c connections.Connection) { drained.Add(1); fill(c) },
			},
		})
		c := dial(t, "tcp", addr)
		io.WriteString(c, "go")
		var got int64
		buf := make([]byte, 64<<10)
		read := func(until func() bool) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for !until() {
				if time.Now().After(deadline) {
					t.Fatalf("stuck: full %d, drained %d, read %d", full.Load(), drained.Load(), got)
				}
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				n, err := c.Read(buf)
				got += int64(n)
				var ne net.Error
				if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
					if err == io.EOF {
						return
					}
					t.Fatal(err)
				}
			}
		}
		for r := int64(1); r <= rounds; r++ {
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnBufferFull", func() bool { return full.Load() >= r })
			if r == rounds {
				stop.Store(true)
			}
			read(func() bool { return drained.Load() >= r })
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		got += int64(len(rest))
		if got != queued.Load() {
			t.Fatalf("received %d bytes, queued %d", got, queued.Load())
		}
		if full.Load() < rounds || drained.Load() < rounds {
			t.Fatalf("OnBufferFull %d, OnBufferDrain %d times; want %d each", full.Load(), drained.Load(), rounds)
		}
	})
}

func TestPauseResume(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		var paused sync.Map
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
				if string(data) == "pause" {
					c.PauseRecv()
					paused.Store("c", c)
					return
				}
				echo(c, data)
			}},
		})
		c := dial(t, "tcp", addr)
		r := bufio.NewReader(c)
		io.WriteString(c, "pause\nafter\n")
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "pause", func() bool { _, ok := paused.Load("c"); return ok })
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := r.ReadByte(); err == nil {
			t.Fatal("got data while paused")
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		v, _ := paused.Load("c")
		v.(connections.Connection).ResumeRecv()
		if l, _ := r.ReadString('\n'); l != "after\n" {
			t.Fatalf("got %q", l)
		}
	})
}

func TestSendFromOtherGoroutines(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const n = 2000
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				var wg sync.WaitGroup
				for g := 0; g < 4; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < n/4; i++ {
							c.Send("x", false)
						}
					}()
				}
				go func() { wg.Wait(); c.Close() }()
			}},
		})
		c := dial(t, "tcp", addr)
		io.WriteString(c, "go\n")
		b, err := io.ReadAll(c)
		if err != nil || len(b) != 2*n {
			t.Fatalf("read %d bytes, %v; want %d", len(b), err, 2*n)
		}
	})
}

func TestUDPEcho(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(connections.Config{
		Protocol: text.New(), Transport: "udp",
		Logger: testkit.Logger(t),
		Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
			c.Send("re:"+string(d), false)
			c.Close() // must not close the shared socket
		}},
	})
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	defer func() { s.Close(); <-done }()
	c := dial(t, "udp", pc.LocalAddr().String())
	buf := make([]byte, 100)
	for _, m := range []string{"a", "b"} {
		io.WriteString(c, m+"\n")
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "re:"+m+"\n" {
			t.Fatalf("got %q, %v", buf[:n], err)
		}
	}
}

func TestTLS(t *testing.T) {
	cert := testkit.SelfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(connections.Config{
		Protocol: text.New(), Transport: "tls",
		Logger:  testkit.Logger(t),
		Handler: connections.Handler{OnMessage: echo},
	})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	defer func() { s.Close(); <-done }()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "secure\n")
	if l, _ := bufio.NewReader(c).ReadString('\n'); l != "secure\n" {
		t.Fatalf("got %q", l)
	}
}

// TestShutdownFinishesWork: a request in flight when Shutdown starts gets
// its answer; new connections are refused.
func TestShutdownFinishesWork(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		release := make(chan struct{})
		started := make(chan struct{})
		s, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				close(started)
				<-release
				c.SendBytes(d, false)
				c.Close()
			}},
		})
		c := dial(t, "tcp", addr)
		io.WriteString(c, "work\n")
		<-started
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- s.Shutdown(ctx)
		}()
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "listener closed", func() bool {
			nc, err := net.Dial("tcp", addr)
			if err == nil {
				nc.Close()
			}
			return err != nil
		})
		close(release)
		if b, err := io.ReadAll(c); err != nil || string(b) != "work\n" {
			t.Fatalf("got %q, %v", b, err)
		}
		c.Close() // or the server lingers, waiting for it
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		s, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool, Protocol: text.New()})
		c := dial(t, "tcp", addr)
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "accept", func() bool { return s.Stats().Connections == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want deadline exceeded", err)
		}
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("idle client: %v", err)
		}
	})
}
