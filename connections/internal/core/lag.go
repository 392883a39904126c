package core

import (
	"sync/atomic"
	"time"
)

// LoopLagBounds are the upper bounds of the buckets of an event loop's
// lag histogram (LagHistogram): from 50 µs to 10 s.
var LoopLagBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LagHistogram is the event-loop lag of a server: its loops' passes by
// duration. A pass is one return from the poller: every ready event
// handled (reads, protocol dispatch, the callbacks that run on the loop,
// writes) and the work other goroutines posted; an event that becomes
// ready during a pass waits at most the rest of that pass before its loop
// looks at it, so the passes' durations bound the lag. Counts[i] counts
// the passes of at most LoopLagBounds[i] and above the bound before, the
// last those above every bound; Sum is their total.
type LagHistogram struct {
	Counts [len(LoopLagBounds) + 1]uint64
	Sum    time.Duration
}

// Passes is the number of passes counted.
func (h *LagHistogram) Passes() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// LagRecorder is what an event loop counts its passes with: one writer
// (the loop), readers on any goroutine (Stats), so its counters are
// atomics that Observe stores rather than adds (no locked add on the
// loop's path). The zero value is ready.
type LagRecorder struct {
	counts [len(LoopLagBounds) + 1]atomic.Uint64
	sum    atomic.Int64
}

// Observe counts a pass of d: a comparison per bound below d, two
// atomic stores. Only one goroutine may call it (the loop's).
func (r *LagRecorder) Observe(d time.Duration) {
	i := 0
	for i < len(LoopLagBounds) && d > LoopLagBounds[i] {
		i++
	}
	r.counts[i].Store(r.counts[i].Load() + 1)
	r.sum.Store(r.sum.Load() + int64(d))
}

// AddTo adds r's counts to h.
func (r *LagRecorder) AddTo(h *LagHistogram) {
	for i := range r.counts {
		h.Counts[i] += r.counts[i].Load()
	}
	h.Sum += time.Duration(r.sum.Load())
}

// LagEngine is an Engine with event loops, which time their passes.
type LagEngine interface {
	// AddLoopLag adds its loops' passes to h.
	AddLoopLag(h *LagHistogram)
}

// LoopLag returns the passes of the server's event loops by duration;
// empty when no engine of it has loops (the standard engine).
func (s *Runtime) LoopLag() LagHistogram {
	var h LagHistogram
	for _, e := range s.engines {
		if le, ok := e.(LagEngine); ok {
			le.AddLoopLag(&h)
		}
	}
	return h
}
