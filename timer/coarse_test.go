package timer

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// TestSlack holds the documented slack: none below a second, at most d/8
// and at most a second above, each step dividing the next.
func TestSlack(t *testing.T) {
	for _, c := range []struct{ d, want time.Duration }{
		{0, 0},
		{-time.Second, 0},
		{time.Millisecond, 0},
		{time.Second - 1, 0},
		{time.Second, 125 * time.Millisecond},
		{2*time.Second - 1, 125 * time.Millisecond},
		{2 * time.Second, 250 * time.Millisecond},
		{4 * time.Second, 500 * time.Millisecond},
		{8*time.Second - 1, 500 * time.Millisecond},
		{8 * time.Second, time.Second},
		{75 * time.Second, time.Second},
		{1000 * time.Hour, time.Second},
	} {
		if got := Slack(c.d); got != c.want {
			t.Errorf("Slack(%v) = %v, want %v", c.d, got, c.want)
		}
		if s := Slack(c.d); s > max(c.d/8, 0) || s > time.Second {
			t.Errorf("Slack(%v) = %v: more than d/8 or a second", c.d, s)
		}
	}
}

// TestCoarseGuarantees holds the promise of ScheduleCoarse, Reset of a
// coarse Timer and Idle.StartCoarse, in the bubble's exact time: never
// early, late by at most Slack(d) (no tick on top: the boundaries are
// whole ticks); below a second, exact (at most a tick late, as Schedule).
// Schedule after ScheduleCoarse is exact again.
func TestCoarseGuarantees(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		rng := rand.New(rand.NewPCG(1, 2))
		durs := []time.Duration{time.Millisecond, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond, 3 * time.Second, 30 * time.Second, 75 * time.Second}
		for range 300 {
			durs = append(durs, time.Duration(rng.Int64N(int64(90*time.Second))))
		}
		check := func(what string, d, late time.Duration, exact bool) {
			t.Helper()
			bound := Slack(d)
			if exact {
				bound = 0
			}
			if late < 0 || late > bound+time.Millisecond {
				t.Errorf("%s of %v ran %v late, want 0 to %v", what, d, late, bound+time.Millisecond)
			}
		}
		type run struct {
			what  string
			d     time.Duration
			exact bool
			at    time.Time // when it was (re)armed
			late  time.Duration
			fired bool
		}
		runs := make([]*run, 0, 4*len(durs))
		timers := make([]Timer, 3*len(durs))
		idles := make([]Idle, len(durs))
		for i, d := range durs {
			// Arm at an arbitrary offset within the wheel's second.
			time.Sleep(time.Duration(rng.Int64N(int64(time.Second))) + 1)
			r := &run{what: "ScheduleCoarse", d: d, at: time.Now()}
			w.ScheduleCoarse(&timers[3*i], d, func() { r.late, r.fired = time.Since(r.at)-r.d, true })

			// Coarse, then Reset: coarse.
			r2 := &run{what: "Reset of a coarse Timer", d: d}
			w.ScheduleCoarse(&timers[3*i+1], time.Hour, func() { r2.late, r2.fired = time.Since(r2.at)-r2.d, true })
			time.Sleep(time.Duration(rng.Int64N(int64(time.Second))) + 1)
			r2.at = time.Now()
			timers[3*i+1].Reset(d)

			// Coarse, then Schedule: exact.
			r3 := &run{what: "Schedule after ScheduleCoarse", d: d, exact: true}
			w.ScheduleCoarse(&timers[3*i+2], time.Hour, func() {})
			r3.at = time.Now()
			w.Schedule(&timers[3*i+2], d, func() { r3.late, r3.fired = time.Since(r3.at)-r3.d, true })

			// An Idle touched once after its start: its deadline moves.
			r4 := &run{what: "Idle.StartCoarse", d: d}
			idles[i].StartCoarse(w, d, func() { r4.late, r4.fired = time.Since(r4.at)-r4.d, true })
			time.Sleep(time.Duration(rng.Int64N(int64(d/2 + 1))))
			r4.at = time.Now()
			idles[i].Touch()
			runs = append(runs, r, r2, r3, r4)
		}
		time.Sleep(100 * time.Second)
		synctest.Wait()
		for _, r := range runs {
			if !r.fired {
				t.Errorf("%s of %v never ran", r.what, r.d)
				continue
			}
			check(r.what, r.d, r.late, r.exact || r.d < time.Second)
		}
	})
}

// TestCoarseWakeups is the wheel of a worker holding 100,000 idle
// connections: each node due 10 to 60 s after it is armed, armed at its
// own instant (accepts spread over 10 s) and re-armed from its callback
// for another 10 to 60 s, as a connection's timeouts are. Coarse, the
// wheel wakes at most once a second whatever the node count; exact, it
// woke on nearly every tick with a due node (thousands of times in the
// window).
func TestCoarseWakeups(t *testing.T) {
	const n = 100_000
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		rng := rand.New(rand.NewPCG(3, 4))
		timers := make([]Timer, n)
		period := func() time.Duration { return 10*time.Second + time.Duration(rng.Int64N(int64(50*time.Second))) }
		var fired int
		for i := range timers {
			if i%100 == 0 {
				time.Sleep(10 * time.Millisecond) // 100 accepts per 10 ms
			}
			tm := &timers[i]
			w.ScheduleCoarse(tm, period(), func() {
				fired++
				tm.Reset(period())
			})
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		w0, f0 := w.wakeups.Load(), fired
		const window = 100 * time.Second
		time.Sleep(window)
		synctest.Wait()
		wakes, fires := w.wakeups.Load()-w0, fired-f0
		t.Logf("%d nodes: %d callbacks and %d wake-ups in %v", n, fires, wakes, window)
		if fires < n {
			t.Fatalf("%d callbacks in %v, want at least %d (one per node)", fires, window, n)
		}
		if max := uint64(window/time.Second) + 1; wakes > max {
			t.Fatalf("%d wake-ups in %v, want at most %d (one a second)", wakes, window, max)
		}
	})
}

// TestCoarseIdleWakeups is TestCoarseWakeups for Idles started with
// StartCoarse and touched now and then: the re-arm for the time left after
// a touch is coarse too, so 10,000 of them cost at most one wake-up a
// second.
func TestCoarseIdleWakeups(t *testing.T) {
	const n = 10_000
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		rng := rand.New(rand.NewPCG(5, 6))
		idles := make([]Idle, n)
		var idled int
		for i := range idles {
			if i%100 == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			idles[i].StartCoarse(w, 30*time.Second, func() { idled++ })
		}
		w0 := w.wakeups.Load()
		const window = 100 * time.Second
		// A few touches every 100 ms, at random, for 60 s; then silence,
		// in which every Idle times out (30 s and up to a second).
		for range 600 {
			time.Sleep(100 * time.Millisecond)
			for range 20 {
				idles[rng.IntN(n)].Touch()
			}
		}
		time.Sleep(window - 60*time.Second)
		synctest.Wait()
		wakes := w.wakeups.Load() - w0
		t.Logf("%d idles: %d timed out, %d wake-ups in %v", n, idled, wakes, window)
		if idled != n {
			t.Fatalf("%d of %d idles timed out, want all", idled, n)
		}
		if max := uint64(window/time.Second) + 1; wakes > max {
			t.Fatalf("%d wake-ups in %v, want at most %d (one a second)", wakes, window, max)
		}
	})
}
