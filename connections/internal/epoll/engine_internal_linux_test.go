//go:build linux

package epoll

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/std"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
)

// TestIdleConnectionHoldsNoBuffers: once a connection has answered and has
// nothing left to read or send, it owns no buffer.
func TestIdleConnectionHoldsNoBuffers(t *testing.T) {
	s := newServer(core.Config{
		Engine: core.EngineEpoll, Protocol: text.New(), Logger: testkit.Logger(t),
		Handler: core.Handler{OnMessage: func(c core.Connection, d []byte) { c.SendBytes(d, false) }},
	})
	addr := serve(t, s)
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// A partial packet makes the connection borrow an input buffer; the
	// rest of it lets it go again.
	io.WriteString(c, "hello wor")
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "9 bytes in", func() bool { return s.Stats().BytesIn >= 9 })
	io.WriteString(c, "ld\n")
	if l, err := r.ReadString('\n'); err != nil || l != "hello world\n" {
		t.Fatalf("got %q, %v", l, err)
	}
	cs := s.All()
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	ec := cs[0].(*epConn)
	// The loop owns in and wbuf: look at them from the loop.
	type bufs struct{ in, wbuf, out bool }
	got := make(chan bufs, 1)
	ec.l.postFunc(func() {
		got <- bufs{in: ec.in != nil, wbuf: ec.wbuf != nil, out: ec.SendBufferLen() != 0}
	})
	if b := <-got; b.in || b.wbuf || b.out {
		t.Fatalf("idle connection holds buffers: %+v", b)
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestWatchdogWarnsOfBlockedLoop: a callback blocking its loop is logged.
func TestWatchdogWarnsOfBlockedLoop(t *testing.T) {
	logs := &syncBuffer{}
	release := make(chan struct{})
	s := newServer(core.Config{
		Engine: core.EngineEpoll, Loops: 1, Protocol: text.New(), Logger: zerolog.New(logs),
		Handler: core.Handler{OnMessage: func(c core.Connection, d []byte) {
			<-release
			c.SendBytes(d, false)
		}},
	})
	s.StallAfter = 20 * time.Millisecond
	addr := serve(t, s)
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "slow\n")
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the warning", func() error {
		if !strings.Contains(logs.String(), "event loop blocked by a callback") {
			return fmt.Errorf("no warning; log:\n%s", logs.String())
		}
		return nil
	})
	close(release)
	if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "slow\n" {
		t.Fatalf("got %q, %v", l, err)
	}
}

// TestEpConnWithTimersSize: the read and send timeouts are on by default,
// so every connection carries its timers: what an accept allocates, an
// epConn with its timers (timedEpConn), stays in the runtime's 288-byte
// size class (it was one of 320 before the rare fields of core.Conn went
// out of line and its pointer to the timers went; issue 21). newEpConn
// must allocate exactly this type.
func TestEpConnWithTimersSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skipf("%d-bit platform: sizes differ", 8*unsafe.Sizeof(uintptr(0)))
	}
	var ct timedEpConn
	if n := unsafe.Sizeof(ct); n > 288 {
		t.Fatalf("an epConn with its timers is %d bytes, over the 288-byte size class (core.Conn %d, epConn %d, core.ConnTimers %d)",
			n, unsafe.Sizeof(ct.Conn), unsafe.Sizeof(ct.epConn), unsafe.Sizeof(ct.tm))
	}
	// What newEpConn allocates is counted in the runtime's 288-byte class.
	rt := core.NewRuntime(core.Config{})
	if !rt.Timed {
		t.Fatal("a zero Config has no timers")
	}
	const n = 1000
	keep := make([]*epConn, 0, n)
	in288 := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for _, b := range ms.BySize {
			if b.Size == 288 {
				return b.Mallocs
			}
		}
		t.Fatal("the runtime has no 288-byte size class")
		return 0
	}
	before := in288()
	for range n {
		c, _ := newEpConn(rt, false)
		keep = append(keep, c)
	}
	if got := in288() - before; got < n {
		t.Fatalf("%d epConns with timers made %d allocations of the 288-byte class", n, got)
	}
	runtime.KeepAlive(keep)
}

// TestEpTLSSize: a TLS connection is one object for its life: the
// epConn with its timers and its loop TLS state (epTLS, with its
// tlsrec.Session inside, and the session's record layer inside that),
// in the 768-byte size class. (Before: the connection in the 288-byte
// class, epTLS in another, and the record layer in a third, a fan-out
// member's seal walking to three pages; then one object of 848 bytes,
// the 896-byte class, until the session kept only what both paths use
// and made its addresses on demand.)
func TestEpTLSSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skipf("%d-bit platform: sizes differ", 8*unsafe.Sizeof(uintptr(0)))
	}
	var x tlsEpConn
	if n := unsafe.Sizeof(x); n > 768 {
		t.Fatalf("tlsEpConn is %d bytes, over the 768-byte size class (its epConn %d, epTLS %d, session %d)", n, unsafe.Sizeof(x.epConn), unsafe.Sizeof(x.tls), unsafe.Sizeof(x.tls.sess))
	}
	rt := core.NewRuntime(core.Config{})
	if n := testing.AllocsPerRun(100, func() { c, tt := newEpConn(rt, true); tlsSink = tt; _ = c }); n != 1 {
		t.Fatalf("a TLS connection's newEpConn makes %v allocations, want 1", n)
	}
}

var tlsSink *epTLS

// TestTLSStateBesideConn: a TLS connection's state is found from the
// connection's address (tlsState), the one newEpConn allocated with it,
// with or without timers; a plain connection and a released socket have
// none.
func TestTLSStateBesideConn(t *testing.T) {
	var l *loop // tlsState asks nothing of the loop
	tlsLn, plainLn := &epListener{tls: &epTLSListener{}}, &epListener{}
	for _, timed := range []bool{false, true} {
		rt := core.NewRuntime(core.Config{})
		rt.Timed = timed
		c, ct := newEpConn(rt, true)
		c.ln, c.fd = tlsLn, 7
		if got := l.tlsState(c); got != ct {
			t.Fatalf("timed %v: tlsState %p, newEpConn's %p", timed, got, ct)
		}
		c.fd = -1
		if got := l.tlsState(c); got != nil {
			t.Fatalf("timed %v: a released TLS connection's state %p, want nil", timed, got)
		}
		p, pt := newEpConn(rt, false)
		p.ln, p.fd = plainLn, 8
		if pt != nil || l.tlsState(p) != nil {
			t.Fatalf("timed %v: a plain connection has TLS state", timed)
		}
	}
}

// TestAcceptIdleAllocatesOnce: accepting a connection that sends nothing
// allocates one object, its epConn with its timers, with the default
// timeouts and the log at its production level (info): a million idle
// connections are a million of these and nothing else on the heap (a
// debug log that is off built the peer's address, two objects more, on
// every accept). Counted over real loopback connections, from raw
// sockets that allocate nothing in this process.
func TestAcceptIdleAllocatesOnce(t *testing.T) {
	s := newServer(core.Config{
		Engine: core.EngineEpoll, Loops: 1, Protocol: text.New(),
		Logger: zerolog.New(io.Discard).Level(zerolog.InfoLevel),
	})
	addr := serve(t, s)
	sa := &unix.SockaddrInet4{Port: addr.Port, Addr: [4]byte{127, 0, 0, 1}}
	const warm, n = 100, 1000
	fds := make([]int, 0, warm+n)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	// open dials k connections and waits, without allocating, until the
	// server holds all of them.
	open := func(k int) {
		for range k {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
			if err := unix.Connect(fd, sa); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(testkit.Wait)
		for s.Open.Load() < int64(len(fds)) {
			if time.Now().After(deadline) {
				t.Fatalf("the server holds %d of %d connections", s.Open.Load(), len(fds))
			}
			time.Sleep(time.Millisecond)
		}
	}
	open(warm) // the loop's table and the wheel's first allocations
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	open(n)
	runtime.ReadMemStats(&m1)
	if per := float64(m1.Mallocs-m0.Mallocs) / n; per > 1.5 {
		t.Fatalf("accepting an idle connection allocates %.2f objects (%.0f bytes)", per, float64(m1.TotalAlloc-m0.TotalAlloc)/n)
	}
}

// serve serves s on a loopback TCP listener until the test's end (Serve
// must then return core.ErrServerClosed) and returns its address.
func serve(t *testing.T, s *core.Runtime) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, core.ErrServerClosed) {
			t.Errorf("Serve returned %v, want core.ErrServerClosed", err)
		}
	})
	return ln.Addr().(*net.TCPAddr)
}

// newServer is a connections.Server as the engine's tests need it (this
// package cannot import connections): the runtime for cfg with the
// standard engine and this one.
func newServer(cfg core.Config) *core.Runtime {
	rt := core.NewRuntime(cfg)
	fb := std.New(rt)
	rt.SetEngines(fb, []core.Engine{fb, New(rt)})
	return rt
}
