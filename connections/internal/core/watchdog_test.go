package core_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/internal/testkit"
)

// lockedBuffer is a log sink safe for the watchdog and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWatchdog runs a Watchdog over loops marks until the test ends.
func startWatchdog(t *testing.T, after time.Duration, loops int) (*core.Watchdog, []*core.CbMark, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	w := &core.Watchdog{Log: zerolog.New(logs), After: after}
	marks := make([]*core.CbMark, loops)
	for i := range marks {
		marks[i] = &core.CbMark{}
	}
	w.Loops = marks
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go w.Run(stop, &wg)
	t.Cleanup(func() { close(stop); wg.Wait() })
	return w, marks, logs
}

// TestWatchdogRestsWhenIdle: loops that enter no callback for a whole
// threshold let the watchdog rest: it samples once every RestRounds
// thresholds instead of four times per threshold (an idle worker's
// watchdog does not wake it four times a second).
func TestWatchdogRestsWhenIdle(t *testing.T) {
	const after = 20 * time.Millisecond
	w, marks, _ := startWatchdog(t, after, 2)
	marks[0].Enter(core.CbMessage, 1)
	marks[0].Leave()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the watchdog to rest", func() bool { return w.Rests.Load() >= 1 })
	r0, t0 := w.Rounds.Load(), time.Now()
	time.Sleep(5 * after) // a window in which a watchdog that does not rest samples 20 times
	n, took := w.Rounds.Load()-r0, time.Since(t0)
	if most := uint64(took/(core.RestRounds*after)) + 1; n > most {
		t.Fatalf("%d samplings in %v while resting; at most one every %v", n, took, core.RestRounds*after)
	}
}

// TestWatchdogWokenByCallback: a callback that starts while the watchdog
// rests wakes it: the callback is reported once it has run for the
// threshold, long before the resting watchdog's next sampling would have
// seen it, and not before; while it runs, the watchdog does not rest.
func TestWatchdogWokenByCallback(t *testing.T) {
	const after = 100 * time.Millisecond
	w, marks, logs := startWatchdog(t, after, 3)
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the watchdog to rest", func() bool { return w.Rests.Load() >= 1 })
	rests := w.Rests.Load()
	start := time.Now()
	marks[1].Enter(core.CbMessage, 42) // and blocks: no Leave
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the warning", func() bool {
		return strings.Contains(logs.String(), "event loop blocked")
	})
	took := time.Since(start)
	var warn struct {
		Loop       int     `json:"loop"`
		Callback   string  `json:"callback"`
		Conn       uint64  `json:"conn"`
		BlockedFor float64 `json:"blocked_for_ms"`
	}
	line, _, _ := strings.Cut(logs.String(), "\n")
	if err := json.Unmarshal([]byte(line), &warn); err != nil {
		t.Fatalf("log %q: %v", line, err)
	}
	if warn.Loop != 1 || warn.Callback != "OnMessage" || warn.Conn != 42 || warn.BlockedFor < float64(after/time.Millisecond) || took < after {
		t.Fatalf("warning %+v after %v; want loop 1, OnMessage, conn 42, blocked for at least %v", warn, took, after)
	}
	if took >= core.RestRounds*after {
		t.Fatalf("warned %v after the callback began: the resting watchdog was not woken (it samples every %v)", took, core.RestRounds*after)
	}
	time.Sleep(2 * after) // a blocked callback is no rest: it goes on sampling
	if n := w.Rests.Load() - rests; n != 0 {
		t.Fatalf("rested %d times while a callback ran", n)
	}
	marks[1].Leave()
}
