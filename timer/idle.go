package timer

import (
	"sync/atomic"
	"time"
)

// Idle detects silence: it calls a function once nothing has called Touch
// for a timeout. Embed it in its owner (a connection) and call Touch on
// every read. Touch costs one clock read and one atomic store and never
// touches the wheel: when the timer fires and there was activity since it
// was armed, it re-arms itself for the time that is left. A busy connection
// therefore costs one wheel operation per timeout period, not one per read.
//
// The zero value is a stopped Idle. Start, Touch and Stop are safe for
// concurrent use once Start has happened before them; Start must not run
// concurrently with itself or with the Idle's expiry (call it from the
// owner's setup, or again from onIdle).
type Idle struct {
	t       Timer
	last    atomic.Int64 // last activity, nanoseconds since the wheel's base
	timeout int64
	onIdle  func()
	check   func() // i.expire, made once
}

// Start arms i on w: onIdle runs on the wheel's goroutine once timeout has
// passed without a Touch; the time of Start counts as activity. It runs
// once; call Start again to watch again. The first Start allocates the
// Idle's callback (one small allocation for the life of the Idle).
func (i *Idle) Start(w *Wheel, timeout time.Duration, onIdle func()) {
	i.start(w, timeout, onIdle, false)
}

// StartCoarse is Start with the slack of Wheel.ScheduleCoarse: onIdle
// runs once timeout has passed without a Touch, and at most
// Slack(timeout) later, on a boundary the wheel's other coarse timers
// share.
func (i *Idle) StartCoarse(w *Wheel, timeout time.Duration, onIdle func()) {
	i.start(w, timeout, onIdle, true)
}

func (i *Idle) start(w *Wheel, timeout time.Duration, onIdle func(), coarse bool) {
	if onIdle == nil {
		panic("timer: Idle.Start with a nil func")
	}
	if i.check == nil {
		i.check = i.expire
	}
	i.timeout, i.onIdle = int64(timeout), onIdle
	w.bind(&i.t)
	i.last.Store(w.nanos())
	if coarse {
		w.ScheduleCoarse(&i.t, timeout, i.check)
	} else {
		w.Schedule(&i.t, timeout, i.check)
	}
}

// Touch records activity now. It does nothing before Start. Safe for
// concurrent use.
func (i *Idle) Touch() {
	if w := i.t.w.Load(); w != nil {
		i.last.Store(w.nanos())
	}
}

// Stop stops watching and reports whether i was pending. If the expiry
// check is running concurrently, it will not re-arm, but onIdle may still
// be called once. Safe for concurrent use, including from onIdle.
func (i *Idle) Stop() bool { return i.t.Stop() }

// expire is the Idle's timer callback.
func (i *Idle) expire() {
	w := i.t.w.Load()
	if deadline := i.last.Load() + i.timeout; deadline > w.nanos() {
		w.rearmAt(&i.t, deadline, time.Duration(i.timeout))
		return
	}
	i.onIdle()
}
