package connections_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
)

// The read and send timeouts are tested to the tick on synctest's fake
// clock, like IdleTimeout (see timers_test.go): HTTP for the phases a
// protocol reports (protocols.Phaser), text for the rule connections
// applies by itself to a partial packet. TestTimeoutsOverSockets checks
// once per engine, over real sockets, that each engine feeds them.

// ended is how a server ended a connection: after how long, what it sent.
type ended struct {
	at  time.Duration
	got string
}

// endOfAnswer reads c to its end in a goroutine and then sends how long
// after start that came and what was read.
func endOfAnswer(c net.Conn, start time.Time) <-chan ended {
	end := make(chan ended, 1)
	go func() {
		b, _ := io.ReadAll(c)
		end <- ended{time.Since(start), string(b)}
	}()
	return end
}

// checkEnded fails t unless e came between lo and hi (fake clock, so hi
// is lo plus the wheel's slack) with an answer starting with prefix (""
// for none).
func checkEnded(t *testing.T, what string, e ended, lo, hi time.Duration, prefix string) {
	t.Helper()
	if e.at < lo || e.at > hi {
		t.Errorf("%s: closed after %v, want between %v and %v (got %q)", what, e.at, lo, hi, e.got)
	}
	if prefix == "" && e.got != "" || !strings.HasPrefix(e.got, prefix) {
		t.Errorf("%s: the server sent %q, want %q...", what, e.got, prefix)
	}
}

// hello answers every HTTP request "hello".
func hello(c connections.Connection, _ []byte) { c.Send("hello", false) }

// httpGet sends a GET on c and reads the answer through r.
func httpGet(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := nethttp.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %d %q, %v", resp.StatusCode, b, err)
	}
}

// only turns every timeout off but those set in cfg.
func only(cfg connections.Config) connections.Config {
	for _, d := range []*time.Duration{&cfg.HeaderTimeout, &cfg.BodyTimeout, &cfg.KeepAliveTimeout, &cfg.SendTimeout} {
		if *d == 0 {
			*d = -1
		}
	}
	return cfg
}

// TestHeaderTimeoutRules: a request head must be complete within
// HeaderTimeout: the first from the accept, whether anything comes or a
// byte now and then; a later one from its first byte, however long the
// connection idled before it. Each is answered 408 and closed, to the
// tick.
func TestHeaderTimeoutRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const head = time.Second
		_, ln := servePipe(t, only(connections.Config{Protocol: http.New(), HeaderTimeout: head, KeepAliveTimeout: 4 * head,
			Handler: connections.Handler{OnMessage: hello}}))
		start := time.Now()
		silent := endOfAnswer(dialPipe(t, ln), start)
		slow := dialPipe(t, ln)
		slowEnd := endOfAnswer(slow, start)
		go func() {
			for i := 0; ; i++ {
				time.Sleep(head / 4)
				if _, err := slow.Write([]byte{"GET / HTTP/1.1\r\n"[i%16]}); err != nil {
					return
				}
			}
		}()
		second := dialPipe(t, ln)
		r := bufio.NewReader(second)
		httpGet(t, second, r)
		time.Sleep(2 * head) // idle, within KeepAliveTimeout
		io.WriteString(second, "GET / HT")
		began := time.Since(start)
		secondEnd := endOfAnswer(second, start)
		checkEnded(t, "silent connection", awaitFake(t, silent, "silent"), head, head+wheelSlack, "HTTP/1.1 408 ")
		checkEnded(t, "slowloris", awaitFake(t, slowEnd, "slowloris"), head, head+wheelSlack, "HTTP/1.1 408 ")
		checkEnded(t, "second head", awaitFake(t, secondEnd, "second head"), began+head, began+head+wheelSlack, "HTTP/1.1 408 ")
	})
}

// TestKeepAliveTimeoutRules: a connection idle after its answer is closed
// KeepAliveTimeout later, silently; one whose request is being answered
// (here an answer that takes ten KeepAliveTimeouts) is not idle, and once
// answered is closed a KeepAliveTimeout later (plus at most the period at
// which its timer looks, the shortest timeout).
func TestKeepAliveTimeoutRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ka, head = 2 * time.Second, time.Second
		var answered atomic.Int64
		var start time.Time
		_, ln := servePipe(t, only(connections.Config{Protocol: http.New(), HeaderTimeout: head, KeepAliveTimeout: ka,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				if http.RequestOf(c).Path() != "/late" {
					c.Send("hello", false)
					return
				}
				go func() {
					time.Sleep(10 * ka)
					answered.Store(int64(time.Since(start)))
					c.Send("late", false)
				}()
			}}}))
		start = time.Now()
		idle := dialPipe(t, ln)
		httpGet(t, idle, bufio.NewReader(idle))
		idleEnd := endOfAnswer(idle, start)
		late := dialPipe(t, ln)
		io.WriteString(late, "GET /late HTTP/1.1\r\nHost: t\r\n\r\n")
		lateEnd := endOfAnswer(late, start)
		checkEnded(t, "idle keep-alive", awaitFake(t, idleEnd, "idle"), ka, ka+wheelSlack, "")
		e := awaitFake(t, lateEnd, "late answer")
		at := time.Duration(answered.Load())
		if at == 0 || e.at < at+ka || e.at > at+ka+head+wheelSlack {
			t.Errorf("answered after %v, closed after %v: want a KeepAliveTimeout (%v) later, plus at most %v", at, e.at, ka, head)
		}
		if !strings.HasSuffix(e.got, "\r\n\r\nlate") {
			t.Errorf("late answer: got %q", e.got)
		}
	})
}

// TestBodyTimeoutRules: a body that stops is answered 408 and closed a
// BodyTimeout after its last byte; one dribbled a byte per quarter
// BodyTimeout (progress, but under BodyMinRate) at the end of its first
// window; one sent fast and then dribbled at the end of the first window
// that brings too little (the rate is measured window by window, so a
// burst buys no credit); one sent steadily above the rate is answered.
func TestBodyTimeoutRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const body, rate = time.Second, 1000
		_, ln := servePipe(t, only(connections.Config{Protocol: http.New(), BodyTimeout: body, BodyMinRate: rate,
			Handler: connections.Handler{OnMessage: hello}}))
		post := func(n int) string { return fmt.Sprintf("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", n) }
		start := time.Now()
		dribble := func(c net.Conn) {
			for {
				time.Sleep(body / 4)
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}

		stalled := dialPipe(t, ln)
		stalledEnd := endOfAnswer(stalled, start)
		io.WriteString(stalled, post(100)+strings.Repeat("x", 10))
		dribbled := dialPipe(t, ln)
		dribbledEnd := endOfAnswer(dribbled, start)
		io.WriteString(dribbled, post(100000))
		go dribble(dribbled)
		burst := dialPipe(t, ln)
		burstEnd := endOfAnswer(burst, start)
		io.WriteString(burst, post(100000))
		io.WriteString(burst, strings.Repeat("x", 50000))
		go dribble(burst)
		steady := dialPipe(t, ln)
		io.WriteString(steady, post(8000))
		for range 8 {
			time.Sleep(body / 4)
			io.WriteString(steady, strings.Repeat("x", 1000)) // 4,000 bytes a BodyTimeout
		}
		resp, err := nethttp.ReadResponse(bufio.NewReader(steady), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("steady body: %v, %v", resp, err)
		}

		checkEnded(t, "stalled body", awaitFake(t, stalledEnd, "stalled"), body, body+wheelSlack, "HTTP/1.1 408 ")
		// Mostly at the end of the first window; once in the gate (1 of
		// 31 runs) at the end of the second: which window the first
		// dribbled byte opens depends on the order the bubble runs the
		// goroutines in. Either way a dribbler is cut within two windows.
		checkEnded(t, "dribbled body", awaitFake(t, dribbledEnd, "dribbled"), body, 2*body+wheelSlack, "HTTP/1.1 408 ")
		checkEnded(t, "burst, then dribbled", awaitFake(t, burstEnd, "burst"), 2*body, 2*body+wheelSlack, "HTTP/1.1 408 ")
		time.Sleep(body) // the dribblers' next write fails: they end
	})
}

// TestPartialPacketRules: on a protocol that reports no phases (text), a
// connection that says nothing is never closed, while a partial line
// must make progress and keep the minimum rate as an HTTP body must; it
// is closed silently.
func TestPartialPacketRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const body = time.Second
		s, ln := servePipe(t, connections.Config{Protocol: text.New(), BodyTimeout: body, BodyMinRate: 100,
			Handler: connections.Handler{OnMessage: echo}})
		start := time.Now()
		quiet := dialPipe(t, ln)
		quietEnd := endOfAnswer(quiet, start)
		half := dialPipe(t, ln)
		halfEnd := endOfAnswer(half, start)
		io.WriteString(half, "no newline")
		slow := dialPipe(t, ln)
		slowEnd := endOfAnswer(slow, start)
		go func() {
			for {
				time.Sleep(body / 4)
				if _, err := slow.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		checkEnded(t, "half line", awaitFake(t, halfEnd, "half line"), body, body+wheelSlack, "")
		// Its first byte comes after a quarter BodyTimeout: the window
		// starts there.
		checkEnded(t, "slow line", awaitFake(t, slowEnd, "slow line"), body/4+body, body/4+body+wheelSlack, "")
		time.Sleep(100 * body)
		select {
		case e := <-quietEnd:
			t.Fatalf("quiet connection closed after %v", e.at)
		default:
		}
		if got := s.Stats().Closed; got[connections.ClosedBodyTimeout] != 1 || got[connections.ClosedBodyMinRate] != 1 || len(got) != 2 {
			t.Fatalf("Stats().Closed = %v, want one body_timeout and one body_min_rate", got)
		}
	})
}

// TestSendTimeoutRules: a connection whose peer takes none of its output
// is destroyed SendTimeout after the write began to wait, to the tick,
// however fast its peer sends; one whose peer reads slowly, but a piece
// at least every half SendTimeout, is not.
func TestSendTimeoutRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const send = time.Second
		piece := strings.Repeat("x", 1023)
		fill := func(c connections.Connection) {
			for c.Send(piece, false) == nil {
			}
		}
		var mu sync.Mutex
		closedAt := map[string]time.Duration{}
		var start time.Time
		s, ln := servePipe(t, only(connections.Config{Protocol: text.New(), SendTimeout: send, MaxSendBufferSize: 64 << 10,
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, d []byte) {
					if c.Context() == nil {
						c.SetContext(string(d))
						fill(c)
					}
				},
				OnBufferDrain: fill,
				OnClose: func(c connections.Connection) {
					mu.Lock()
					closedAt[c.Context().(string)] = time.Since(start)
					mu.Unlock()
				},
			}}))
		start = time.Now()
		deaf := dialPipe(t, ln)
		io.WriteString(deaf, "deaf\n")
		go func() { // sends on, reads nothing
			for {
				time.Sleep(send / 10)
				if _, err := io.WriteString(deaf, "more\n"); err != nil {
					return
				}
			}
		}()
		slow := dialPipe(t, ln)
		io.WriteString(slow, "slow\n")
		buf := make([]byte, 64<<10)
		for time.Since(start) < 10*send {
			time.Sleep(send / 2)
			if _, err := io.ReadFull(slow, buf); err != nil {
				t.Fatalf("slow reader after %v: %v", time.Since(start), err)
			}
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if at, ok := closedAt["deaf"]; !ok || at < send || at > send+wheelSlack {
			t.Errorf("deaf peer's connection closed after %v (%v), want %v", at, ok, send)
		}
		if at, ok := closedAt["slow"]; ok {
			t.Errorf("slow reader's connection closed after %v", at)
		}
		if got := s.Stats().Closed[connections.ClosedSendTimeout]; got != 1 {
			t.Errorf("%d send timeouts counted, want 1", got)
		}
	})
}

// TestTimeoutRulesWaitForTheApplication: time spent in a callback does
// not count against the peer: a pipelined partial head behind a request
// whose OnMessage runs for ten HeaderTimeouts is closed only within a
// HeaderTimeout after the callback returned.
func TestTimeoutRulesWaitForTheApplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const head = time.Second
		var start time.Time
		var returned atomic.Int64
		_, ln := servePipe(t, only(connections.Config{Protocol: http.New(), HeaderTimeout: head,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				time.Sleep(10 * head)
				returned.Store(int64(time.Since(start)))
				c.Send("slow", false)
			}}}))
		start = time.Now()
		c := dialPipe(t, ln)
		end := endOfAnswer(c, start)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HT")
		e := awaitFake(t, end, "connection")
		at := time.Duration(returned.Load())
		if at == 0 || e.at < at || e.at > at+head+wheelSlack {
			t.Fatalf("callback returned after %v, connection closed after %v: want within a HeaderTimeout (%v)", at, e.at, head)
		}
		if !strings.Contains(e.got, "\r\n\r\nslowHTTP/1.1 408 ") {
			t.Fatalf("got %q, want the answer then 408", e.got)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines(msg string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.b.String(), "\n") {
		if strings.Contains(l, msg) {
			out = append(out, l)
		}
	}
	return out
}

// TestTimeoutCutsLoggedOncePerInterval: 50 connections cut by one rule at
// the same moment, and 50 more a second later, make two log lines: the
// first cut at once, the other 99 in one summary ten seconds later; the
// count per reason is in Stats.
func TestTimeoutCutsLoggedOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const head = time.Second
		var logs syncBuffer
		s := connections.NewServer(only(connections.Config{Protocol: http.New(), HeaderTimeout: head, Engine: connections.EngineStd,
			Logger: zerolog.New(&logs)}))
		ln := testkit.NewPipeListener(t)
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		t.Cleanup(func() { s.Close(); <-done })
		for range 2 {
			for range 50 {
				go io.Copy(io.Discard, dialPipe(t, ln))
			}
			time.Sleep(head)
		}
		time.Sleep(12 * time.Second)
		synctest.Wait()
		const msg = `"message":"connections closed by a timeout"`
		lines := logs.lines(msg)
		if len(lines) != 2 || !strings.Contains(lines[0], `"connections":1,`) || !strings.Contains(lines[1], `"connections":99,`) ||
			!strings.Contains(lines[0], `"reason":"header_timeout"`) {
			t.Fatalf("log lines:\n%s\nwant two: 1, then 99 connections", strings.Join(lines, "\n"))
		}
		if got := s.Stats().Closed; got[connections.ClosedHeaderTimeout] != 100 || len(got) != 1 {
			t.Fatalf("Stats().Closed = %v, want 100 header timeouts", got)
		}
	})
}

// TestTimeoutsOverSockets: over real sockets, with each engine, a
// slowloris head is answered 408 and closed after HeaderTimeout, an idle
// keep-alive connection closed after KeepAliveTimeout, and a client that
// pipelines requests and never reads destroyed SendTimeout after its
// output stopped, never before (margins wide for a loaded machine).
func TestTimeoutsOverSockets(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		t.Parallel()
		const d = time.Second
		s, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: http.New(), HeaderTimeout: d, KeepAliveTimeout: d, SendTimeout: d, MaxSendBufferSize: 64 << 10,
			Handler: connections.Handler{OnMessage: hello}})
		start := time.Now()
		slow := dial(t, "tcp", addr)
		slowEnd := endOfAnswer(slow, start)
		go func() {
			for i := 0; ; i++ {
				if _, err := slow.Write([]byte{"GET / HTTP/1.1\r\n"[i%16]}); err != nil {
					return
				}
				time.Sleep(d / 5)
			}
		}()
		idle := dial(t, "tcp", addr)
		asked := time.Since(start) // the wait starts once the server has read the request
		httpGet(t, idle, bufio.NewReader(idle))
		idleEnd := endOfAnswer(idle, start)
		deaf := dial(t, "tcp", addr)
		deafEnd := make(chan time.Duration, 1)
		go func() {
			req := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n"), 512)
			for {
				if _, err := deaf.Write(req); err != nil {
					deafEnd <- time.Since(start)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		e := <-slowEnd
		if e.at < d || e.at > d+3*time.Second || !strings.HasPrefix(e.got, "HTTP/1.1 408 ") {
			t.Errorf("slowloris: closed after %v with %q, want 408 after %v", e.at, e.got, d)
		}
		e = <-idleEnd
		if e.at < asked+d || e.at > asked+d+3*time.Second || e.got != "" {
			t.Errorf("idle keep-alive: asked after %v, closed after %v with %q, want silently %v later", asked, e.at, e.got, d)
		}
		if at := <-deafEnd; at < d || at > d+8*time.Second {
			t.Errorf("pipelining non-reader: destroyed after %v, want some seconds after %v", at, d)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "connections gone", func() error {
			if n := s.Stats().Connections; n != 0 {
				return fmt.Errorf("%d connections open", n)
			}
			return nil
		})
		got := s.Stats().Closed
		for _, r := range []string{connections.ClosedHeaderTimeout, connections.ClosedKeepAliveTimeout, connections.ClosedSendTimeout} {
			if got[r] != 1 {
				t.Errorf("Stats().Closed = %v, want one %s", got, r)
			}
		}
	})
}
