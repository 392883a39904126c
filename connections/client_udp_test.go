package connections_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/protocoltest"
	"github.com/goes-project/goes/protocols/text"
)

// udpEvents records a UDP Client's callbacks. Unlike events it locks:
// OnError of a failed Send runs on the sender's goroutine, beside the
// reader's OnMessage.
type udpEvents struct {
	mu       sync.Mutex
	msgs     []string
	errs     []error
	connects int
	closes   int
	// onMessage, when set, runs after the message is recorded.
	onMessage func(c connections.Connection, msg string)
}

func (e *udpEvents) handler() connections.Handler {
	return connections.Handler{
		OnConnect: func(connections.Connection) {
			e.mu.Lock()
			e.connects++
			e.mu.Unlock()
		},
		OnMessage: func(c connections.Connection, data []byte) {
			e.mu.Lock()
			e.msgs = append(e.msgs, string(data))
			e.mu.Unlock()
			if e.onMessage != nil {
				e.onMessage(c, string(data))
			}
		},
		OnError: func(_ connections.Connection, err error) {
			e.mu.Lock()
			e.errs = append(e.errs, err)
			e.mu.Unlock()
		},
		OnClose: func(connections.Connection) {
			e.mu.Lock()
			e.closes++
			e.mu.Unlock()
		},
	}
}

// snapshot returns copies of what was recorded.
func (e *udpEvents) snapshot() (msgs []string, errs []error, connects, closes int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.msgs), slices.Clone(e.errs), e.connects, e.closes
}

func (e *udpEvents) has(msg string) bool {
	msgs, _, _, _ := e.snapshot()
	return slices.Contains(msgs, msg)
}

func (e *udpEvents) counts() (connects, closes int) {
	_, _, connects, closes = e.snapshot()
	return connects, closes
}

// serveUDP runs a Server over a loopback UDP socket and returns its
// address; cleanup closes it.
func serveUDP(t testing.TB, cfg connections.Config) string {
	t.Helper()
	cfg.Logger = testkit.Logger(t)
	cfg.Transport = "udp"
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("ServePacket returned %v, want ErrServerClosed", err)
		}
		pc.Close()
	})
	return pc.LocalAddr().String()
}

// rawPeer is a plain UDP socket on loopback; cleanup closes it.
func rawPeer(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	return pc
}

// connectUDP connects cl and waits for its OnConnect.
func connectUDP(t testing.TB, cl *connections.Client, ev *udpEvents) {
	t.Helper()
	cl.Connect()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnConnect", func() bool { c, _ := ev.counts(); return c > 0 })
}

// noLeaks checks, after every later cleanup, that the test left no
// goroutine behind. Call it first.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestClientUDPURIs(t *testing.T) {
	cases := []struct {
		name, uri, transport, remote string
		cfgTransport                 string
		cfgText                      bool
		proto                        string
		bad                          bool
	}{
		{name: "udp raw", uri: "udp://127.0.0.1:9000", remote: "127.0.0.1:9000", transport: "udp"},
		{name: "udp with protocol", uri: "udp://[::1]:9000", cfgText: true, remote: "[::1]:9000", transport: "udp", proto: "text"},
		{name: "tcp with protocol over udp", uri: "tcp://localhost:7", cfgTransport: "udp", cfgText: true, remote: "localhost:7", transport: "udp", proto: "text"},
		{name: "tcp over UDP", uri: "tcp://127.0.0.1:7", cfgTransport: "UDP", remote: "127.0.0.1:7", transport: "udp"},
		{name: "udp with udp", uri: "udp://127.0.0.1:7", cfgTransport: "udp", remote: "127.0.0.1:7", transport: "udp"},
		{name: "other transport ignored", uri: "tcp://127.0.0.1:7", cfgTransport: "unix", cfgText: true, remote: "127.0.0.1:7", transport: "tcp", proto: "text"},
		{name: "no port", uri: "udp://127.0.0.1", bad: true},
		{name: "path", uri: "udp://127.0.0.1:7/x", bad: true},
		{name: "protocol uri over udp", uri: "text://127.0.0.1:7", cfgTransport: "udp", bad: true},
		{name: "tls over udp", uri: "tls://127.0.0.1:7", cfgTransport: "udp", bad: true},
		{name: "unix over udp", uri: "unix:///tmp/x.sock", cfgTransport: "udp", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg connections.ClientConfig
			cfg.Transport = tc.cfgTransport
			if tc.cfgText {
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
			if got := cl.Transport(); got != tc.transport {
				t.Errorf("Transport = %q, want %q", got, tc.transport)
			}
			if got := cl.RemoteAddr().String(); got != tc.remote {
				t.Errorf("RemoteAddr = %q, want %q", got, tc.remote)
			}
			if tc.transport == "udp" {
				if _, ok := cl.LocalAddr().(*net.UDPAddr); !ok || cl.RemoteAddr().Network() != "udp" {
					t.Errorf("LocalAddr %T, RemoteAddr network %q", cl.LocalAddr(), cl.RemoteAddr().Network())
				}
			}
			proto := ""
			if p := cl.Protocol(); p != nil {
				proto = p.Name()
			}
			if proto != tc.proto {
				t.Errorf("Protocol = %q, want %q", proto, tc.proto)
			}
		})
	}
}

// TestClientUDPEcho exchanges messages with a goes text echo server over
// UDP: two queued before Connect, then a ping-pong of n, in order.
func TestClientUDPEcho(t *testing.T) {
	for _, form := range []string{"udp scheme", "tcp scheme with transport udp"} {
		t.Run(form, func(t *testing.T) {
			noLeaks(t)
			addr := serveUDP(t, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
			var cfg connections.ClientConfig
			uri := "udp://" + addr
			cfg.Protocol = text.New()
			if form != "udp scheme" {
				uri = "tcp://" + addr
				cfg.Transport = "udp"
			}
			const n = 100
			ev := &udpEvents{}
			ev.onMessage = func(c connections.Connection, msg string) {
				if i, err := strconv.Atoi(strings.TrimPrefix(msg, "m")); err == nil && i+1 < n {
					if err := c.Send("m"+strconv.Itoa(i+1), false); err != nil {
						t.Errorf("Send from OnMessage: %v", err)
					}
				}
			}
			cfg.Handler = ev.handler()
			cfg.Handler.OnConnect = func(c connections.Connection) {
				ev.handler().OnConnect(c)
				c.Send("m0", false)
			}
			cl := newClient(t, uri, cfg)
			cl.Send("q1", false)
			cl.SendBytes([]byte("q2"), false)
			if got := cl.SendBufferLen(); got != 4 {
				t.Errorf("SendBufferLen before Connect = %d, want 4", got)
			}
			cl.Connect()
			want := fmt.Sprintf("m%d", n-1)
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "the last echo", func() bool { return ev.has(want) })
			if got := cl.RemoteAddr().String(); got != addr {
				t.Errorf("RemoteAddr = %q, want %q", got, addr)
			}
			if la, ok := cl.LocalAddr().(*net.UDPAddr); !ok || la.Port == 0 {
				t.Errorf("LocalAddr = %v", cl.LocalAddr())
			}
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { _, c := ev.counts(); return c == 1 })
			msgs, errs, connects, _ := ev.snapshot()
			wantMsgs := []string{"q1", "q2"}
			for i := range n {
				wantMsgs = append(wantMsgs, fmt.Sprintf("m%d", i))
			}
			if !slices.Equal(msgs, wantMsgs) {
				t.Fatalf("messages %q,\nwant %q", msgs, wantMsgs)
			}
			if len(errs) != 0 || connects != 1 {
				t.Fatalf("errors %v, connects %d", errs, connects)
			}
			// Every message is its text plus "\n", one datagram each way.
			wantBytes := uint64(3 + 3 + 10*3 + 90*4)
			if cl.BytesRead() != wantBytes || cl.BytesWritten() != wantBytes || cl.Transport() != "udp" {
				t.Fatalf("read %d written %d (want %d), transport %q", cl.BytesRead(), cl.BytesWritten(), wantBytes, cl.Transport())
			}
			if err := cl.Send("late", false); !errors.Is(err, connections.ErrClosed) {
				t.Fatalf("Send after close: %v", err)
			}
		})
	}
}

// TestClientUDPDatagrams talks to a plain UDP socket: exact bytes each
// way, one datagram per message, only the peer's datagrams received, and
// bad datagrams reported without stopping the Client.
func TestClientUDPDatagrams(t *testing.T) {
	t.Run("raw", func(t *testing.T) {
		noLeaks(t)
		peer := rawPeer(t, "127.0.0.1:0")
		ev := &udpEvents{}
		cl := newClient(t, "udp://"+peer.LocalAddr().String(), connections.ClientConfig{Config: connections.Config{
			MaxPackageSize: 64, Handler: ev.handler()}})
		connectUDP(t, cl, ev)

		sent := []string{"hello\n\x00world", "two", "three\r\n"}
		if err := cl.Send(sent[0], false); err != nil {
			t.Fatal(err)
		}
		if err := cl.SendBytes([]byte(sent[1]), false); err != nil {
			t.Fatal(err)
		}
		if err := cl.WriteRaw([]byte(sent[2])); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<16)
		for _, want := range sent {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != want || from.String() != cl.LocalAddr().String() {
				t.Fatalf("peer got %q from %v, want %q from %v", buf[:n], from, want, cl.LocalAddr())
			}
		}

		// A stranger's datagram never reaches the connected socket.
		stranger := rawPeer(t, "127.0.0.1:0")
		if _, err := stranger.WriteTo([]byte("stranger"), cl.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"a", "bb\n", "", strings.Repeat("x", 100), "after"} {
			if _, err := peer.WriteTo([]byte(d), cl.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "the last datagram", func() bool { return ev.has("after") })
		msgs, errs, _, _ := ev.snapshot()
		if want := []string{"a", "bb\n", "after"}; !slices.Equal(msgs, want) {
			t.Fatalf("messages %q, want %q", msgs, want)
		}
		if len(errs) != 1 || !errors.Is(errs[0], protocols.ErrPackageTooLarge) {
			t.Fatalf("errors %v, want one ErrPackageTooLarge", errs)
		}
		if _, closes := ev.counts(); closes != 0 {
			t.Fatalf("closed after a bad datagram")
		}
	})

	t.Run("text", func(t *testing.T) {
		noLeaks(t)
		peer := rawPeer(t, "127.0.0.1:0")
		ev := &udpEvents{}
		ev.onMessage = func(_ connections.Connection, msg string) {
			if msg == "panic" {
				panic("test panic")
			}
		}
		cl := newClient(t, "udp://"+peer.LocalAddr().String(), connections.ClientConfig{Config: connections.Config{
			Protocol: text.New(), MaxPackageSize: 16, Handler: ev.handler()}})
		connectUDP(t, cl, ev)
		for _, d := range []string{
			"one\ntwo\r\n",                 // two messages
			strings.Repeat("x", 40),        // oversize: no newline within 16 bytes
			"three\npart",                  // "three", then an incomplete packet
			"panic\nlost\n",                // OnMessage panics: the rest is dropped
			"four\n",                       // still working
			strings.Repeat("y", 20) + "\n", // oversize with a newline
			"five\n",
		} {
			if _, err := peer.WriteTo([]byte(d), cl.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "the last datagram", func() bool { return ev.has("five") })
		msgs, errs, _, closes := ev.snapshot()
		if want := []string{"one", "two", "three", "panic", "four", "five"}; !slices.Equal(msgs, want) {
			t.Fatalf("messages %q, want %q", msgs, want)
		}
		wantErrs := []error{protocols.ErrPackageTooLarge, connections.ErrIncompleteDatagram, connections.ErrPanic, protocols.ErrPackageTooLarge}
		if len(errs) != len(wantErrs) {
			t.Fatalf("errors %v, want %v", errs, wantErrs)
		}
		for i, err := range errs {
			if !errors.Is(err, wantErrs[i]) {
				t.Fatalf("error %d = %v, want %v", i, err, wantErrs[i])
			}
		}
		if !strings.Contains(errs[0].Error(), "bad datagram of 40 bytes") {
			t.Errorf("error text %q does not say what was dropped", errs[0])
		}
		if closes != 0 {
			t.Fatal("closed after a bad datagram")
		}
		// The peer receives what the Client sends, encoded.
		cl.Send("reply", false)
		buf := make([]byte, 64)
		n, _, err := peer.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "reply\n" {
			t.Fatalf("peer got %q, %v", buf[:n], err)
		}
	})
}

// TestClientUDPRefused sends to a port nobody listens on: the ICMP port
// unreachable comes back as ECONNREFUSED to OnError, the Client stays
// open and reaches the peer once it listens on that port.
func TestClientUDPRefused(t *testing.T) {
	noLeaks(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()

	ev := &udpEvents{}
	cl := newClient(t, "udp://"+addr, connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
	connectUDP(t, cl, ev)
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "ECONNREFUSED", func() bool {
		cl.Send("ping", false)
		_, errs, _, _ := ev.snapshot()
		return len(errs) > 0
	})
	_, errs, _, _ := ev.snapshot()
	for _, err := range errs {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("error %v, want ECONNREFUSED", err)
		}
	}
	if _, closes := ev.counts(); closes != 0 {
		t.Fatal("ECONNREFUSED closed the client")
	}

	// The peer comes back on the same port.
	peer := rawPeer(t, addr)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			peer.WriteTo(buf[:n], from)
		}
	}()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "an echo from the peer", func() bool {
		cl.Send("back", false)
		return ev.has("back")
	})
	if _, closes := ev.counts(); closes != 0 {
		t.Fatal("closed")
	}
	cl.Close()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { _, c := ev.counts(); return c == 1 })
}

// TestClientUDPClose ends a UDP Client in every way: OnClose runs once,
// what was queued is sent by Close, and no goroutine is left.
func TestClientUDPClose(t *testing.T) {
	cases := []struct {
		name     string
		connect  bool // wait for OnConnect first
		end      func(t *testing.T, cl *connections.Client)
		connects int
	}{
		{name: "close", connect: true, connects: 1, end: func(t *testing.T, cl *connections.Client) { cl.Close(); cl.Close(); cl.Destroy() }},
		{name: "destroy", connect: true, connects: 1, end: func(t *testing.T, cl *connections.Client) { cl.Destroy(); cl.Destroy(); cl.Close() }},
		{name: "close after flush", connect: true, connects: 1, end: func(t *testing.T, cl *connections.Client) { cl.CloseAfterFlush() }},
		{name: "shutdown", connect: true, connects: 1, end: func(t *testing.T, cl *connections.Client) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			cl.Connect() // does nothing after Shutdown
		}},
		{name: "close before connect", end: func(t *testing.T, cl *connections.Client) { cl.Close(); cl.Close() }},
		{name: "close while connecting", connects: 1, end: func(t *testing.T, cl *connections.Client) { cl.Connect(); cl.Close() }},
		{name: "destroy while connecting", connects: 1, end: func(t *testing.T, cl *connections.Client) { cl.Connect(); cl.Destroy() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			var got atomic.Int32
			addr := serveUDP(t, connections.Config{Protocol: text.New(), Handler: connections.Handler{
				OnMessage: func(c connections.Connection, data []byte) {
					if string(data) == "queued" {
						got.Add(1)
					}
				}}})
			ev := &udpEvents{}
			cl := newClient(t, "udp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: ev.handler()}})
			if tc.connect {
				connectUDP(t, cl, ev)
			} else if err := cl.Send("queued", false); err != nil {
				t.Fatal(err)
			}
			tc.end(t, cl)
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { _, c := ev.counts(); return c > 0 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			connects, closes := ev.counts()
			if closes != 1 || connects > tc.connects {
				t.Fatalf("connects %d (want at most %d), closes %d (want 1)", connects, tc.connects, closes)
			}
			if tc.name == "close while connecting" {
				// Close waits for the queue: the server gets it.
				testkit.Eventually(t, testkit.Wait, testkit.Poll, "the queued message at the server", func() bool { return got.Load() == 1 })
				if connects != 1 {
					t.Fatalf("connects %d, want 1", connects)
				}
			}
			if err := cl.Send("late", false); !errors.Is(err, connections.ErrClosed) {
				t.Fatalf("Send after close: %v", err)
			}
		})
	}
}

// TestClientUDPReconnect reconnects an open UDP Client: a new socket
// after OnClose of the old one, and the exchange goes on.
func TestClientUDPReconnect(t *testing.T) {
	noLeaks(t)
	addr := serveUDP(t, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
	ev := &udpEvents{}
	cl := newClient(t, "udp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: ev.handler()}})
	connectUDP(t, cl, ev)
	cl.Send("first", false)
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "first echo", func() bool { return ev.has("first") })
	old := cl.LocalAddr().String()
	cl.Reconnect(0)
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the second OnConnect", func() bool { c, _ := ev.counts(); return c == 2 })
	if _, closes := ev.counts(); closes != 1 {
		t.Fatalf("closes %d before the second connect, want 1", closes)
	}
	if err := cl.Send("second", false); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "second echo", func() bool { return ev.has("second") })
	if now := cl.LocalAddr().String(); now == old {
		t.Errorf("the new socket has the old local address %s", now)
	}
	cl.Close()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { _, c := ev.counts(); return c == 2 })
	if cl.BytesWritten() != uint64(len("first\nsecond\n")) {
		t.Errorf("BytesWritten %d over both sockets", cl.BytesWritten())
	}
}

// TestClientUDPPauseRecv holds datagrams back while paused.
func TestClientUDPPauseRecv(t *testing.T) {
	noLeaks(t)
	peer := rawPeer(t, "127.0.0.1:0")
	ev := &udpEvents{}
	cl := newClient(t, "udp://"+peer.LocalAddr().String(), connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
	cl.PauseRecv() // applies to the socket made by Connect
	connectUDP(t, cl, ev)
	peer.WriteTo([]byte("held"), cl.LocalAddr())
	peer.WriteTo([]byte("next"), cl.LocalAddr())
	// The reader takes one datagram and holds it: nothing may reach
	// OnMessage, and the second stays in the socket (a bounded wait for
	// something that must not happen).
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the reader holding a datagram", func() bool { return cl.BytesRead() > 0 })
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if msgs, _, _, _ := ev.snapshot(); len(msgs) != 0 || cl.BytesRead() != 4 {
			t.Fatalf("delivered %q, read %d bytes while paused", msgs, cl.BytesRead())
		}
	}
	cl.ResumeRecv()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the held datagrams", func() bool { return ev.has("next") })
	if msgs, _, _, _ := ev.snapshot(); !slices.Equal(msgs, []string{"held", "next"}) {
		t.Fatalf("messages %q", msgs)
	}
	cl.PauseRecv()
	cl.Destroy() // a paused reader still ends
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { _, c := ev.counts(); return c == 1 })
}

// TestClientUDPConcurrentSend has many goroutines send through one
// Client, each waiting for its echo (ping-pong per goroutine, so that
// loopback never drops), then destroys the Client under senders.
func TestClientUDPConcurrentSend(t *testing.T) {
	noLeaks(t)
	addr := serveUDP(t, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
	const g, m = 8, 25
	acks := make([]chan string, g)
	for i := range acks {
		acks[i] = make(chan string, 1)
	}
	ev := &udpEvents{}
	ev.onMessage = func(_ connections.Connection, msg string) {
		who, _, _ := strings.Cut(msg, "/")
		if i, err := strconv.Atoi(who); err == nil && i < g {
			acks[i] <- msg
		}
	}
	cl := newClient(t, "udp://"+addr, connections.ClientConfig{Config: connections.Config{Protocol: text.New(), Handler: ev.handler()}})
	connectUDP(t, cl, ev)
	var wg sync.WaitGroup
	for i := range g {
		wg.Go(func() {
			for j := range m {
				msg := fmt.Sprintf("%d/%d", i, j)
				if err := cl.Send(msg, false); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				select {
				case got := <-acks[i]:
					if got != msg {
						t.Errorf("goroutine %d got %q, want %q", i, got, msg)
						return
					}
				case <-time.After(10 * time.Second):
					t.Errorf("goroutine %d: no echo of %q", i, msg)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Destroy under concurrent senders: each Send succeeds or says ErrClosed.
	var sent atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				err := cl.Send("spam", false)
				if errors.Is(err, connections.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Send while destroying: %v", err)
					return
				}
				sent.Add(1)
			}
		})
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "some sends", func() bool { return sent.Load() >= 50 })
	cl.Destroy()
	wg.Wait()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "OnClose", func() bool { _, c := ev.counts(); return c == 1 })
	if _, errs, _, _ := ev.snapshot(); len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
}

// FuzzClientUDPDatagrams sends a fuzzed input as two datagrams from a
// plain socket to a text Client: each datagram is framed on its own
// (exactly what the protocol makes of it alone, nothing joined across
// the cut), and the Client still receives the next datagram.
func FuzzClientUDPDatagrams(f *testing.F) {
	for _, seed := range []struct {
		data string
		cut  uint16
	}{
		{"a\nb\n", 2}, {"a\nb\n", 1}, {"split line\n", 5}, {"\r\n\n", 1},
		{strings.Repeat("z", 40) + "\nok\n", 10}, {"", 0}, {"x\r", 2}, {"tail\nhalf", 7},
	} {
		f.Add([]byte(seed.data), seed.cut)
	}
	peer := rawPeer(f, "127.0.0.1:0")
	peer.SetDeadline(time.Time{}) // fuzzing may run for long
	ev := &udpEvents{}
	const max = 32
	// Not newClient: the fuzz target must not log through f.
	cl, err := connections.NewClient("udp://"+peer.LocalAddr().String(), connections.ClientConfig{Config: connections.Config{
		Protocol: text.New(), MaxPackageSize: max, Handler: ev.handler(), Logger: zerolog.Nop()}})
	if err != nil {
		f.Fatal(err)
	}
	stopOnCleanup(f, cl)
	connectUDP(f, cl, ev)
	round := 0
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		if len(data) > 4096 {
			return
		}
		round++
		c := int(cut) % (len(data) + 1)
		var want []string
		for _, part := range [][]byte{data[:c], data[c:]} {
			msgs, _ := protocoltest.Feed(text.New(), &protocoltest.Conn{Max: max}, part)
			for _, m := range msgs {
				want = append(want, string(m))
			}
			if _, err := peer.WriteTo(part, cl.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		end := fmt.Sprintf("end %d", round)
		peer.WriteTo([]byte(end+"\n"), cl.LocalAddr())
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "the end marker", func() bool {
			msgs, _, _, _ := ev.snapshot()
			return len(msgs) > len(want) && msgs[len(msgs)-1] == end
		})
		ev.mu.Lock()
		got := ev.msgs[:len(ev.msgs)-1]
		ev.msgs, ev.errs = nil, nil
		ev.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("datagrams %q | %q: got %q, want %q", data[:c], data[c:], got, want)
		}
	})
}

// TestClientUDPSendAfterRefused: a write that meets the ICMP error of an
// earlier datagram does not send its own; Send tries once more, so the
// message reaches a peer that has come back. The reader is kept off the
// socket (paused, holding a datagram) so that the write meets the error.
func TestClientUDPSendAfterRefused(t *testing.T) {
	noLeaks(t)
	peer := rawPeer(t, "127.0.0.1:0")
	addr := peer.LocalAddr().String()
	ev := &udpEvents{}
	cl := newClient(t, "udp://"+addr, connections.ClientConfig{Config: connections.Config{Handler: ev.handler()}})
	cl.PauseRecv()
	connectUDP(t, cl, ev)
	peer.WriteTo([]byte("hold"), cl.LocalAddr())
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the reader holding a datagram", func() bool { return cl.BytesRead() == 4 })
	peer.Close()
	if err := cl.Send("lost", false); err != nil {
		t.Fatal(err)
	}
	back := rawPeer(t, addr)
	if err := cl.Send("after", false); err != nil {
		t.Fatalf("Send after the peer came back: %v", err)
	}
	buf := make([]byte, 64)
	n, _, err := back.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "after" {
		t.Fatalf("peer got %q, %v; want \"after\"", buf[:n], err)
	}
	cl.ResumeRecv()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the held datagram and the refusal", func() bool {
		msgs, errs, _, _ := ev.snapshot()
		return len(msgs) == 1 && len(errs) == 1
	})
	if _, errs, _, _ := ev.snapshot(); !errors.Is(errs[0], syscall.ECONNREFUSED) {
		t.Fatalf("error %v, want ECONNREFUSED", errs[0])
	}
}

// A UDP Client talks to a goes text echo server: one datagram per
// message each way.
func ExampleClient_udp() {
	srv := connections.NewServer(connections.Config{
		Protocol:  text.New(),
		Transport: "udp",
		Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
			c.Send("echo: "+string(data), false)
		}},
		Logger: zerolog.Nop(),
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error)
	go func() { served <- srv.ServePacket(pc) }()

	got := make(chan string)
	cl, err := connections.NewClient("udp://"+pc.LocalAddr().String(), connections.ClientConfig{
		Config: connections.Config{
			Protocol: text.New(),
			Handler: connections.Handler{
				OnConnect: func(c connections.Connection) { c.Send("hello", false) },
				OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
				// A peer that is not listening shows up here as ECONNREFUSED;
				// the Client stays open.
				OnError: func(c connections.Connection, err error) { fmt.Println("error:", err) },
			},
		},
	})
	if err != nil {
		panic(err)
	}
	cl.Connect()
	fmt.Println(<-got)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.Shutdown(ctx)
	srv.Close()
	<-served
	pc.Close()
	// Output:
	// echo: hello
}
