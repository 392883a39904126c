package timer

import (
	"sync/atomic"
	"time"
)

// Timer is a one-shot timer node meant to be embedded in its owner (a
// connection, a request), so that arming it allocates nothing: 48 bytes on
// 64-bit platforms, the whole cost of a pending timer. The zero value is an
// unarmed Timer; Wheel.Schedule binds it to a wheel and arms it. A Timer
// must not be copied after first use (go vet reports copies).
//
// Its methods and Wheel.Schedule are safe for concurrent use, from any
// goroutine, including from inside its own callback. A Timer belongs to the
// first Wheel that schedules it; scheduling it on another panics.
type Timer struct {
	node
	w atomic.Pointer[Wheel]
}

// node is what the wheel's lists are made of: the list heads, the node of
// a Timer and that of a user timer (40 bytes on 64-bit platforms).
type node struct {
	next, prev *node
	fn         func()
	when       int64  // deadline, nanoseconds since the wheel's base; list heads: their id
	idx        uint32 // user timers: slab index + 1; 0 for Timers
	gen        uint32 // user timers: odd while allocated, the generation in its ID; Timers: flags (flagCoarse)
}

// flagCoarse, in the gen of a Timer's node, marks a coarse Timer: see
// ScheduleCoarse.
const flagCoarse = 1

// Slack returns how late a coarse timer scheduled for d may run (see
// Wheel.ScheduleCoarse): 0 below a second, so short timers stay exact;
// else the largest of 125, 250 and 500 ms and 1 s that is at most d/8.
// A coarse timer's deadline is rounded up to a multiple of its Slack,
// counted from the wheel's creation; since each of these divides the
// next, the coarse timers of a wheel due within the same second share at
// most eight instants, and those of 8 s and more share one.
func Slack(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return 0
	case d < 2*time.Second:
		return time.Second / 8
	case d < 4*time.Second:
		return time.Second / 4
	case d < 8*time.Second:
		return time.Second / 2
	default:
		return time.Second
	}
}

// coarsen rounds the deadline when of a coarse timer scheduled for d up
// to a multiple of Slack(d).
func coarsen(when int64, d time.Duration) int64 {
	g := int64(Slack(d))
	if g == 0 {
		return when
	}
	return min((when+g-1)/g*g, maxWhen)
}

// Schedule arms t to call fn once, on the wheel's goroutine, d from now (d
// <= 0: as soon as possible), exactly: no later than one tick after that
// (plus scheduling delay). If t is pending it is moved; if its callback
// is running, t is armed again and the running call is not affected. t is
// exact from now on, also for Reset, even if it was coarse. fn must not be
// nil. Safe for concurrent use.
func (w *Wheel) Schedule(t *Timer, d time.Duration, fn func()) {
	w.schedule(t, d, fn, 0)
}

// ScheduleCoarse is Schedule for a timeout, which is a bound rather than
// an appointment: t may run up to Slack(d) late (0 below a second; at
// most d/8 and at most a second), never early. Its deadline is rounded up
// to a boundary the wheel's other coarse timers share, so that any number
// of them due within one stretch of Slack(d) cost the wheel one wake-up:
// a wheel holding only coarse timers of a second and more wakes at most
// eight times a second, and at most once a second when they are of 8 s
// and more, whatever their count. Later Resets of t are coarse too, until
// a Schedule makes it exact again. Safe for concurrent use.
func (w *Wheel) ScheduleCoarse(t *Timer, d time.Duration, fn func()) {
	w.schedule(t, d, fn, flagCoarse)
}

func (w *Wheel) schedule(t *Timer, d time.Duration, fn func(), flags uint32) {
	if fn == nil {
		panic("timer: Schedule with a nil func")
	}
	w.bind(t)
	when := w.deadline(d)
	if flags&flagCoarse != 0 {
		when = coarsen(when, d)
	}
	w.mu.Lock()
	if t.next != nil {
		w.unlink(&t.node)
	}
	t.fn, t.when, t.gen = fn, when, flags
	w.link(&t.node)
	w.mu.Unlock()
}

// bind attaches t to w or panics if t belongs to another wheel.
func (w *Wheel) bind(t *Timer) {
	if cur := t.w.Load(); cur != w {
		if cur != nil || (!t.w.CompareAndSwap(nil, w) && t.w.Load() != w) {
			panic("timer: Timer scheduled on two Wheels")
		}
	}
}

// Reset re-arms t with the function of its last Schedule (or
// ScheduleCoarse, whose slack it keeps), d from now, and reports whether
// it was pending (and is now moved). It panics if t was never scheduled.
// Safe for concurrent use, including from t's callback.
func (t *Timer) Reset(d time.Duration) bool {
	w := t.w.Load()
	if w == nil {
		panic("timer: Reset of a Timer never scheduled")
	}
	when := w.deadline(d)
	w.mu.Lock()
	was := t.next != nil
	if was {
		w.unlink(&t.node)
	}
	if t.gen&flagCoarse != 0 {
		when = coarsen(when, d)
	}
	t.when = when
	w.link(&t.node)
	w.mu.Unlock()
	return was
}

// Stop cancels t and reports whether that prevented its callback from
// running; false means t was not pending (never armed, already fired or
// stopped). A callback already running is not interrupted. Safe for
// concurrent use, including from t's callback.
func (t *Timer) Stop() bool {
	w := t.w.Load()
	if w == nil {
		return false
	}
	w.mu.Lock()
	was := t.next != nil
	if was {
		w.unlink(&t.node)
	}
	if w.running == &t.node {
		w.runStopped = true
	}
	w.mu.Unlock()
	return was
}

// Pending reports whether t is armed and has not fired yet. Safe for
// concurrent use.
func (t *Timer) Pending() bool {
	w := t.w.Load()
	if w == nil {
		return false
	}
	w.mu.Lock()
	p := t.next != nil
	w.mu.Unlock()
	return p
}

// rearmAt arms t for the nanosecond deadline when unless t was stopped
// while its callback (the caller) runs; a coarse t is rounded as for a
// timer of d. It is for callbacks that re-arm their own timer. w.mu is
// not held.
func (w *Wheel) rearmAt(t *Timer, when int64, d time.Duration) {
	w.mu.Lock()
	if !(w.running == &t.node && w.runStopped) && t.next == nil {
		if t.gen&flagCoarse != 0 {
			when = coarsen(min(when, maxWhen), d)
		}
		t.when = min(when, maxWhen)
		w.link(&t.node)
	}
	w.mu.Unlock()
}
