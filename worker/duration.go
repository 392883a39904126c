package worker

import (
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/ipc"
)

// durationBounds are ipc.RequestDurationBuckets as durations.
var durationBounds = func() []time.Duration {
	out := make([]time.Duration, len(ipc.RequestDurationBuckets))
	for i, b := range ipc.RequestDurationBuckets {
		out[i] = time.Duration(b * float64(time.Second))
	}
	return out
}()

// durations is the worker's request duration histogram: a fixed set of
// atomic counters, so that a message costs two clock reads and two
// atomic adds, and no allocation (BenchmarkDurationObserve).
type durations struct {
	counts [len(ipc.RequestDurationBuckets) + 1]atomic.Uint64 // ipc.RequestDurationBuckets, then +Inf
	sum    atomic.Int64                                       // nanoseconds
}

func (h *durations) observe(d time.Duration) {
	i := 0
	for i < len(durationBounds) && d > durationBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// histogram is a snapshot for the master (ipc.Load.RequestDuration).
func (h *durations) histogram() *ipc.Histogram {
	out := &ipc.Histogram{Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.SumSeconds = time.Duration(h.sum.Load()).Seconds()
	return out
}

// measureMessages wraps the handler's OnMessage to time each call, from
// the callback's start to its return (in a callback pool, the time a
// message waits for a pool goroutine is not included). Before the server
// is made.
func (w *worker) measureMessages() {
	next := w.o.Config.Handler.OnMessage
	if next == nil {
		return
	}
	h := &w.durations
	w.o.Config.Handler.OnMessage = func(c connections.Connection, data []byte) {
		start := time.Now()
		defer func() { h.observe(time.Since(start)) }()
		next(c, data)
	}
}

// loopLag is h for the master (ipc.Load.LoopLag); nil when no loop has
// made a pass (the standard engine).
func loopLag(h connections.LagHistogram) *ipc.Histogram {
	if h.Passes() == 0 {
		return nil
	}
	return &ipc.Histogram{Counts: append([]uint64(nil), h.Counts[:]...), SumSeconds: h.Sum.Seconds()}
}
