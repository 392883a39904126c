package connections_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/text"
)

// TestPipelinedBatchIsOneWrite sends 16 requests in one segment: their 16
// answers leave in one write.
func TestPipelinedBatchIsOneWrite(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler:  connections.Handler{OnMessage: echo},
		})
		c := dial(t, "tcp", addr)
		var req strings.Builder
		for i := 0; i < 16; i++ {
			fmt.Fprintf(&req, "request %02d\n", i)
		}
		if _, err := io.WriteString(c, req.String()); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, req.Len())
		if _, err := io.ReadFull(c, got); err != nil || string(got) != req.String() {
			t.Fatalf("got %q, %v", got, err)
		}
		// The counters move just after the write.
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "bytes out", func() bool { return s.Stats().BytesOut == uint64(req.Len()) })
		if st := s.Stats(); st.Requests != 16 || st.Writes != 1 {
			t.Fatalf("stats %+v: want 16 requests answered by 1 write", st)
		}
	})
}

// TestManyConnectionsAcrossLoops runs concurrent clients over several
// loops; every one gets its own answers and the listing sees them all.
func TestManyConnectionsAcrossLoops(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const clients, rounds = 40, 20
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool, Loops: 3,
			Protocol: text.New(),
			Handler:  connections.Handler{OnMessage: echo},
		})
		errc := make(chan error, clients)
		conns := make([]net.Conn, clients)
		for i := range conns {
			conns[i] = dial(t, "tcp", addr)
		}
		for i, c := range conns {
			go func() {
				r := bufio.NewReader(c)
				for j := 0; j < rounds; j++ {
					want := fmt.Sprintf("client %d round %d\n", i, j)
					if _, err := io.WriteString(c, want); err != nil {
						errc <- err
						return
					}
					if got, err := r.ReadString('\n'); err != nil || got != want {
						errc <- fmt.Errorf("client %d: got %q, %v; want %q", i, got, err, want)
						return
					}
				}
				errc <- nil
			}()
		}
		for range conns {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		if n := len(s.Connections()); n != clients {
			t.Fatalf("listing has %d connections, want %d", n, clients)
		}
		count := 0
		s.Each(func(connections.Connection) { count++ })
		if count != clients {
			t.Fatalf("Each saw %d connections, want %d", count, clients)
		}
	})
}

// TestBlockingCallbackWithPool: with CallbackGoroutines, a callback that
// blocks holds up only its own connection, even on a single loop.
func TestBlockingCallbackWithPool(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll engine is linux-only")
	}
	release := make(chan struct{})
	blocked := make(chan struct{})
	_, addr := serve(t, "tcp", connections.Config{
		Engine: connections.EngineEpoll, Loops: 1, CallbackGoroutines: 2,
		Protocol: text.New(),
		Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
			if string(d) == "block" {
				close(blocked)
				<-release
			}
			echo(c, d)
		}},
	})
	a := dial(t, "tcp", addr)
	io.WriteString(a, "block\n")
	<-blocked
	b := dial(t, "tcp", addr)
	io.WriteString(b, "free\n")
	if l, err := bufio.NewReader(b).ReadString('\n'); err != nil || l != "free\n" {
		t.Fatalf("second connection got %q, %v while the first blocks", l, err)
	}
	close(release)
	if l, err := bufio.NewReader(a).ReadString('\n'); err != nil || l != "block\n" {
		t.Fatalf("blocked connection got %q, %v", l, err)
	}
}

// TestEngineSelection: an engine that cannot serve a listener is a clear
// error; the default serves TLS with the standard engine.
func TestEngineSelection(t *testing.T) {
	cert := testkit.SelfSigned(t)
	tlsLn := func(t *testing.T) net.Listener {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	tcpLn := func(t *testing.T) net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	for _, tc := range []struct {
		name   string
		engine string
		ln     func(*testing.T) net.Listener
	}{
		{name: "epoll-tls", engine: connections.EngineEpoll, ln: tlsLn},
		{name: "unknown", engine: "iouring", ln: tcpLn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := connections.NewServer(connections.Config{Engine: tc.engine, Logger: testkit.Logger(t)})
			defer s.Close()
			if err := s.Serve(tc.ln(t)); !errors.Is(err, connections.ErrEngineUnsupported) {
				t.Fatalf("Serve: %v, want ErrEngineUnsupported", err)
			}
		})
	}
}

// TestAsyncAnswerWithPause: OnMessage pauses, answers from another
// goroutine and resumes there, possibly before OnMessage has returned;
// pipelined requests are answered in order, none is left behind.
func TestAsyncAnswerWithPause(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const n = 8
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				c.PauseRecv()
				msg := "async " + string(d)
				go func() {
					c.Send(msg, false)
					c.ResumeRecv()
				}()
			}},
		})
		for round := 0; round < 20; round++ {
			c := dial(t, "tcp", addr)
			var req strings.Builder
			for i := 0; i < n; i++ {
				fmt.Fprintf(&req, "r%d\n", i)
			}
			io.WriteString(c, req.String())
			r := bufio.NewReader(c)
			for i := 0; i < n; i++ {
				if l, err := r.ReadString('\n'); err != nil || l != fmt.Sprintf("async r%d\n", i) {
					t.Fatalf("round %d answer %d: %q, %v", round, i, l, err)
				}
			}
			c.Close()
		}
	})
}

// releasingText is the text protocol with per-connection state that it
// gives back whenever the connection idles.
type releasingText struct {
	text.Protocol
	released *atomic.Int32
}

type lineState struct{ lines int }

func (p releasingText) Input(c protocols.Conn, buf []byte) (int, error) {
	if c.State() == nil {
		c.SetState(&lineState{})
	}
	return p.Protocol.Input(c, buf)
}

func (p releasingText) ReleaseState(c protocols.Conn) {
	p.released.Add(1)
	c.SetState(nil)
}

// TestStateReleasedWhenIdle: a protocol's state is released once all
// input is delivered, not while a packet is partly received.
func TestStateReleasedWhenIdle(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		var released atomic.Int32
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: releasingText{Protocol: text.New(), released: &released},
			Handler:  connections.Handler{OnMessage: echo},
		})
		c := dial(t, "tcp", addr)
		r := bufio.NewReader(c)
		io.WriteString(c, "one\ntw")
		if l, err := r.ReadString('\n'); err != nil || l != "one\n" {
			t.Fatalf("got %q, %v", l, err)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "input read", func() bool { return s.Stats().BytesIn == 6 })
		if n := released.Load(); n != 0 {
			t.Fatalf("released %d times with a partial packet buffered", n)
		}
		io.WriteString(c, "o\n")
		if l, err := r.ReadString('\n'); err != nil || l != "two\n" {
			t.Fatalf("got %q, %v", l, err)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "release", func() bool { return released.Load() == 1 })
	})
}

// TestHalfCloseGetsWholeAnswer: a peer that shuts down its sending side
// after its request still gets the whole answer, then the close.
func TestHalfCloseGetsWholeAnswer(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const total = 8 << 20
		chunk := strings.Repeat("z", 64<<10)
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), MaxSendBufferSize: 2 * total,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				for n := 0; n < total; n += len(chunk) {
					c.Send(chunk, true)
				}
			}},
		})
		c := dial(t, "tcp", addr)
		io.WriteString(c, "big\n")
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		if err != nil || len(b) != total {
			t.Fatalf("read %d bytes, %v; want %d", len(b), err, total)
		}
	})
}
