package timer

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// counter counts calls; safe for concurrent use.
type counter struct{ n atomic.Int64 }

func (c *counter) inc()       { c.n.Add(1) }
func (c *counter) get() int64 { return c.n.Load() }

func TestCancel(t *testing.T) {
	cases := []struct {
		name string
		// run schedules and cancels; it returns the number of calls it
		// expects by the end and checks its own return values.
		run func(t *testing.T, w *Wheel, c *counter) int64
	}{
		{name: "user/before", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			id := w.Add(time.Second, c.inc, false)
			time.Sleep(999 * time.Millisecond)
			if !w.Del(id) {
				t.Error("Del of a pending timer = false")
			}
			if w.Del(id) {
				t.Error("second Del = true")
			}
			return 0
		}},
		{name: "user/after", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			id := w.Add(time.Second, c.inc, false)
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if w.Del(id) {
				t.Error("Del after firing = true")
			}
			return 1
		}},
		{name: "user/persistent-between-calls", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			id := w.Add(time.Second, c.inc, true)
			time.Sleep(3500 * time.Millisecond)
			if !w.Del(id) {
				t.Error("Del of a persistent timer = false")
			}
			return 3
		}},
		{name: "user/own-callback-persistent", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var id atomic.Uint64 // written after Add returns, read by the callback
			var got []bool
			id.Store(uint64(w.Add(time.Second, func() {
				c.inc()
				if c.get() == 2 {
					got = append(got, w.Del(ID(id.Load())), w.Del(ID(id.Load())))
				}
			}, true)))
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if len(got) != 2 || !got[0] || got[1] {
				t.Errorf("Del from own callback = %v, want [true false]", got)
			}
			return 2
		}},
		{name: "user/own-callback-oneshot", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var id atomic.Uint64
			var got atomic.Bool
			got.Store(true)
			id.Store(uint64(w.Add(time.Second, func() { c.inc(); got.Store(w.Del(ID(id.Load()))) }, false)))
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if got.Load() {
				t.Error("Del of a one-shot timer from its own callback = true")
			}
			return 1
		}},
		{name: "user/same-tick-other-callback", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			// a and b are due in the same tick; whichever runs first
			// deletes the other, which must then not run.
			var a, b atomic.Uint64
			var dels atomic.Int64
			a.Store(uint64(w.Add(time.Second, func() {
				c.inc()
				if w.Del(ID(b.Load())) {
					dels.Add(1)
				}
			}, false)))
			b.Store(uint64(w.Add(time.Second, func() {
				c.inc()
				if w.Del(ID(a.Load())) {
					dels.Add(1)
				}
			}, false)))
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if dels.Load() != 1 {
				t.Errorf("%d deletes succeeded, want 1", dels.Load())
			}
			return 1
		}},
		{name: "user/other-goroutine-while-running", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			in, out := make(chan struct{}), make(chan struct{})
			id := w.Add(time.Second, func() {
				c.inc()
				if c.get() == 1 {
					in <- struct{}{}
					<-out
				}
			}, true)
			<-in // the callback is running and blocked
			if !w.Del(id) {
				t.Error("Del while its callback runs = false")
			}
			close(out)
			time.Sleep(5 * time.Second)
			return 1
		}},
		{name: "user/delall", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var node Timer
			w.Schedule(&node, 2*time.Second, c.inc) // not a user timer: survives
			for i := range 100 {
				w.Add(time.Duration(i+1)*time.Millisecond*10, c.inc, i%2 == 0)
			}
			time.Sleep(505 * time.Millisecond) // 50 one-shot and persistent calls so far
			synctest.Wait()
			before := c.get()
			w.DelAll()
			if n := w.LenUser(); n != 0 {
				t.Errorf("LenUser after DelAll = %d", n)
			}
			time.Sleep(10 * time.Second)
			return before + 1
		}},
		{name: "user/delall-from-callback", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			w.Add(time.Second, func() { c.inc(); w.DelAll() }, true)
			w.Add(time.Second+time.Millisecond, c.inc, true)
			time.Sleep(10 * time.Second)
			return 1
		}},
		{name: "node/before", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var n Timer
			w.Schedule(&n, time.Second, c.inc)
			if !n.Pending() {
				t.Error("Pending after Schedule = false")
			}
			if !n.Stop() || n.Stop() {
				t.Error("Stop, Stop != true, false")
			}
			return 0
		}},
		{name: "node/after", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var n Timer
			w.Schedule(&n, time.Second, c.inc)
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if n.Stop() || n.Pending() {
				t.Error("Stop or Pending after firing = true")
			}
			return 1
		}},
		{name: "node/reset-from-own-callback", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var n Timer
			w.Schedule(&n, time.Second, func() {
				if c.inc(); c.get() < 3 {
					n.Reset(time.Second)
				}
			})
			time.Sleep(10 * time.Second)
			return 3
		}},
		{name: "node/stop-then-reset-from-own-callback", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var n Timer
			w.Schedule(&n, time.Second, func() {
				c.inc()
				if n.Stop() {
					t.Error("Stop of the running Timer = true")
				}
				if c.get() == 1 {
					n.Reset(time.Second) // an explicit Reset wins over an earlier Stop
				}
			})
			time.Sleep(10 * time.Second)
			return 2
		}},
		{name: "node/reschedule-moves", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var n Timer
			w.Schedule(&n, time.Second, func() { t.Error("the first schedule ran") })
			w.Schedule(&n, 3*time.Second, c.inc)
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if c.get() != 0 {
				t.Error("moved Timer ran at its old time")
			}
			if !n.Reset(5 * time.Second) {
				t.Error("Reset of a pending Timer = false")
			}
			time.Sleep(4 * time.Second)
			synctest.Wait()
			if c.get() != 0 {
				t.Error("reset Timer ran early")
			}
			time.Sleep(10 * time.Second)
			return 1
		}},
		{name: "zero-delay-chain-from-callbacks", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			// Timers added with no delay from callbacks run in the same
			// tick, after the callback that added them.
			start := time.Now()
			var at []time.Duration
			var step func()
			step = func() {
				c.inc()
				at = append(at, time.Since(start))
				if c.get() < 5 {
					w.Add(0, step, false)
				}
			}
			w.Add(time.Second, step, false)
			time.Sleep(2 * time.Second)
			synctest.Wait()
			for _, d := range at {
				if d != time.Second {
					t.Errorf("chain ran at %v, want all at 1s", at)
					break
				}
			}
			return 5
		}},
		{name: "node/stop-unscheduled", run: func(t *testing.T, w *Wheel, c *counter) int64 {
			var n Timer
			if n.Stop() || n.Pending() {
				t.Error("zero Timer: Stop or Pending = true")
			}
			return 0
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := startWheel(t, Options{})
				var c counter
				want := tc.run(t, w, &c)
				time.Sleep(30 * time.Second)
				synctest.Wait()
				if got := c.get(); got != want {
					t.Errorf("%d calls, want %d", got, want)
				}
				if err := checkInvariants(w); err != nil {
					t.Error(err)
				}
			})
		})
	}
}

// TestPersistentKeepsPeriod checks that the k-th call of a persistent timer
// is due at start + k*period, within a tick, for many periods, including
// periods that are not whole ticks, odd start phases and callbacks that
// themselves take time.
func TestPersistentKeepsPeriod(t *testing.T) {
	cases := []struct {
		name          string
		period, phase time.Duration
		work          func(k int) time.Duration // time a call takes
		calls         int
	}{
		{name: "10ms", period: 10 * time.Millisecond, calls: 2000},
		{name: "1.5ms/odd-phase", period: 1500 * time.Microsecond, phase: 333 * time.Microsecond, calls: 5000},
		{name: "7s", period: 7 * time.Second, phase: time.Nanosecond, calls: 500},
		{name: "1h", period: time.Hour, phase: 999 * time.Microsecond, calls: 200},
		{name: "slow-callbacks", period: 10 * time.Millisecond, phase: 500 * time.Microsecond, calls: 1000,
			work: func(k int) time.Duration { return time.Duration(k%9) * time.Millisecond }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := startWheel(t, Options{})
				time.Sleep(tc.phase)
				var calls []time.Time
				var mu sync.Mutex
				start := time.Now()
				id := w.Add(tc.period, func() {
					mu.Lock()
					calls = append(calls, time.Now())
					k := len(calls)
					mu.Unlock()
					if tc.work != nil {
						time.Sleep(tc.work(k))
					}
				}, true)
				time.Sleep(time.Duration(tc.calls)*tc.period + tc.period/2)
				w.Del(id)
				synctest.Wait()
				mu.Lock()
				defer mu.Unlock()
				if len(calls) != tc.calls {
					t.Fatalf("%d calls, want %d", len(calls), tc.calls)
				}
				for k, at := range calls {
					due := start.Add(time.Duration(k+1) * tc.period)
					if late := at.Sub(due); late < 0 || late >= time.Millisecond {
						t.Fatalf("call %d at +%v, due +%v: %v late, want [0, 1ms)", k+1, at.Sub(start), due.Sub(start), late)
					}
				}
			})
		})
	}
}

// TestPersistentSkipsWhenBehind: after a callback that takes longer than
// several periods, the wheel makes one late call and skips the other
// periods it missed, keeping the phase.
func TestPersistentSkipsWhenBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		var calls []time.Duration
		start := time.Now()
		w.Add(10*time.Millisecond, func() {
			calls = append(calls, time.Since(start))
			if len(calls) == 2 {
				time.Sleep(35 * time.Millisecond) // misses the calls due at 30, 40, 50
			}
		}, true)
		time.Sleep(85 * time.Millisecond)
		w.DelAll()
		synctest.Wait()
		// Like a time.Ticker: the call due at 30 runs late, once, when the
		// slow call returns at 55; those due at 40 and 50 are skipped.
		want := []time.Duration{10, 20, 55, 60, 70, 80}
		if len(calls) != len(want) {
			t.Fatalf("calls at %v, want %v ms", calls, want)
		}
		for i := range want {
			if calls[i] != want[i]*time.Millisecond {
				t.Fatalf("calls at %v, want %v ms", calls, want)
			}
		}
	})
}

// TestWakeups counts the times the wheel's goroutine wakes: never while
// nothing is due, once per distinct due tick otherwise, however far away
// (no wake-ups for cascades), and not for adds or Idle touches.
func TestWakeups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		synctest.Wait()
		expect := func(want uint64, what string) {
			t.Helper()
			synctest.Wait()
			if got := w.wakeups.Load(); got != want {
				t.Fatalf("%s: %d wake-ups, want %d", what, got, want)
			}
		}
		time.Sleep(30 * day)
		expect(0, "empty wheel for 30 days")

		var c counter
		for _, d := range []time.Duration{21 * day, 5 * time.Hour, time.Hour, 70 * time.Second, 100 * time.Millisecond, 3 * time.Millisecond} {
			w.Add(d, c.inc, false)
			w.Add(d, c.inc, false) // same tick: same wake-up
		}
		expect(0, "adds")
		time.Sleep(22 * day)
		expect(6, "six distinct expiries across five levels")
		if c.get() != 12 {
			t.Fatalf("%d calls, want 12", c.get())
		}

		// A persistent timer wakes the wheel once per period.
		id := w.Add(time.Second, c.inc, true)
		time.Sleep(10*time.Second + time.Millisecond)
		w.Del(id)
		expect(16, "persistent 1s timer for 10s")
		time.Sleep(time.Second) // the alarm set for the deleted timer may go off
		synctest.Wait()

		// Cancelling the earliest timer of a slot leaves a stale bound:
		// at most one wake-up with nothing to do.
		base := w.wakeups.Load()
		time.Sleep(time.Duration(64e6 - w.nanos()%64e6)) // start of a level-1 slot
		a := w.Add(100*time.Millisecond, c.inc, false)
		w.Add(110*time.Millisecond, c.inc, false) // same level-1 slot as a
		w.Del(a)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := w.wakeups.Load() - base; got != 1 && got != 2 {
			t.Fatalf("cancelled earliest timer: %d wake-ups, want 1 or 2", got)
		}
		base = w.wakeups.Load()

		// An Idle touched constantly wakes the wheel once per timeout, not
		// once per touch.
		var idle Idle
		var closed counter
		idle.Start(w, 10*time.Second, closed.inc)
		for range 1000 {
			time.Sleep(50 * time.Millisecond)
			idle.Touch()
		}
		expect(base+5, "idle touched every 50ms for 50s")
		time.Sleep(20 * time.Second)
		synctest.Wait()
		// The last check may find the last touch a little after the
		// deadline it was armed for and re-arm once more.
		if got := w.wakeups.Load() - base; got != 6 && got != 7 {
			t.Fatalf("idle after silence: %d wake-ups, want 6 or 7", got)
		}
		if closed.get() != 1 {
			t.Fatalf("onIdle ran %d times, want 1", closed.get())
		}
	})
}

func TestIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		start := time.Now()
		var idle Idle
		idle.Touch() // before Start: nothing to do, no panic
		var firedAt time.Duration
		var fires int
		idle.Start(w, 10*time.Second, func() { fires++; firedAt = time.Since(start) })
		for _, at := range []time.Duration{3 * time.Second, 7 * time.Second, 12*time.Second + 5} {
			time.Sleep(at - time.Since(start))
			idle.Touch()
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if due := 22*time.Second + 5; fires != 1 || firedAt < due || firedAt >= due+time.Millisecond {
			t.Fatalf("onIdle ran %d times, last at %v; want once within a tick after %v (last touch + timeout)", fires, firedAt, due)
		}

		// Stop prevents it; Start again watches again.
		idle.Start(w, time.Second, func() { fires++ })
		if !idle.Stop() {
			t.Fatal("Stop of a started Idle = false")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if fires != 1 {
			t.Fatal("stopped Idle fired")
		}

		// Stop from another goroutine while the expiry check is blocked:
		// no re-arm afterwards.
		in, out := make(chan struct{}), make(chan struct{})
		idle.Start(w, time.Second, func() { fires++ })
		var blocker Timer // shares the wheel: blocks it just before the check
		w.Schedule(&blocker, time.Second-time.Millisecond, func() { in <- struct{}{}; <-out })
		<-in
		idle.Touch()
		close(out)
		time.Sleep(2 * time.Millisecond) // the check ran, found activity and re-armed
		synctest.Wait()
		if !idle.Stop() {
			t.Fatal("Stop of a re-armed Idle = false")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if fires != 1 || w.Len() != 0 {
			t.Fatalf("fires %d, Len %d; want 1, 0", fires, w.Len())
		}
	})
}

// TestIdleStopDuringCheck stops an Idle while its expiry check runs: the
// check must not re-arm it.
func TestIdleStopDuringCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		var idle Idle
		var fires counter
		idle.Start(w, time.Second, fires.inc)
		idle.last.Store(w.nanos() + int64(time.Hour)) // activity "later": the check re-arms
		// Run the check by hand as the wheel would, with Stop in between.
		w.mu.Lock()
		w.unlink(&idle.t.node)
		w.running, w.runStopped = &idle.t.node, false
		w.mu.Unlock()
		idle.Stop()
		idle.expire()
		w.mu.Lock()
		w.running = nil
		w.mu.Unlock()
		if idle.t.Pending() || fires.get() != 0 {
			t.Fatalf("Pending %v, fires %d after Stop during the check", idle.t.Pending(), fires.get())
		}
	})
}

func TestIDsAreNotReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		var c counter
		old := w.Add(time.Second, c.inc, false)
		if old == 0 {
			t.Fatal("Add returned the zero ID")
		}
		if w.Del(0) || w.Del(ID(1)<<40|12345) {
			t.Fatal("Del of an invalid ID = true")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		// Make the slab hand out old's slot again: it is reused only after
		// every other free slot.
		var reused ID
		for range 2 * chunkSize {
			id := w.Add(time.Hour, c.inc, false)
			if uint32(id) == uint32(old) {
				reused = id
				break
			}
			w.Del(id)
		}
		if reused == 0 {
			t.Fatal("slot never reused")
		}
		if reused == old {
			t.Fatal("reused slot got the same ID")
		}
		if w.Del(old) {
			t.Fatal("Del of a stale ID deleted the slot's new timer")
		}
		if !w.Del(reused) {
			t.Fatal("Del of the new ID = false")
		}
	})
}

func TestPanicInCallbackIsLoggedAndSurvived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		var mu sync.Mutex
		log := zerolog.New(lockedWriter{&mu, &buf})
		w := startWheel(t, Options{Logger: log})
		var c counter
		w.Add(time.Second, func() { panic("boom") }, true)
		w.Add(2*time.Second, c.inc, false)
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if c.get() != 1 {
			t.Fatal("timer after a panicking one did not run")
		}
		mu.Lock()
		out := buf.String()
		mu.Unlock()
		if n := strings.Count(out, "timer callback panicked"); n != 3 || !strings.Contains(out, "boom") {
			t.Fatalf("log has %d panic entries, want 3 (persistent timer keeps running):\n%s", n, out)
		}
	})
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func TestMisuse(t *testing.T) {
	w1, w2 := New(Options{}), New(Options{})
	var n Timer
	w1.Schedule(&n, time.Hour, func() {})
	cases := []struct {
		name string
		f    func()
	}{
		{name: "schedule-on-two-wheels", f: func() { w2.Schedule(&n, time.Hour, func() {}) }},
		{name: "schedule-nil", f: func() { w1.Schedule(&n, time.Hour, nil) }},
		{name: "add-nil", f: func() { w1.Add(time.Hour, nil, false) }},
		{name: "reset-unscheduled", f: func() { new(Timer).Reset(time.Hour) }},
		{name: "idle-nil", f: func() { new(Idle).Start(w1, time.Hour, nil) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if v := recover(); v == nil || !strings.HasPrefix(v.(string), "timer: ") {
					t.Fatalf("recovered %v, want a timer: panic", v)
				}
			}()
			tc.f()
		})
	}
}

func TestLen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(Options{}) // not started: timers wait
		var n Timer
		w.Schedule(&n, time.Second, func() {})
		w.Add(time.Second, func() {}, false)
		p := w.Add(time.Second, func() {}, true)
		var idle Idle
		idle.Start(w, time.Second, func() {})
		if w.Len() != 4 || w.LenUser() != 2 {
			t.Fatalf("Len %d LenUser %d, want 4 2", w.Len(), w.LenUser())
		}
		time.Sleep(time.Hour)
		if w.Len() != 4 {
			t.Fatal("timers ran on a wheel that was never started")
		}
		w.Start()
		defer w.Stop()
		synctest.Wait()
		if w.Len() != 1 || w.LenUser() != 1 {
			t.Fatalf("after start: Len %d LenUser %d, want 1 1 (the persistent timer)", w.Len(), w.LenUser())
		}
		w.Del(p)
		if w.Len() != 0 || w.LenUser() != 0 {
			t.Fatalf("after Del: Len %d LenUser %d", w.Len(), w.LenUser())
		}
	})
}

func TestStop(t *testing.T) {
	t.Run("goleak", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		w := New(Options{})
		w.Start()
		w.Start() // no second goroutine
		w.Add(time.Hour, func() {}, false)
		w.Add(time.Millisecond, func() {}, true)
		w.Stop()
		w.Stop()
		if w.Len() != 2 {
			t.Fatalf("Len after Stop = %d, want 2 (timers stay pending)", w.Len())
		}
	})
	t.Run("waits-for-callback-and-restarts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := New(Options{})
			w.Start()
			var c counter
			in := make(chan struct{})
			w.Add(time.Second, func() { close(in); time.Sleep(time.Second); c.inc() }, false)
			w.Add(3*time.Second, c.inc, false)
			<-in
			w.Stop()
			if c.get() != 1 {
				t.Fatal("Stop returned before the running callback finished")
			}
			time.Sleep(time.Minute)
			if c.get() != 1 {
				t.Fatal("a timer ran while the wheel was stopped")
			}
			w.Start()
			synctest.Wait()
			if c.get() != 2 {
				t.Fatal("overdue timer did not run on restart")
			}
			w.Stop()
		})
	})
	t.Run("does-not-drain-due-timers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := New(Options{})
			var c counter
			in := make(chan struct{})
			w.Add(time.Second, func() { close(in); time.Sleep(time.Second); c.inc() }, false)
			for range 1000 {
				w.Add(time.Second, c.inc, false)
			}
			w.Start()
			<-in // one callback runs; the other 1000 are due
			w.Stop()
			if got := c.get(); got != 1 {
				t.Fatalf("%d callbacks ran by the time Stop returned, want only the one in progress", got)
			}
			if got := int64(w.Len()) + c.get(); got != 1001 {
				t.Fatalf("Len + calls = %d, want 1001", got)
			}
			w.Start()
			synctest.Wait()
			w.Stop()
			if c.get() != 1001 || w.Len() != 0 {
				t.Fatalf("after restart: %d calls, Len %d; want 1001, 0", c.get(), w.Len())
			}
		})
	})
	t.Run("concurrent-stops", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		w := New(Options{})
		w.Start()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(w.Stop)
		}
		wg.Wait()
	})
}

// TestHugeDurations: deadlines and periods near the limits neither overflow
// nor fire early.
func TestHugeDurations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := startWheel(t, Options{})
		var c counter
		w.Add(math.MaxInt64, c.inc, true)
		w.Add(100*365*day, c.inc, true)
		var n Timer
		w.Schedule(&n, math.MaxInt64-1, c.inc)
		time.Sleep(99 * 365 * day)
		synctest.Wait()
		if c.get() != 0 || w.Len() != 3 {
			t.Fatalf("calls %d, Len %d after 99 years; want 0, 3", c.get(), w.Len())
		}
		time.Sleep(2 * 365 * day)
		synctest.Wait()
		if c.get() != 1 || w.Len() != 3 {
			t.Fatalf("calls %d, Len %d after 101 years; want 1, 3", c.get(), w.Len())
		}
		if err := checkInvariants(w); err != nil {
			t.Fatal(err)
		}
	})
}
