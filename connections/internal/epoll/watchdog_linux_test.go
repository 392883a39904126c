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
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
)

const blockedMsg = "event loop blocked by a callback; its other connections wait (see Config.CallbackGoroutines)"

// watchdogWarning is a warning of the watchdog as logged.
type watchdogWarning struct {
	Loop       int     `json:"loop"`
	Callback   string  `json:"callback"`
	Conn       uint64  `json:"conn"`
	BlockedFor float64 `json:"blocked_for_ms"`
}

// watchdogWarnings returns the watchdog's warnings in logs.
func watchdogWarnings(t testing.TB, logs *syncBuffer) []watchdogWarning {
	t.Helper()
	return watchdogWarningsSince(t, logs, 0)
}

// watchdogWarningsSince is watchdogWarnings of what was logged after the
// log's first mark bytes.
func watchdogWarningsSince(t testing.TB, logs *syncBuffer, mark int) []watchdogWarning {
	t.Helper()
	var ws []watchdogWarning
	for _, line := range strings.Split(logs.String()[mark:], "\n") {
		if !strings.Contains(line, blockedMsg) {
			continue
		}
		var w watchdogWarning
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		ws = append(ws, w)
	}
	return ws
}

// watchServer starts s on a loopback listener and returns its address and
// the engine; s is closed at the end of the test.
func watchServer(t *testing.T, s *core.Runtime) (string, *epollEngine) {
	t.Helper()
	addr := serve(t, s)
	var e *epollEngine
	for _, en := range s.Engines() {
		if ee, ok := en.(*epollEngine); ok {
			e = ee
		}
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the watchdog", func() bool {
		s.Mu.Lock()
		defer s.Mu.Unlock()
		return e.wd != nil
	})
	return addr.String(), e
}

// waitRounds waits until the watchdog of e has sampled the loops n more
// times.
func waitRounds(t *testing.T, e *epollEngine, n uint64) {
	t.Helper()
	s := e.rt
	s.Mu.Lock()
	wd := e.wd
	s.Mu.Unlock()
	end := wd.Rounds.Load() + n
	testkit.Eventually(t, testkit.Wait, testkit.Poll, fmt.Sprintf("%d watchdog rounds", n), func() bool {
		return wd.Rounds.Load() >= end
	})
}

// TestWatchdogNamesBlockingCallback: a callback that blocks its loop for
// longer than the threshold is reported with the loop, the callback, the
// connection and how long it has blocked; the loop's other connections
// are served again once it returns.
func TestWatchdogNamesBlockingCallback(t *testing.T) {
	const after = 20 * time.Millisecond
	cases := []struct {
		name string
		// block makes h block in the callback under test until release is
		// closed, or sleep.
		block func(h *core.Handler, release <-chan struct{})
		// provoke makes the connection run the callback.
		provoke func(t *testing.T, c net.Conn)
		cb      string
	}{
		{name: "OnMessage sleeps", cb: "OnMessage",
			block: func(h *core.Handler, _ <-chan struct{}) {
				h.OnMessage = func(c core.Connection, d []byte) {
					if string(d) == "sleep" {
						time.Sleep(20 * after) // the blocking under test
					}
					c.SendBytes(d, false)
				}
			},
			provoke: func(t *testing.T, c net.Conn) { io.WriteString(c, "sleep\n") }},
		{name: "OnMessage waits", cb: "OnMessage",
			block: func(h *core.Handler, release <-chan struct{}) {
				h.OnMessage = func(c core.Connection, d []byte) {
					if string(d) == "wait" {
						<-release
					}
					c.SendBytes(d, false)
				}
			},
			provoke: func(t *testing.T, c net.Conn) { io.WriteString(c, "wait\n") }},
		{name: "OnConnect", cb: "OnConnect",
			block: func(h *core.Handler, release <-chan struct{}) {
				first := true
				h.OnConnect = func(core.Connection) {
					if first {
						first = false
						<-release
					}
				}
			},
			provoke: func(*testing.T, net.Conn) {}},
		{name: "OnBufferDrain", cb: "OnBufferDrain",
			block: func(h *core.Handler, release <-chan struct{}) {
				h.OnMessage = func(c core.Connection, d []byte) {
					if string(d) != "fill" {
						c.SendBytes(d, false)
						return
					}
					chunk := testkit.Pattern(16 << 10)
					for c.SendBytes(chunk, false) == nil {
					}
				}
				first := true
				h.OnBufferDrain = func(core.Connection) {
					if first {
						first = false
						<-release
					}
				}
			},
			provoke: func(t *testing.T, c net.Conn) {
				io.WriteString(c, "fill\n")
				go io.Copy(io.Discard, c) // drains the send buffer
			}},
		{name: "OnClose", cb: "OnClose",
			block: func(h *core.Handler, release <-chan struct{}) {
				first := true
				h.OnClose = func(core.Connection) {
					if first {
						first = false
						<-release
					}
				}
			},
			provoke: func(t *testing.T, c net.Conn) { c.(*net.TCPConn).CloseWrite() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			release := make(chan struct{})
			var releaseOnce sync.Once
			free := func() { releaseOnce.Do(func() { close(release) }) }
			h := core.Handler{OnMessage: func(c core.Connection, d []byte) { c.SendBytes(d, false) }}
			tc.block(&h, release)
			const route = 7 << 32 // a worker's route, as goes sets it
			s := newServer(core.Config{
				Engine: core.EngineEpoll, Loops: 1, IDBase: route, MaxSendBufferSize: 64 << 10,
				Protocol: text.New(), Logger: zerolog.New(logs), Handler: h,
			})
			s.StallAfter = after
			addr, _ := watchServer(t, s)
			// Registered after the server's Close, so run before it: a
			// test that fails with the callback still blocked ends
			// instead of waiting for it in Close.
			t.Cleanup(free)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testkit.Wait))
			tc.provoke(t, c)
			// The warning of the callback under test: on a loaded machine
			// another callback of the loop may have outlasted the threshold
			// too (the OnMessage that fills the buffer) and be reported
			// first, rightly.
			var w watchdogWarning
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "the warning", func() error {
				for _, ws := range watchdogWarnings(t, logs) {
					if ws.Callback == tc.cb {
						w = ws
						return nil
					}
				}
				return fmt.Errorf("no warning of %s; log:\n%s", tc.cb, logs.String())
			})
			free()
			if w.Loop != 0 || w.Callback != tc.cb || w.Conn != route|1 || w.BlockedFor < float64(after/time.Millisecond) {
				t.Fatalf("warning %+v, want loop 0, callback %s, conn %d, blocked_for_ms >= %v", w, tc.cb, route|1, after)
			}
			// The loop serves again: another connection is answered.
			c2, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			c2.SetDeadline(time.Now().Add(testkit.Wait))
			io.WriteString(c2, "again\n")
			if l, err := bufio.NewReader(c2).ReadString('\n'); err != nil || l != "again\n" {
				t.Fatalf("got %q, %v", l, err)
			}
		})
	}
}

// TestWatchdogQuietWhileDraining: a draining server whose only connection
// is idle logs no warning while the connection stays open, though the
// loops without connections have ended (the watchdog used to take such a
// loop for one stuck in a callback) and the one with it waits for events.
func TestWatchdogQuietWhileDraining(t *testing.T) {
	logs := &syncBuffer{}
	s := newServer(core.Config{
		Engine: core.EngineEpoll, Loops: 3, Protocol: text.New(), Logger: zerolog.New(logs),
		Handler: core.Handler{OnMessage: func(c core.Connection, d []byte) { c.SendBytes(d, false) }},
	})
	s.StallAfter = 10 * time.Millisecond
	addr, e := watchServer(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testkit.Wait))
	r := bufio.NewReader(c)
	io.WriteString(c, "before\n")
	if l, err := r.ReadString('\n'); err != nil || l != "before\n" {
		t.Fatalf("got %q, %v", l, err)
	}
	s.Drain()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the idle loops to end", func() bool {
		ended := 0
		for _, l := range e.loopList() {
			l.tmu.Lock()
			if l.dead {
				ended++
			}
			l.tmu.Unlock()
		}
		return ended == 2
	})
	waitRounds(t, e, 40) // ten thresholds
	if ws := watchdogWarnings(t, logs); len(ws) > 0 {
		t.Fatalf("warnings while draining: %+v", ws)
	}
	io.WriteString(c, "during\n")
	if l, err := r.ReadString('\n'); err != nil || l != "during\n" {
		t.Fatalf("got %q, %v", l, err)
	}
	c.Close()
	select {
	case <-s.Done():
	case <-time.After(testkit.Wait):
		t.Fatal("the drain did not end")
	}
}

// TestWatchdogQuietDuringFanOut: a loop that spends far longer than the
// threshold in one pass writing frames that another goroutine queued for
// its many connections (a group broadcast) runs no callback and is not
// reported. The test holds the loop (a function posted to it waits) while
// it queues the frames, so that they are all written in the pass that
// follows; functions posted to the loop just before and after the frames
// read the clock around the writes, inside that one pass, and the writing
// must have lasted several thresholds.
func TestWatchdogQuietDuringFanOut(t *testing.T) {
	const (
		conns  = 500
		frame  = 16 << 10
		rounds = 4
		after  = 2 * time.Millisecond
		// The watchdog reports a callback that has run for after and a
		// quarter at the latest: the writes must outlast that surely.
		atLeast = 2 * after
	)
	logs := &syncBuffer{}
	s := newServer(core.Config{Engine: core.EngineEpoll, Loops: 1, Logger: zerolog.New(logs)})
	s.StallAfter = after
	addr, e := watchServer(t, s)
	var received sync.WaitGroup
	received.Add(conns)
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Wait))
		go func() {
			defer received.Done()
			if _, err := io.ReadFull(c, make([]byte, rounds*frame)); err != nil {
				errs <- err
			}
		}()
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the connections", func() bool { return s.Stats().Connections == conns })
	loops := e.loopList()
	if len(loops) != 1 {
		t.Fatalf("%d loops, want 1", len(loops))
	}
	l := loops[0]
	members := s.All()
	busy := s.Stats().LoopBusy
	// Only the fan-out's pass is judged: while 500 connections arrive on
	// a loaded machine (the gate's -race run), an OnConnect whose loop the
	// kernel descheduled is rightly reported as blocked (2.5 ms once).
	// Two watchdog rounds first: what it saw of that phase is logged.
	waitRounds(t, e, 2)
	mark := len(logs.String())

	// Hold the loop in a pass; queue every frame; mark the end of the
	// writes; let the loop go (runQueue takes the queued connections and
	// then the functions posted with them, until none is left, in the
	// same pass).
	held, release, wrote := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var start, end int64 // s.clock on the loop, around the writes
	l.postFunc(func() {
		close(held)
		<-release
		start = s.Clock()
	})
	<-held
	msg := testkit.Pattern(frame)
	for range rounds {
		for _, c := range members {
			if err := c.SendBytes(msg, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.postFunc(func() {
		end = s.Clock()
		close(wrote)
	})
	close(release)
	<-wrote
	received.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitRounds(t, e, 2)
	writing := time.Duration(end - start)
	t.Logf("one loop pass wrote %d frames of %d bytes in %v (threshold %v); loop busy %v in all, the hold included", conns*rounds, frame, writing, after,
		s.Stats().LoopBusy-busy)
	if writing < atLeast {
		t.Fatalf("the loop wrote the fan-out in %v, less than %v: the test proves nothing about a long pass", writing, atLeast)
	}
	if ws := watchdogWarningsSince(t, logs, mark); len(ws) > 0 {
		t.Fatalf("warnings during fan-out: %+v", ws)
	}
}
