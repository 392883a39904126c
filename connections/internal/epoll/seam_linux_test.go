//go:build linux

package epoll

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/internal/uring"
	"github.com/goes-project/goes/protocols/text"
)

// These tests drive the real epoll engine on loopback sockets and fault
// single system calls through its Sys seam, where a real socket
// cannot be made to fail on cue: accept out of descriptors, a read reset
// at a chosen moment, a write the kernel does not take.

// seamServer serves cfg with the epoll engine on a loopback TCP listener
// after edit has changed the engine's system calls; cleanup closes it.
// It logs to logs, or to the test's log when logs is nil.
func seamServer(t *testing.T, cfg core.Config, logs io.Writer, edit func(sys *Sys)) (*core.Runtime, string) {
	t.Helper()
	cfg.Engine = core.EngineEpoll
	if logs == nil {
		logs = zerolog.NewTestWriter(t)
	}
	cfg.Logger = zerolog.New(logs)
	s := newServer(cfg)
	var ep *epollEngine
	for _, e := range s.Engines() {
		if e, ok := e.(*epollEngine); ok {
			ep = e
		}
	}
	if ep == nil {
		t.Fatal("no epoll engine")
	}
	edit(&ep.sys) // before Serve: the loops never see it change
	return s, serve(t, s).String()
}

func seamDial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// seamEcho sends line and expects it back.
func seamEcho(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: got %q, %v", line, got, err)
	}
}

// seamWait polls cond until it holds or 20 s pass.
func seamWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serverFd returns the descriptor of the server side of the client
// connection c, read on its loop (the loop owns it).
func serverFd(t *testing.T, s *core.Runtime, c net.Conn) int32 {
	t.Helper()
	port := c.LocalAddr().(*net.TCPAddr).Port
	for _, sc := range s.All() {
		ec := sc.(*epConn)
		if ec.RemoteAddr().(*net.TCPAddr).Port != port {
			continue
		}
		fd := make(chan int32, 1)
		ec.l.postFunc(func() { fd <- ec.fd })
		return <-fd
	}
	t.Fatalf("no server connection for %v", c.LocalAddr())
	return -1
}

func seamEchoHandler(c core.Connection, d []byte) { c.SendBytes(d, false) }

// seamLog is a log sink safe for concurrent use.
type seamLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *seamLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *seamLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// retryDelays returns the retry_in_ms of every "accept failed" line.
func (w *seamLog) retryDelays(t *testing.T) []time.Duration {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var ds []time.Duration
	for _, line := range strings.Split(w.b.String(), "\n") {
		var e struct {
			Message string  `json:"message"`
			RetryIn float64 `json:"retry_in_ms"`
		}
		if line == "" || json.Unmarshal([]byte(line), &e) != nil || e.Message != "accept failed" {
			continue
		}
		ds = append(ds, time.Duration(e.RetryIn*float64(time.Millisecond)))
	}
	return ds
}

// TestAcceptBacksOffOnEMFILE: while accept fails with EMFILE, the loop
// stops accepting for 5 ms, 10 ms, ... doubling up to 1 s (as net/http),
// and logs each delay; its connections are served meanwhile; once accept
// works again the waiting client is served, and the next failure starts
// again from 5 ms.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	type call struct {
		at    time.Time
		errno unix.Errno
	}
	var (
		mu       sync.Mutex
		failing  bool // fail every accept
		failOnce bool // fail the next accept
		calls    []call
	)
	logs := &seamLog{}
	s, addr := seamServer(t, core.Config{
		Loops: 1, Protocol: text.New(),
		Handler: core.Handler{OnMessage: seamEchoHandler},
	}, logs, func(sys *Sys) {
		live := sys.Accept
		sys.Accept = func(fd int) (int32, unix.RawSockaddrAny, unix.Errno) {
			mu.Lock()
			defer mu.Unlock()
			if failing || failOnce {
				failOnce = false
				calls = append(calls, call{at: time.Now(), errno: unix.EMFILE})
				return -1, unix.RawSockaddrAny{}, unix.EMFILE
			}
			nfd, rsa, errno := live(fd)
			calls = append(calls, call{at: time.Now(), errno: errno})
			return nfd, rsa, errno
		}
	})
	emfiles := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range calls {
			if c.errno == unix.EMFILE {
				n++
			}
		}
		return n
	}

	a := seamDial(t, addr)
	ar := bufio.NewReader(a)
	seamEcho(t, a, ar, "before")

	mu.Lock()
	failing = true
	mu.Unlock()
	b := seamDial(t, addr) // connected in the kernel's queue; accept fails
	br := bufio.NewReader(b)
	if _, err := io.WriteString(b, "waiting\n"); err != nil {
		t.Fatal(err)
	}
	seamWait(t, "three failed accepts", func() bool { return emfiles() >= 3 })
	seamEcho(t, a, ar, "during back-off") // the loop is not blocked
	if got := s.Stats().Accepted; got != 1 {
		t.Fatalf("accepted %d connections during the back-off, want 1", got)
	}
	seamWait(t, "ten failed accepts", func() bool { return emfiles() >= 10 })
	mu.Lock()
	failing = false
	mu.Unlock()
	if got, err := br.ReadString('\n'); err != nil || got != "waiting\n" {
		t.Fatalf("client queued during the back-off: got %q, %v", got, err)
	}

	// A success resets the back-off.
	mu.Lock()
	failOnce = true
	mu.Unlock()
	c := seamDial(t, addr)
	seamEcho(t, c, bufio.NewReader(c), "after")

	delays := logs.retryDelays(t)
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	if len(delays) < len(want)+1 {
		t.Fatalf("back-off delays %v, want %v (ms), then 1 s until accept works, then 5 ms", delays, want)
	}
	for i, d := range delays {
		w := time.Second // failures after the tenth, until the test stopped them
		switch {
		case i < len(want):
			w = want[i] * time.Millisecond
		case i == len(delays)-1:
			w = 5 * time.Millisecond // after a success
		}
		if d != w {
			t.Fatalf("back-off delays %v: #%d is %v, want %v", delays, i, d, w)
		}
	}
	// The loop really waited: no accept before a failure's delay passed.
	mu.Lock()
	defer mu.Unlock()
	k := 0
	for i := 0; i+1 < len(calls); i++ {
		if calls[i].errno != unix.EMFILE {
			continue
		}
		if gap := calls[i+1].at.Sub(calls[i].at); gap < delays[k] {
			t.Errorf("accept retried %v after failure #%d, before its back-off of %v", gap, k, delays[k])
		}
		k++
	}
	if k != len(delays) {
		t.Errorf("%d EMFILE accepts followed by another accept, %d delays logged", k, len(delays))
	}
}

// closeCounts records OnClose and OnError per connection id.
type closeCounts struct {
	mu      sync.Mutex
	closed  map[uint64]int
	errored map[uint64]int
}

func newCloseCounts() *closeCounts {
	return &closeCounts{closed: map[uint64]int{}, errored: map[uint64]int{}}
}

func (cc *closeCounts) handler() core.Handler {
	return core.Handler{
		OnMessage: seamEchoHandler,
		OnClose: func(c core.Connection) {
			cc.mu.Lock()
			cc.closed[c.ID()]++
			cc.mu.Unlock()
		},
		OnError: func(c core.Connection, err error) {
			cc.mu.Lock()
			cc.errored[c.ID()]++
			cc.mu.Unlock()
		},
	}
}

func (cc *closeCounts) snapshot() (closed, errored map[uint64]int) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	closed, errored = map[uint64]int{}, map[uint64]int{}
	for k, v := range cc.closed {
		closed[k] = v
	}
	for k, v := range cc.errored {
		errored[k] = v
	}
	return closed, errored
}

// connID returns the id of the server side of client c.
func connID(t *testing.T, s *core.Runtime, c net.Conn) uint64 {
	t.Helper()
	port := c.LocalAddr().(*net.TCPAddr).Port
	for _, sc := range s.All() {
		if sc.RemoteAddr().(*net.TCPAddr).Port == port {
			return sc.ID()
		}
	}
	t.Fatalf("no server connection for %v", c.LocalAddr())
	return 0
}

// checkOnlyVictimClosed waits for the victim's OnClose, then checks that
// the others still echo, that OnClose ran once for the victim and for
// no one else, and that no OnError ran (a reset by the peer is none of
// the cases core.Handler.OnError lists).
func checkOnlyVictimClosed(t *testing.T, s *core.Runtime, cc *closeCounts, victim uint64, victimConn net.Conn, others []net.Conn, readers []*bufio.Reader) {
	t.Helper()
	seamWait(t, "the victim's OnClose", func() bool {
		closed, _ := cc.snapshot()
		return closed[victim] > 0
	})
	if n, err := victimConn.Read(make([]byte, 16)); err == nil {
		t.Errorf("victim's peer read %d bytes after the reset, want the end of the connection", n)
	}
	for i, o := range others {
		seamEcho(t, o, readers[i], fmt.Sprintf("still here %d", i))
	}
	closed, errored := cc.snapshot()
	if len(closed) != 1 || closed[victim] != 1 {
		t.Errorf("OnClose calls by connection %v, want one for %d only", closed, victim)
	}
	if len(errored) != 0 {
		t.Errorf("OnError calls by connection %v, want none", errored)
	}
	// The count drops just after OnClose returns, on the goroutine that
	// ran it (a pool's, with CallbackGoroutines): wait for it.
	seamWait(t, fmt.Sprintf("%d connections open", len(others)), func() bool {
		return s.Stats().Connections == int64(len(others))
	})
	if n := s.Stats().Connections; n != int64(len(others)) {
		t.Errorf("%d connections open, want %d", n, len(others))
	}
}

// TestReadResetClosesOnlyThatConnection: a read failing with ECONNRESET
// closes that connection, with one OnClose, and the other connections of
// the same loop go on.
func TestReadResetClosesOnlyThatConnection(t *testing.T) {
	for _, pool := range []int{0, 4} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			var resetFd atomic.Int32
			resetFd.Store(-1)
			var resets atomic.Int32
			cc := newCloseCounts()
			s, addr := seamServer(t, core.Config{
				Loops: 1, CallbackGoroutines: pool, Protocol: text.New(), Handler: cc.handler(),
			}, nil, func(sys *Sys) {
				live := sys.Read
				sys.Read = func(fd int32, p []byte) (int, unix.Errno) {
					if fd == resetFd.Load() {
						resets.Add(1)
						return 0, unix.ECONNRESET
					}
					return live(fd, p)
				}
			})
			conns := make([]net.Conn, 3)
			readers := make([]*bufio.Reader, 3)
			for i := range conns {
				conns[i] = seamDial(t, addr)
				readers[i] = bufio.NewReader(conns[i])
				seamEcho(t, conns[i], readers[i], fmt.Sprintf("hello %d", i))
			}
			victim := conns[1]
			id := connID(t, s, victim)
			resetFd.Store(serverFd(t, s, victim))
			io.WriteString(victim, "boom\n") // makes the loop read
			seamWait(t, "the faulted read", func() bool { return resets.Load() > 0 })
			checkOnlyVictimClosed(t, s, cc, id, victim,
				[]net.Conn{conns[0], conns[2]}, []*bufio.Reader{readers[0], readers[2]})
			resetFd.Store(-1) // the number may be reused
		})
	}
}

// TestPeerResetClosesOnlyThatConnection is the same with a real reset: the
// peer closes with SO_LINGER 0, which sends RST. Every engine is run; on
// the epoll engine the seam only watches the reads, to make sure the
// connection ended on ECONNRESET and not on an end of stream.
func TestPeerResetClosesOnlyThatConnection(t *testing.T) {
	for _, tc := range []struct {
		engine string
		pool   int
	}{
		{engine: core.EngineStd},
		{engine: core.EngineEpoll},
		{engine: core.EngineEpoll, pool: 4},
	} {
		t.Run(fmt.Sprintf("engine=%s/pool=%d", tc.engine, tc.pool), func(t *testing.T) {
			var watchFd atomic.Int32
			watchFd.Store(-1)
			var sawReset atomic.Bool
			cc := newCloseCounts()
			cfg := core.Config{Loops: 1, CallbackGoroutines: tc.pool, Protocol: text.New(), Handler: cc.handler()}
			var s *core.Runtime
			var addr string
			if tc.engine == core.EngineEpoll {
				s, addr = seamServer(t, cfg, nil, func(sys *Sys) {
					live := sys.Read
					sys.Read = func(fd int32, p []byte) (int, unix.Errno) {
						n, errno := live(fd, p)
						if errno == unix.ECONNRESET && fd == watchFd.Load() {
							sawReset.Store(true)
						}
						return n, errno
					}
				})
			} else {
				s, addr = stdServer(t, cfg)
			}
			conns := make([]net.Conn, 3)
			readers := make([]*bufio.Reader, 3)
			for i := range conns {
				conns[i] = seamDial(t, addr)
				readers[i] = bufio.NewReader(conns[i])
				seamEcho(t, conns[i], readers[i], fmt.Sprintf("hello %d", i))
			}
			victim := conns[1].(*net.TCPConn)
			id := connID(t, s, victim)
			if tc.engine == core.EngineEpoll {
				watchFd.Store(serverFd(t, s, victim))
			}
			if err := victim.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			victim.Close()
			checkOnlyVictimClosed(t, s, cc, id, victim,
				[]net.Conn{conns[0], conns[2]}, []*bufio.Reader{readers[0], readers[2]})
			if tc.engine == core.EngineEpoll && !sawReset.Load() {
				t.Error("the server's read never returned ECONNRESET")
			}
		})
	}
}

// stdServer serves cfg with the standard engine on loopback TCP.
func stdServer(t *testing.T, cfg core.Config) (*core.Runtime, string) {
	t.Helper()
	cfg.Engine = core.EngineStd
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	s := newServer(cfg)
	return s, serve(t, s).String()
}

// ioEvent is one system call of the traced connection.
type ioEvent struct {
	kind     string // "write", "ctl" (EPOLL_CTL_MOD) or "writable" (an event with EPOLLOUT)
	len, n   int    // write: bytes offered, taken
	errno    unix.Errno
	events   uint32 // ctl: the interest set
	epollout bool
}

// TestWriteEAGAINQueuesRest: when the kernel takes none or part of an
// answer, the rest waits in the connection, the loop asks for EPOLLOUT,
// writes the rest when the socket is writable and then stops asking; the
// peer gets the whole answer once, in order.
func TestWriteEAGAINQueuesRest(t *testing.T) {
	const size = 32 << 10
	answer := strings.Repeat("0123456789abcdef", size/16)
	for _, tc := range []struct {
		name  string
		pool  int
		short bool // the kernel takes half instead of nothing
	}{
		{name: "eagain"},
		{name: "short", short: true},
		{name: "eagain-pool", pool: 4},
		{name: "short-pool", pool: 4, short: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var traceFd atomic.Int32
			traceFd.Store(-1)
			var armed atomic.Bool // fault the next write of traceFd
			var mu sync.Mutex
			var trace []ioEvent
			add := func(e ioEvent) {
				mu.Lock()
				trace = append(trace, e)
				mu.Unlock()
			}
			s, addr := seamServer(t, core.Config{
				Loops: 1, CallbackGoroutines: tc.pool, Protocol: text.New(),
				Handler: core.Handler{OnMessage: func(c core.Connection, d []byte) {
					if string(d) == "big" {
						c.Send(answer, true)
						return
					}
					c.SendBytes(d, false)
				}},
			}, nil, func(sys *Sys) {
				write, ctl, wait := sys.Write, sys.EpollCtl, sys.EpollWait
				sys.Write = func(fd int32, p []byte) (int, unix.Errno) {
					if fd != traceFd.Load() {
						return write(fd, p)
					}
					var n int
					var errno unix.Errno
					switch {
					case !armed.CompareAndSwap(true, false):
						n, errno = write(fd, p)
					case tc.short:
						n, errno = write(fd, p[:len(p)/2])
					default:
						n, errno = 0, unix.EAGAIN
					}
					add(ioEvent{kind: "write", len: len(p), n: n, errno: errno})
					return n, errno
				}
				sys.EpollCtl = func(epfd, op int, fd int32, events uint32, tag int32) error {
					if fd == traceFd.Load() && op == unix.EPOLL_CTL_MOD {
						add(ioEvent{kind: "ctl", events: events, epollout: events&Out != 0})
					}
					return ctl(epfd, op, fd, events, tag)
				}
				sys.EpollWait = func(epfd int, evs []Event) (int, unix.Errno) {
					n, errno := wait(epfd, evs)
					for i := 0; i < n; i++ {
						if evs[i].Fd == traceFd.Load() && evs[i].Pad == TagConn && evs[i].Events&Out != 0 {
							add(ioEvent{kind: "writable"})
						}
					}
					return n, errno
				}
			})
			c := seamDial(t, addr)
			r := bufio.NewReader(c)
			seamEcho(t, c, r, "hello")
			traceFd.Store(serverFd(t, s, c))
			armed.Store(true)
			if _, err := io.WriteString(c, "big\n"); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, size)
			if n, err := io.ReadFull(r, got); err != nil || string(got) != answer {
				t.Fatalf("answer: %d of %d bytes, %v; intact: %v", n, size, err, string(got) == answer)
			}
			seamEcho(t, c, r, "after") // nothing more came, and the connection goes on
			mu.Lock()
			tr := append([]ioEvent(nil), trace...)
			mu.Unlock()
			first := size / 2 // what the faulted write took
			if !tc.short {
				first = 0
			}
			steps := []struct {
				what string
				ok   func(e ioEvent) bool
			}{
				{"the faulted write", func(e ioEvent) bool {
					if tc.short {
						return e.kind == "write" && e.len == size && e.n == first && e.errno == 0
					}
					return e.kind == "write" && e.len == size && e.errno == unix.EAGAIN
				}},
				{"interest in EPOLLOUT", func(e ioEvent) bool { return e.kind == "ctl" && e.epollout }},
				{"an EPOLLOUT event", func(e ioEvent) bool { return e.kind == "writable" }},
				{"the write of the rest", func(e ioEvent) bool {
					return e.kind == "write" && e.len == size-first && e.n == size-first
				}},
				{"EPOLLOUT dropped", func(e ioEvent) bool { return e.kind == "ctl" && !e.epollout }},
			}
			i := 0
			for _, step := range steps {
				for i < len(tr) && !step.ok(tr[i]) {
					if tr[i].kind == "write" {
						t.Fatalf("trace %+v: write #%d before %s", tr, i, step.what)
					}
					i++
				}
				if i == len(tr) {
					t.Fatalf("trace %+v: no %s", tr, step.what)
				}
				i++
			}
		})
	}
}

// TestRingUnavailableFallsBack: where io_uring_setup fails (the sysctl
// kernel.io_uring_disabled, a seccomp filter: ENOSYS, EPERM) the loops say
// so once and write a fan-out with write(2), every member served.
func TestRingUnavailableFallsBack(t *testing.T) {
	var logs seamLog
	s, addr := seamServer(t, core.Config{Protocol: text.New(), Loops: 2, Handler: core.Handler{OnMessage: seamEchoHandler}}, &logs,
		func(sys *Sys) {
			sys.NewRing = func(int) (*uring.Ring, error) { return nil, fmt.Errorf("uring: io_uring_setup: %w", unix.ENOSYS) }
		})
	const members = 24
	conns := make([]*net.TCPConn, members)
	readers := make([]*bufio.Reader, members)
	for i := range conns {
		conns[i] = seamDial(t, addr)
		readers[i] = bufio.NewReader(conns[i])
		seamEcho(t, conns[i], readers[i], "hello")
	}
	// A fan-out, as connections.Fanout makes it: each member's flush
	// handed to its loop's queue in a batch (core.KickBatch).
	var kicks core.KickBatch
	for m := 0; m < 3; m++ {
		n := 0
		for _, c := range s.All() {
			cc := c.(interface{ CoreConn() *core.Conn }).CoreConn()
			kick, err := cc.Enqueue([]byte(fmt.Sprintf("m%d", m)), "", false, nil)
			if kick {
				kicks.Add(cc, 256)
			}
			if err == nil {
				n++
			}
		}
		kicks.Flush()
		if n != members {
			t.Fatalf("message %d sent to %d of %d", m, n, members)
		}
	}
	for i, r := range readers {
		for m := 0; m < 3; m++ {
			conns[i].SetReadDeadline(time.Now().Add(10 * time.Second))
			if l, err := r.ReadString('\n'); err != nil || l != fmt.Sprintf("m%d\n", m) {
				t.Fatalf("member %d read %q, %v; want m%d", i, l, err, m)
			}
		}
	}
	if st := s.Stats(); st.IOUringSends != 0 {
		t.Fatalf("core.Stats: %d writes, %d in io_uring batches; want write(2) only", st.Writes, st.IOUringSends)
	}
	if n := strings.Count(logs.String(), "io_uring unavailable"); n != 1 {
		t.Fatalf("%d log lines say io_uring is unavailable, want 1:\n%s", n, logs.String())
	}
}

// TestLingeringCloseShutsDownOnce: a connection closed by the server
// while its peer still sends lingers (shutdown SHUT_WR, input dropped
// until the peer's end) and is then released without a second shutdown;
// one closed outright (the peer gone first) is shut down once, SHUT_RDWR.
func TestLingeringCloseShutsDownOnce(t *testing.T) {
	var mu sync.Mutex
	calls := map[int32][]int{}
	closed := make(chan struct{}, 2)
	s, addr := seamServer(t, core.Config{
		Protocol: text.New(),
		Handler: core.Handler{
			OnMessage: func(c core.Connection, d []byte) {
				if string(d) == "bye" {
					c.Close()
					return
				}
				c.SendBytes(d, false)
			},
			OnClose: func(core.Connection) { closed <- struct{}{} },
		},
	}, nil, func(sys *Sys) {
		shutdown := sys.Shutdown
		sys.Shutdown = func(fd int32, how int) error {
			mu.Lock()
			calls[fd] = append(calls[fd], how)
			mu.Unlock()
			return shutdown(fd, how)
		}
	})
	shutdowns := func(fd int32) []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), calls[fd]...)
	}

	// Lingering: the server closes, the peer reads its end, then closes.
	c := seamDial(t, addr)
	r := bufio.NewReader(c)
	seamEcho(t, c, r, "hello")
	fd := serverFd(t, s, c)
	io.WriteString(c, "bye\n")
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("after bye: %q, %v; want the server's end", b, err)
	}
	c.Close()
	<-closed
	if got := shutdowns(fd); len(got) != 1 || got[0] != unix.SHUT_WR {
		t.Errorf("lingering close: shutdown calls %v, want one SHUT_WR (%d)", got, unix.SHUT_WR)
	}

	// Outright: the peer ends first, the server's close follows. (The
	// descriptor's number may be the first connection's again.)
	mu.Lock()
	clear(calls)
	mu.Unlock()
	c2 := seamDial(t, addr)
	r2 := bufio.NewReader(c2)
	seamEcho(t, c2, r2, "hello")
	fd2 := serverFd(t, s, c2)
	c2.Close()
	<-closed
	if got := shutdowns(fd2); len(got) != 1 || got[0] != unix.SHUT_RDWR {
		t.Errorf("close after the peer's end: shutdown calls %v, want one SHUT_RDWR (%d)", got, unix.SHUT_RDWR)
	}
}
