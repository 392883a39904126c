package timer

import (
	"math"
	"math/bits"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
)

const (
	levelBits = 6
	numSlots  = 1 << levelBits
	slotMask  = numSlots - 1
	numLevels = 6
	// spanBits: the levels hold timers due less than 2^spanBits ticks
	// ahead of the wheel's clock; later ones wait in the overflow list.
	spanBits = levelBits * numLevels

	// maxWhen caps deadlines (in nanoseconds since the wheel's base) so
	// that tick arithmetic never overflows: about 146 years.
	maxWhen = math.MaxInt64 / 2

	// Sentinel ids stored in the when field of list heads.
	headReady    = -1
	headOverflow = -2

	// sleepBusy is the value of Wheel.sleepUntil while the goroutine is
	// working or not running: adders must not touch its alarm.
	sleepBusy = math.MinInt64
	// sleepForever is the value of Wheel.sleepUntil while the goroutine
	// sleeps with nothing pending.
	sleepForever = math.MaxInt64
)

// Options configures a Wheel. The zero value is a valid configuration.
type Options struct {
	// Tick is the resolution of the wheel: a timer runs at most one Tick
	// after it is due (plus scheduling delay), never before. Zero or
	// negative means 1 ms. The levels cover 2^36 ticks (about 795 days at
	// 1 ms); later timers are still exact, they wait in an overflow list.
	Tick time.Duration

	// Logger receives an error entry, with the stack, for every callback
	// that panics. The zero value discards them: pass the worker's logger.
	Logger zerolog.Logger
}

// Wheel is a hierarchical timing wheel. Create it with New; the zero Wheel
// is not usable. Timers can be added before Start; they run only while the
// wheel's goroutine runs (between Start and Stop).
//
// All methods are safe for concurrent use, including from callbacks, except
// that Start and Stop must not be called from a callback.
type Wheel struct {
	tick int64 // nanoseconds per tick
	base time.Time
	log  zerolog.Logger

	// Lock order: life, then mu. Callbacks run with neither held.
	life       sync.Mutex // serialises Start and Stop
	quit, done chan struct{}

	mu         sync.Mutex  // guards everything below but wakeups
	now        int64       // the wheel's clock, in ticks: everything due at or before now has been moved to ready
	count      int         // pending timers, in any list
	sleepUntil int64       // tick the goroutine sleeps until, or sleepBusy / sleepForever
	sleep      *time.Timer // the goroutine's alarm; reset by adders while it sleeps
	occupied   [numLevels]uint64
	slots      [numLevels][numSlots]node  // list heads (sentinels)
	slotMin    [numLevels][numSlots]int64 // lower bound of the expiry ticks in each slot
	ready      node                       // head of the list of due timers
	over       node                       // head of the overflow list
	overMin    int64
	running    *node // the timer whose callback runs now
	runStopped bool  // running was stopped or deleted during its callback
	stopping   bool  // Stop was called: run no more callbacks
	users      slab

	wakeups atomic.Uint64 // times the goroutine woke from sleep (tests)
}

// New returns a stopped Wheel configured by opts; call Start to run it.
func New(opts Options) *Wheel {
	tick := opts.Tick
	if tick <= 0 {
		tick = time.Millisecond
	}
	w := &Wheel{
		tick:       int64(tick),
		base:       time.Now(),
		log:        opts.Logger,
		sleepUntil: sleepBusy,
		overMin:    math.MaxInt64,
	}
	for l := range w.slots {
		for s := range w.slots[l] {
			h := &w.slots[l][s]
			h.next, h.prev, h.when = h, h, int64(l*numSlots+s)
			w.slotMin[l][s] = math.MaxInt64
		}
	}
	w.ready.next, w.ready.prev, w.ready.when = &w.ready, &w.ready, headReady
	w.over.next, w.over.prev, w.over.when = &w.over, &w.over, headOverflow
	return w
}

// Start starts the wheel's goroutine. Timers already pending that are due
// run at once. Calling Start on a running wheel does nothing; a stopped
// wheel can be started again. Start must not be called from a callback.
func (w *Wheel) Start() {
	w.life.Lock()
	defer w.life.Unlock()
	if w.quit != nil {
		return
	}
	w.mu.Lock()
	if w.sleep == nil {
		w.sleep = time.NewTimer(time.Hour)
		w.sleep.Stop()
	}
	w.stopping = false
	w.mu.Unlock()
	w.quit, w.done = make(chan struct{}), make(chan struct{})
	go w.run(w.quit, w.done)
}

// Stop stops the wheel's goroutine and waits until it has returned, which
// includes waiting for a callback in progress (but not for other due
// timers: they stay due and run after the next Start). Pending timers stay pending
// (and counted by Len) but do not run until the next Start. Stop on a
// stopped wheel does nothing. Stop must not be called from a callback: it
// would wait for itself (a callback that must stop its wheel calls
// go w.Stop()).
func (w *Wheel) Stop() {
	w.life.Lock()
	defer w.life.Unlock()
	if w.quit == nil {
		return
	}
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	close(w.quit)
	<-w.done
	w.quit, w.done = nil, nil
}

// Len returns the number of pending timers of every kind: user timers,
// Timers and Idles. A persistent user timer whose callback is running is
// not counted until it is re-armed. Safe for concurrent use.
func (w *Wheel) Len() int {
	w.mu.Lock()
	n := w.count
	w.mu.Unlock()
	return n
}

// nanos returns the time elapsed since the wheel's base, in nanoseconds.
func (w *Wheel) nanos() int64 { return int64(time.Since(w.base)) }

// deadline returns the base-relative nanosecond deadline of a timer
// scheduled now for d; d <= 0 means now.
func (w *Wheel) deadline(d time.Duration) int64 {
	now := w.nanos()
	if d <= 0 {
		return now
	}
	if int64(d) > maxWhen-now {
		return maxWhen
	}
	return now + int64(d)
}

// ceilTick returns the first tick at or after the nanosecond time ns.
func (w *Wheel) ceilTick(ns int64) int64 {
	if w.tick == int64(time.Millisecond) { // constant divisor: a multiply
		return (ns + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	}
	return (ns + w.tick - 1) / w.tick
}

// floorTick returns the tick that contains the nanosecond time ns.
func (w *Wheel) floorTick(ns int64) int64 {
	if w.tick == int64(time.Millisecond) {
		return ns / int64(time.Millisecond)
	}
	return ns / w.tick
}

// pushBack appends t to the list headed by h.
func pushBack(h, t *node) {
	t.prev, t.next = h.prev, h
	h.prev.next = t
	h.prev = t
}

// place puts t in the list where it belongs relative to w.now and returns
// its expiry tick. w.mu is held.
func (w *Wheel) place(t *node) int64 {
	e := w.ceilTick(t.when)
	if e <= w.now {
		pushBack(&w.ready, t)
		return e
	}
	x := uint64(e ^ w.now)
	if x >= 1<<spanBits {
		pushBack(&w.over, t)
		w.overMin = min(w.overMin, e)
		return e
	}
	l := (bits.Len64(x) - 1) / levelBits
	s := int(e>>(l*levelBits)) & slotMask
	pushBack(&w.slots[l][s], t)
	w.occupied[l] |= 1 << s
	w.slotMin[l][s] = min(w.slotMin[l][s], e)
	return e
}

// link makes t pending and, if t is due before the time the goroutine
// sleeps until, moves the goroutine's alarm earlier (no wake-up now: the
// goroutine wakes when t is due). w.mu is held and t is in no list.
func (w *Wheel) link(t *node) {
	w.count++
	if e := w.place(t); e < w.sleepUntil {
		w.sleepUntil = e
		w.sleep.Reset(time.Duration(e*w.tick - w.nanos()))
	}
}

// unlink removes the pending timer t from its list. w.mu is held.
func (w *Wheel) unlink(t *node) {
	p, n := t.prev, t.next
	p.next, n.prev = n, p
	t.next, t.prev = nil, nil
	w.count--
	if p == n { // the list is now only its head
		switch id := p.when; {
		case id >= 0:
			l, s := id/numSlots, id%numSlots
			w.occupied[l] &^= 1 << s
			w.slotMin[l][s] = math.MaxInt64
		case id == headOverflow:
			w.overMin = math.MaxInt64
		}
	}
}

// nextSlot returns the slot the wheel must process next and the tick at
// which it starts; level numLevels is the overflow list. ok is false when
// no slot holds a timer. Slots on a level are ahead of the clock's own slot
// on that level, and every slot of a level starts after every slot of the
// levels below it, so the first occupied slot of the lowest occupied level
// is the one. w.mu is held.
func (w *Wheel) nextSlot() (level, slot int, start int64, ok bool) {
	for l := range numLevels {
		shift := uint(l * levelBits)
		cur := uint(w.now>>shift) & slotMask
		if m := w.occupied[l] &^ (uint64(2)<<cur - 1); m != 0 {
			s := bits.TrailingZeros64(m)
			block := w.now &^ (int64(1)<<(shift+levelBits) - 1)
			return l, s, block | int64(s)<<shift, true
		}
	}
	if w.over.next != &w.over {
		return numLevels, 0, (w.now>>spanBits + 1) << spanBits, true
	}
	return 0, 0, 0, false
}

// nextWake returns a lower bound of the earliest expiry tick among the
// pending timers; ok is false when none is pending. w.mu is held.
func (w *Wheel) nextWake() (tick int64, ok bool) {
	if w.ready.next != &w.ready {
		return w.now, true
	}
	l, s, _, ok := w.nextSlot()
	switch {
	case !ok:
		return 0, false
	case l == numLevels:
		return w.overMin, true
	default:
		return w.slotMin[l][s], true
	}
}

// advance moves the clock to tick target, cascading every slot that starts
// at or before it; timers that become due go to the ready list. w.mu is
// held.
func (w *Wheel) advance(target int64) {
	for {
		l, s, start, ok := w.nextSlot()
		if !ok || start > target {
			break
		}
		w.now = start
		var h *node
		if l == numLevels {
			h = &w.over
			w.overMin = math.MaxInt64
		} else {
			h = &w.slots[l][s]
			w.occupied[l] &^= 1 << s
			w.slotMin[l][s] = math.MaxInt64
		}
		t := h.next
		h.next, h.prev = h, h
		for t != h {
			n := t.next
			w.place(t)
			t = n
		}
	}
	w.now = max(w.now, target)
}

// fireReady runs the callbacks of the ready timers, in order, releasing
// w.mu around each call; timers added or cancelled meanwhile are taken into
// account. w.mu is held.
func (w *Wheel) fireReady() {
	for w.ready.next != &w.ready && !w.stopping {
		t := w.ready.next
		w.unlink(t)
		fn := t.fn
		var u *entry
		if t.idx != 0 {
			u = w.users.at(t.idx - 1)
			if u.aux == 0 {
				w.users.free(u)
				u = nil
			}
		}
		w.running, w.runStopped = t, false
		w.mu.Unlock()
		w.call(fn)
		w.mu.Lock()
		w.running = nil
		if u != nil { // persistent user timer
			if w.runStopped {
				w.users.free(u)
				continue
			}
			// Next period after the previous deadline, not after now: no
			// drift. Periods the wheel fell behind by are skipped.
			next := int64(maxWhen)
			if u.aux < maxWhen-t.when {
				next = t.when + u.aux
				if late := w.now*w.tick - next; late >= 0 {
					next = min(next+(late/u.aux+1)*u.aux, maxWhen)
				}
			}
			t.when = next
			w.link(t)
		}
	}
}

// Running returns the Timer whose callback the wheel runs now, or nil
// when it runs none or a user timer's (Add). It is for a callback shared
// by many Timers (one func value, not one per Timer) to learn which one
// fired, and is valid only inside that callback, on the wheel's
// goroutine, which sets it.
func (w *Wheel) Running() *Timer {
	n := w.running
	if n == nil || n.idx != 0 {
		return nil
	}
	return (*Timer)(unsafe.Pointer(n)) // node is a Timer's first field
}

// call runs a callback, logging a panic instead of dying of it.
func (w *Wheel) call(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			w.log.Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("timer callback panicked")
		}
	}()
	fn()
}

// run is the wheel's goroutine. It sleeps on w.sleep, which it arms (and
// adders move earlier) under w.mu, so no wake-up is lost and none happens
// before something is due.
func (w *Wheel) run(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		w.mu.Lock()
		w.sleepUntil = sleepBusy
		for !w.stopping {
			w.advance(w.floorTick(w.nanos()))
			w.fireReady()
			if w.stopping {
				break
			}
			next, ok := w.nextWake()
			if !ok {
				w.sleepUntil = sleepForever
				w.sleep.Stop()
				break
			}
			if d := time.Duration(next*w.tick - w.nanos()); d > 0 {
				w.sleepUntil = next
				w.sleep.Reset(d)
				break
			}
		}
		w.mu.Unlock()

		select {
		case <-quit:
			w.mu.Lock()
			w.sleepUntil = sleepBusy
			w.sleep.Stop()
			w.mu.Unlock()
			return
		case <-w.sleep.C:
		}
		w.wakeups.Add(1)
	}
}
