package timer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

const day = 24 * time.Hour

// levelDurations straddles the edge of every level (1 ms tick: 64 ms,
// 4.096 s, 262 s, 4.66 h, 12.4 days, 795 days) and the overflow list.
var levelDurations = []time.Duration{
	0, 1, 999 * time.Microsecond, time.Millisecond, time.Millisecond + 1,
	63 * time.Millisecond, 64 * time.Millisecond, 65 * time.Millisecond,
	4095 * time.Millisecond, 4096 * time.Millisecond, 4097 * time.Millisecond,
	262143 * time.Millisecond, 262144 * time.Millisecond, time.Hour,
	16777215 * time.Millisecond, 16777216 * time.Millisecond, 5 * time.Hour,
	12 * day, 13 * day, 21 * day,
	(1<<36 - 1) * time.Millisecond, (1 << 36) * time.Millisecond, 800 * day, 2000 * day,
}

// TestNeverEarlyAcrossLevels schedules timers on every level and across
// every level's edge, at several phases of the tick and of the wheel's
// cascades, and checks that each runs exactly once, no earlier than due
// and less than one tick after (synctest time has no scheduling delay).
func TestNeverEarlyAcrossLevels(t *testing.T) {
	offsets := []time.Duration{0, 1, 400 * time.Microsecond, 999999, 37 * time.Millisecond, 4100 * time.Millisecond, 7*day + 3}
	for _, tick := range []time.Duration{time.Millisecond, 10 * time.Millisecond} {
		for _, off := range offsets {
			t.Run(fmt.Sprintf("tick=%v/offset=%v", tick, off), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					w := startWheel(t, Options{Tick: tick})
					// A far timer makes the wheel's clock lag behind real
					// time while it sleeps: later adds land on stale levels.
					w.Add(3000*day, func() {}, false)
					time.Sleep(off)
					var mu sync.Mutex
					fired := make([][]time.Time, 2*len(levelDurations))
					nodes := make([]Timer, len(levelDurations))
					start := time.Now()
					for i, d := range levelDurations {
						w.Add(d, func() { mu.Lock(); fired[i] = append(fired[i], time.Now()); mu.Unlock() }, false)
						w.Schedule(&nodes[i], d, func() {
							mu.Lock()
							fired[len(levelDurations)+i] = append(fired[len(levelDurations)+i], time.Now())
							mu.Unlock()
						})
					}
					if err := checkInvariants(w); err != nil {
						t.Fatal(err)
					}
					time.Sleep(2001 * day)
					synctest.Wait()
					mu.Lock()
					defer mu.Unlock()
					for i, f := range fired {
						d := levelDurations[i%len(levelDurations)]
						due := start.Add(d)
						if len(f) != 1 {
							t.Errorf("timer %d (%v): fired %d times, want 1", i, d, len(f))
							continue
						}
						if late := f[0].Sub(due); late < 0 || late >= tick {
							t.Errorf("timer %d (%v): fired %v after due, want [0, %v)", i, d, late, tick)
						}
					}
					if err := checkInvariants(w); err != nil {
						t.Fatal(err)
					}
				})
			})
		}
	}
}

// TestRandomSchedules drives the wheel with random adds, cancels and resets
// of user timers and Timers, interleaved with random waits from a
// microsecond to days, and checks after every step that exactly the timers
// due by now have run, once each, within a tick of their due time, and
// that the wheel's structure is sound.
func TestRandomSchedules(t *testing.T) {
	for _, tick := range []time.Duration{time.Millisecond, time.Microsecond, 7 * time.Millisecond} {
		t.Run(fmt.Sprintf("tick=%v", tick), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				runRandomSchedules(t, tick, 4000)
			})
		})
	}
}

func runRandomSchedules(t *testing.T, tick time.Duration, steps int) {
	rng := rand.New(rand.NewPCG(1, uint64(tick)))
	w := startWheel(t, Options{Tick: tick})
	type tracked struct {
		due   time.Time // zero: cancelled
		node  *Timer    // nil for user timers
		id    ID
		fired []time.Time
	}
	var (
		mu  sync.Mutex
		all []*tracked
	)
	randDur := func() time.Duration { // log-uniform, 1 µs .. ~45 days
		return time.Duration(float64(time.Microsecond) * math.Exp2(rng.Float64()*42))
	}
	newTracked := func() *tracked {
		tr := &tracked{}
		mu.Lock()
		all = append(all, tr)
		mu.Unlock()
		return tr
	}
	record := func(tr *tracked) func() {
		return func() { mu.Lock(); tr.fired = append(tr.fired, time.Now()); mu.Unlock() }
	}
	pending := func() []*tracked {
		var p []*tracked
		now := time.Now()
		for _, tr := range all {
			if !tr.due.IsZero() && tr.due.After(now) {
				p = append(p, tr)
			}
		}
		return p
	}
	for step := range steps {
		switch op := rng.IntN(10); {
		case op < 4:
			d := randDur()
			tr := newTracked()
			tr.due = time.Now().Add(d)
			tr.id = w.Add(d, record(tr), false)
		case op < 7:
			d := randDur()
			tr := newTracked()
			tr.node = new(Timer)
			tr.due = time.Now().Add(d)
			w.Schedule(tr.node, d, record(tr))
		case op < 8: // cancel a pending one
			mu.Lock()
			p := pending()
			mu.Unlock()
			if len(p) == 0 {
				break
			}
			tr := p[rng.IntN(len(p))]
			var ok bool
			if tr.node != nil {
				ok = tr.node.Stop()
			} else {
				ok = w.Del(tr.id)
			}
			if !ok {
				t.Fatalf("step %d: cancel of a pending timer due %v returned false", step, tr.due)
			}
			tr.due = time.Time{}
		case op < 9: // reset a pending Timer
			mu.Lock()
			p := pending()
			mu.Unlock()
			for _, tr := range p {
				if tr.node != nil {
					d := randDur()
					if !tr.node.Reset(d) {
						t.Fatalf("step %d: Reset of a pending Timer returned false", step)
					}
					tr.due = time.Now().Add(d)
					break
				}
			}
		default:
			time.Sleep(randDur())
			synctest.Wait()
			if err := checkInvariants(w); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			verifyTracked(t, &mu, func(yield func(due time.Time, fired []time.Time)) {
				for _, tr := range all {
					yield(tr.due, tr.fired)
				}
			}, tick)
		}
	}
	time.Sleep(50 * day)
	synctest.Wait()
	verifyTracked(t, &mu, func(yield func(due time.Time, fired []time.Time)) {
		for _, tr := range all {
			yield(tr.due, tr.fired)
		}
	}, tick)
	if n := w.Len(); n != 0 {
		t.Errorf("Len() = %d after everything fired, want 0", n)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d timers, wheel woke %d times", len(all), w.wakeups.Load())
}

// verifyTracked checks timers against the current (fake) time.
func verifyTracked(t *testing.T, mu *sync.Mutex, each func(func(due time.Time, fired []time.Time)), tick time.Duration) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	now := time.Now()
	bad := 0
	each(func(due time.Time, fired []time.Time) {
		if bad > 5 {
			return
		}
		switch {
		case due.IsZero() || due.After(now):
			// Cancelled, or not due yet. Only pending timers are cancelled
			// or reset, so nothing may have fired.
			if len(fired) != 0 {
				t.Errorf("timer due %v (now %v) fired at %v", due, now, fired)
				bad++
			}
		case len(fired) == 0 && now.Sub(due) < tick:
			// Due, but the tick it is due in may not have ended.
		case len(fired) != 1:
			t.Errorf("timer due %v fired %d times by %v", due, len(fired), now)
			bad++
		case fired[0].Before(due) || fired[0].Sub(due) >= tick:
			t.Errorf("timer due %v fired at %v (%v late), want within [0, %v)", due, fired[0], fired[0].Sub(due), tick)
			bad++
		}
	})
}
