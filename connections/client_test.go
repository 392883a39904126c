package connections_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
)

// events records a Client's callbacks in order. The callbacks append
// without a lock: under -race, two callbacks that overlapped would be
// reported. Read it only after done is closed.
type events struct {
	log  []string
	msgs []string
	errs []error
	done chan struct{} // closed by the OnClose numbered closes
	left int
}

func newEvents(closes int) *events { return &events{done: make(chan struct{}), left: closes} }

func (e *events) handler() connections.Handler {
	return connections.Handler{
		OnConnect: func(c connections.Connection) { e.log = append(e.log, "connect") },
		OnMessage: func(c connections.Connection, data []byte) {
			e.log = append(e.log, "message")
			e.msgs = append(e.msgs, string(data))
		},
		OnError: func(c connections.Connection, err error) {
			e.log = append(e.log, "error")
			e.errs = append(e.errs, err)
		},
		OnClose: func(c connections.Connection) {
			e.log = append(e.log, "close")
			if e.left--; e.left == 0 {
				close(e.done)
			}
		},
	}
}

func (e *events) wait(t testing.TB) {
	t.Helper()
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for OnClose")
	}
}

func newClient(t testing.TB, uri string, cfg connections.ClientConfig) *connections.Client {
	t.Helper()
	cfg.Logger = testkit.Logger(t)
	cl, err := connections.NewClient(uri, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, cl)
	return cl
}

// stopOnCleanup destroys cl when the test ends and waits until its
// goroutines are gone (they log through t).
func stopOnCleanup(t testing.TB, cl *connections.Client) {
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		cl.Shutdown(ctx)
	})
}

func TestClientURIs(t *testing.T) {
	cases := []struct {
		name, uri, remote, transport string
		text                         bool // cfg.Protocol
		proto                        string
		bad                          bool
	}{
		{name: "tcp", uri: "tcp://127.0.0.1:80", remote: "127.0.0.1:80", transport: "tcp"},
		{name: "tcp with protocol", uri: "tcp://[::1]:9", text: true, remote: "[::1]:9", transport: "tcp", proto: "text"},
		{name: "tls", uri: "tls://example.com:443", remote: "example.com:443", transport: "tls"},
		{name: "ssl", uri: "ssl://example.com:443", remote: "example.com:443", transport: "tls"},
		{name: "unix", uri: "unix:///tmp/x.sock", remote: "/tmp/x.sock", transport: "unix"},
		// Protocol URIs are goes.NewClient's (and tested there).
		{name: "text", uri: "text://localhost:7", bad: true},
		{name: "frame", uri: "frame://[::1]:9", bad: true},
		{name: "ws", uri: "ws://example.com/chat?room=1", bad: true},
		{name: "wss", uri: "wss://example.com", bad: true},
		{name: "no scheme", uri: "127.0.0.1:80", bad: true},
		{name: "no port", uri: "tcp://127.0.0.1", bad: true},
		{name: "no host", uri: "tcp://:80", bad: true},
		{name: "path on tcp", uri: "tcp://127.0.0.1:80/x", bad: true},
		{name: "http", uri: "http://127.0.0.1:80", bad: true},
		{name: "udp", uri: "udp://127.0.0.1:80", remote: "127.0.0.1:80", transport: "udp"},
		{name: "unknown", uri: "gopher://127.0.0.1:70", bad: true},
		{name: "empty unix", uri: "unix://", bad: true},
		{name: "user info", uri: "tcp://me@127.0.0.1:80", bad: true},
		{name: "query", uri: "tls://127.0.0.1:80?x=1", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg connections.ClientConfig
			if tc.text {
				cfg.Protocol = text.New()
			}
			cl, err := connections.NewClient(tc.uri, cfg)
			if tc.bad {
				if !errors.Is(err, connections.ErrBadURI) {
					t.Fatalf("NewClient(%q) = %v, want ErrBadURI", tc.uri, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.RemoteAddr().String(); got != tc.remote {
				t.Errorf("RemoteAddr = %q, want %q", got, tc.remote)
			}
			if got := cl.Transport(); got != tc.transport {
				t.Errorf("Transport = %q, want %q", got, tc.transport)
			}
			proto := ""
			if p := cl.Protocol(); p != nil {
				proto = p.Name()
			}
			if proto != tc.proto {
				t.Errorf("Protocol = %q, want %q", proto, tc.proto)
			}
			if err := cl.Send("x", false); err != nil {
				t.Errorf("Send before Connect: %v", err)
			}
		})
	}
	t.Run("epoll engine", func(t *testing.T) {
		_, err := connections.NewClient("tcp://127.0.0.1:1", connections.ClientConfig{Config: connections.Config{Engine: connections.EngineEpoll}})
		if !errors.Is(err, connections.ErrEngineUnsupported) {
			t.Fatalf("got %v, want ErrEngineUnsupported", err)
		}
	})
}

// TestClientTextEcho talks to a goes text echo server over each
// transport: messages queued before Connect go first, in order, then
// those sent from OnConnect and from another goroutine.
func TestClientTextEcho(t *testing.T) {
	cert := testkit.SelfSigned(t)
	for _, tr := range []string{"tcp", "tls", "unix"} {
		t.Run(tr, func(t *testing.T) {
			var uri string
			cfg := connections.ClientConfig{}
			switch tr {
			case "tcp":
				_, addr := serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
				uri = "tcp://" + addr
				cfg.Protocol = text.New()
			case "unix":
				_, addr := serve(t, "unix", connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
				uri = "unix://" + addr
				cfg.Protocol = text.New()
			case "tls":
				addr := serveTLS(t, cert, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
				uri = "tls://" + addr
				cfg.Protocol = text.New()
				cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true}
			}
			ev := newEvents(1)
			cfg.Handler = ev.handler()
			const n = 50
			var cl *connections.Client
			inner := cfg.Handler.OnConnect
			cfg.Handler.OnConnect = func(c connections.Connection) {
				inner(c)
				if c != cl {
					t.Errorf("OnConnect got %T %p, want the Client", c, c)
				}
				c.Send("from OnConnect", false)
			}
			onMessage := cfg.Handler.OnMessage
			cfg.Handler.OnMessage = func(c connections.Connection, data []byte) {
				onMessage(c, data)
				if len(ev.msgs) == n+2 {
					c.Close()
				}
			}
			cl = newClient(t, uri, cfg)
			if err := cl.Send("queued 1", false); err != nil {
				t.Fatal(err)
			}
			cl.SendBytes([]byte("queued 2"), false)
			cl.Connect()
			cl.Connect() // already connecting: nothing
			for i := range n - 1 {
				if err := cl.Send(fmt.Sprintf("m%d", i), false); err != nil {
					t.Fatal(err)
				}
			}
			ev.wait(t)
			if len(ev.msgs) != n+2 {
				t.Fatalf("got %d messages: %q", len(ev.msgs), ev.msgs)
			}
			if ev.msgs[0] != "queued 1" || ev.msgs[1] != "queued 2" {
				t.Fatalf("order: %q", ev.msgs[:3])
			}
			var rest []string
			for _, m := range ev.msgs[2:] {
				if m != "from OnConnect" {
					rest = append(rest, m)
				}
			}
			for i, m := range rest {
				if want := fmt.Sprintf("m%d", i); m != want {
					t.Fatalf("message %d = %q, want %q", i, m, want)
				}
			}
			if ev.log[0] != "connect" || ev.log[len(ev.log)-1] != "close" {
				t.Fatalf("events %v", ev.log)
			}
			if err := cl.Send("late", false); !errors.Is(err, connections.ErrClosed) {
				t.Fatalf("Send after close: %v", err)
			}
			if cl.BytesRead() == 0 || cl.BytesWritten() == 0 || cl.Transport() != tr {
				t.Fatalf("read %d written %d transport %q", cl.BytesRead(), cl.BytesWritten(), cl.Transport())
			}
		})
	}
}

func serveTLS(t testing.TB, cert tls.Certificate, cfg connections.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Transport = "tls"
	cfg.Logger = testkit.Logger(t)
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String()
}

// TestClientConnectFailure: a refused connect is reported to OnError as a
// *ConnectError, then OnClose runs; what was queued is dropped.
func TestClientConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connects are refused
	ev := newEvents(1)
	cl := newClient(t, "tcp://"+addr, connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
	cl.Send("dropped", false)
	cl.Connect()
	ev.wait(t)
	if strings.Join(ev.log, ",") != "error,close" {
		t.Fatalf("events %v", ev.log)
	}
	var ce *connections.ConnectError
	if !errors.As(ev.errs[0], &ce) || !errors.Is(ev.errs[0], connections.ErrConnectFailed) || !errors.Is(ev.errs[0], syscall.ECONNREFUSED) {
		t.Fatalf("error %v (%T), want a refused *ConnectError", ev.errs[0], ev.errs[0])
	}
	if ce.URI != "tcp://"+addr || !strings.Contains(ce.Error(), addr) {
		t.Fatalf("ConnectError %+v: %v", ce, ce)
	}
	if n := cl.SendBufferLen(); n != 0 {
		t.Fatalf("queue kept %d bytes", n)
	}
	if err := cl.Send("x", false); !errors.Is(err, connections.ErrClosed) {
		t.Fatalf("Send after a failed attempt: %v", err)
	}
}

// silentListener accepts connections and never answers: a TLS handshake
// with it hangs.
func silentListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestClientDialTimeout: a TLS handshake that never completes fails the
// attempt after DialTimeout.
func TestClientDialTimeout(t *testing.T) {
	addr := silentListener(t)
	ev := newEvents(1)
	cl := newClient(t, "tls://"+addr, connections.ClientConfig{
		Config:      connections.Config{Handler: ev.handler()},
		DialTimeout: 100 * time.Millisecond,
	})
	cl.Connect()
	ev.wait(t)
	if strings.Join(ev.log, ",") != "error,close" || !errors.Is(ev.errs[0], context.DeadlineExceeded) {
		t.Fatalf("events %v, errors %v", ev.log, ev.errs)
	}
}

// TestClientDestroyWhileConnecting abandons an attempt stuck in its TLS
// handshake: OnClose runs, OnError does not.
func TestClientDestroyWhileConnecting(t *testing.T) {
	addr := silentListener(t)
	ev := newEvents(1)
	cl := newClient(t, "tls://"+addr, connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
	cl.Connect()
	cl.Send("dropped", false)
	cl.Destroy()
	ev.wait(t)
	if strings.Join(ev.log, ",") != "close" {
		t.Fatalf("events %v", ev.log)
	}
}

// TestClientCloseBeforeConnect: a Client closed before Connect, or during
// a Reconnect delay, still gets its OnClose.
func TestClientCloseBeforeConnect(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("delay=", delay), func(t *testing.T) {
			ev := newEvents(1)
			cl := newClient(t, "tcp://127.0.0.1:1", connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
			if delay > 0 {
				cl.Reconnect(delay)
			}
			cl.Close()
			ev.wait(t)
			if strings.Join(ev.log, ",") != "close" {
				t.Fatalf("events %v", ev.log)
			}
		})
	}
}

// TestClientCloseWhileConnecting: Close right after Connect writes what
// was queued once connected, then closes.
func TestClientCloseWhileConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c) // until the Client closes
		got <- string(b)
	}()
	ev := newEvents(1)
	cl := newClient(t, "tcp://"+ln.Addr().String(), connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
	cl.Send("all ", false)
	cl.Connect()
	cl.Send("of it", false)
	cl.Close()
	if err := cl.Send("too late", false); !errors.Is(err, connections.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if s := <-got; s != "all of it" {
		t.Fatalf("server read %q", s)
	}
	ev.wait(t)
	if strings.Join(ev.log, ",") != "connect,close" {
		t.Fatalf("events %v", ev.log)
	}
}

// TestClientReconnect: the server hangs up after every message and the
// Client reconnects from OnClose, as the same Client with the same ID and
// context; its callbacks never overlap across connections.
func TestClientReconnect(t *testing.T) {
	var accepted atomic.Int32
	_, addr := serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnConnect: func(c connections.Connection) { accepted.Add(1) },
		OnMessage: func(c connections.Connection, data []byte) {
			c.Send("bye "+string(data), false)
			c.Close()
		},
	}})
	const rounds = 3
	ev := newEvents(rounds)
	h := ev.handler()
	onClose, onConnect := h.OnClose, h.OnConnect
	var ids []uint64
	round := 0
	h.OnConnect = func(c connections.Connection) {
		onConnect(c)
		ids = append(ids, c.ID())
		round++
		c.Send(fmt.Sprint(round), false)
	}
	h.OnClose = func(c connections.Connection) {
		onClose(c)
		if round < rounds {
			c.(*connections.Client).Reconnect(5 * time.Millisecond)
		}
	}
	cl := newClient(t, "tcp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: h}})
	cl.SetContext("mine")
	cl.Connect()
	ev.wait(t)
	if got := strings.Join(ev.msgs, ","); got != "bye 1,bye 2,bye 3" {
		t.Fatalf("messages %q", got)
	}
	if accepted.Load() != rounds || len(ids) != rounds || ids[0] != ids[1] || ids[1] != ids[2] || ids[0] != cl.ID() {
		t.Fatalf("accepted %d, ids %v, client %d", accepted.Load(), ids, cl.ID())
	}
	if cl.Context() != "mine" {
		t.Fatalf("context %v", cl.Context())
	}
	if want := uint64(rounds * len("bye 1\n")); cl.BytesRead() != want {
		t.Fatalf("BytesRead %d, want %d over all connections", cl.BytesRead(), want)
	}
}

// TestClientReconnectUntilUp: connects fail while the server is not
// there; the Client keeps trying from OnClose and gets through once it is.
func TestClientReconnectUntilUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.sock")
	var failures atomic.Int32
	connected := make(chan struct{})
	h := connections.Handler{
		OnError: func(c connections.Connection, err error) {
			if errors.Is(err, connections.ErrConnectFailed) {
				failures.Add(1)
			}
		},
		OnConnect: func(c connections.Connection) { close(connected) },
		OnClose: func(c connections.Connection) {
			select {
			case <-connected:
			default:
				c.(*connections.Client).Reconnect(2 * time.Millisecond)
			}
		},
	}
	cl := newClient(t, "unix://"+path, connections.ClientConfig{Config: connections.Config{Handler: h}})
	cl.Connect()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "two failed attempts", func() bool { return failures.Load() >= 2 })
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("never connected")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// TestClientReconnectWhileOpen: Reconnect on an open Client closes it
// (after writing what is queued) and connects again.
func TestClientReconnectWhileOpen(t *testing.T) {
	type line struct {
		conn uint64
		text string
	}
	got := make(chan line, 4)
	_, addr := serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) { got <- line{c.ID(), string(data)} },
	}})
	var connects atomic.Int32
	opened := make(chan struct{}, 2)
	cl := newClient(t, "tcp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnConnect: func(c connections.Connection) {
			c.Send(fmt.Sprint("hello ", connects.Add(1)), false)
			opened <- struct{}{}
		},
	}}})
	cl.Connect()
	<-opened
	cl.Send("last words", false)
	cl.Reconnect(0)
	<-opened
	// The two server connections run concurrently: check each one's order.
	byConn := map[uint64][]string{}
	for range 3 {
		select {
		case l := <-got:
			byConn[l.conn] = append(byConn[l.conn], l.text)
		case <-time.After(10 * time.Second):
			t.Fatalf("server got only %v", byConn)
		}
	}
	var all []string
	for _, texts := range byConn {
		all = append(all, strings.Join(texts, "+"))
	}
	if len(all) != 2 || !(all[0] == "hello 1+last words" && all[1] == "hello 2" || all[1] == "hello 1+last words" && all[0] == "hello 2") {
		t.Fatalf("server connections got %q", all)
	}
}

// TestClientQueueLimit: sends queued before the connection is up are
// bounded by MaxSendBufferSize, with OnBufferFull, and OnBufferDrain once
// they have gone out.
func TestClientQueueLimit(t *testing.T) {
	got := make(chan []byte, 1)
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
		defer c.Close()
		b := make([]byte, 3000)
		_, err = io.ReadFull(c, b)
		got <- b
	}()
	var full, drained, dropped atomic.Int32
	cl := newClient(t, "tcp://"+ln.Addr().String(), connections.ClientConfig{Config: connections.Config{
		MaxSendBufferSize: 3000,
		Handler: connections.Handler{
			OnBufferFull:  func(connections.Connection) { full.Add(1) },
			OnBufferDrain: func(connections.Connection) { drained.Add(1) },
			OnError: func(c connections.Connection, err error) {
				if errors.Is(err, connections.ErrSendBufferFull) {
					dropped.Add(1)
				}
			},
		},
	}})
	chunk := bytes.Repeat([]byte{'a'}, 1000)
	for i := range 3 {
		if err := cl.SendBytes(chunk, false); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := cl.SendBytes(chunk, false); !errors.Is(err, connections.ErrSendBufferFull) {
		t.Fatalf("send over the limit: %v", err)
	}
	if full.Load() != 1 || dropped.Load() != 1 || cl.SendBufferLen() != 3000 {
		t.Fatalf("full %d dropped %d queued %d", full.Load(), dropped.Load(), cl.SendBufferLen())
	}
	cl.Connect()
	if b := <-got; !bytes.Equal(b, bytes.Repeat([]byte{'a'}, 3000)) {
		t.Fatalf("server got %q", b)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnBufferDrain", func() bool { return drained.Load() == 1 })
}

// TestClientPauseRecv: PauseRecv before Connect holds the first
// connection's input until ResumeRecv.
func TestClientPauseRecv(t *testing.T) {
	srv, addr := serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnConnect: func(c connections.Connection) { c.Send("welcome", false) },
	}})
	got := make(chan string, 1)
	connected := make(chan struct{})
	cl := newClient(t, "tcp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnConnect: func(connections.Connection) { close(connected) },
		OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
	}}})
	cl.PauseRecv()
	cl.Connect()
	<-connected
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the welcome line written", func() bool { return srv.Stats().BytesOut > 0 })
	// The line is on its way or in the Client's socket: it must not be
	// read while paused (a bounded wait for something that must not happen).
	select {
	case s := <-got:
		t.Fatalf("got %q while paused", s)
	case <-time.After(50 * time.Millisecond):
	}
	cl.ResumeRecv()
	select {
	case s := <-got:
		if s != "welcome" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing after ResumeRecv")
	}
}

// TestClientAgainstPlainServer: a raw tcp:// Client and a net.Conn peer,
// both directions, half-close from the peer closing the Client.
func TestClientAgainstPlainServer(t *testing.T) {
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
		defer c.Close()
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		io.WriteString(c, strings.ToUpper(line))
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, r)
	}()
	ev := newEvents(1)
	h := ev.handler()
	h.OnConnect = func(c connections.Connection) { c.Send("shout\n", false) }
	cl := newClient(t, "tcp://"+ln.Addr().String(), connections.ClientConfig{Config: connections.Config{Handler: h}})
	cl.Connect()
	ev.wait(t)
	if strings.Join(ev.msgs, "") != "SHOUT\n" {
		t.Fatalf("got %q", ev.msgs)
	}
	if _, ok := cl.LocalAddr().(*net.TCPAddr); !ok {
		t.Fatalf("LocalAddr %T", cl.LocalAddr())
	}
}

// TestClientShutdown: Shutdown writes what is queued, waits for the
// connection to end, and stops OnClose from reconnecting.
func TestClientShutdown(t *testing.T) {
	got := make(chan string, 4)
	_, addr := serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
	}})
	var closes atomic.Int32
	connected := make(chan struct{})
	cl := newClient(t, "tcp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnConnect: func(connections.Connection) { close(connected) },
		OnClose: func(c connections.Connection) {
			closes.Add(1)
			c.(*connections.Client).Reconnect(0) // ignored once shut down
		},
	}}})
	cl.Connect()
	<-connected
	cl.Send("one", false)
	cl.Send("two", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if closes.Load() != 1 {
		t.Fatalf("%d OnClose calls", closes.Load())
	}
	for _, want := range []string{"one", "two"} {
		if s := <-got; s != want {
			t.Fatalf("server got %q, want %q", s, want)
		}
	}
	cl.Connect()
	if err := cl.Send("x", false); !errors.Is(err, connections.ErrClosed) {
		t.Fatalf("Send after Shutdown and Connect: %v", err)
	}
}

// TestClientCloseToSilentPeer: a Client closes while its peer neither
// sends nor closes. The Client shuts down its sending side, lingers, and
// is destroyed by the linger deadline on its own timer wheel.
func TestClientCloseToSilentPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerSawEOF := make(chan struct{})
	release := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c) // until the Client's FIN
		close(peerSawEOF)
		<-release // and stay open, silent
	}()
	defer close(release)
	ev := newEvents(1)
	h := ev.handler()
	h.OnConnect = func(c connections.Connection) {
		c.Send("bye\n", true)
		c.Close()
	}
	cl := newClient(t, "tcp://"+ln.Addr().String(), connections.ClientConfig{Config: connections.Config{Handler: h}})
	cl.Connect()
	<-peerSawEOF
	ev.wait(t)
}
