package worker

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/timer"
)

// RecycleJitter is the spread of a worker's recycling limits: each worker
// draws them uniformly within ±10% of Options.MaxRequests and MaxMemory.
const RecycleJitter = 0.10

const (
	// limitsEvery is how often the memory is read (and a request limit
	// passed long ago looked at again).
	limitsEvery = time.Second
	// askAgain is how long a worker over a limit waits before asking
	// again when its master has not replaced it (a replacement that failed
	// to start, a reload in progress).
	askAgain = 5 * time.Second
)

// jitter returns v moved by a random fraction within ±RecycleJitter (at
// least 1 when v is).
func jitter(v uint64) uint64 {
	if v == 0 {
		return 0
	}
	f := 1 + RecycleJitter*(2*rand.Float64()-1)
	return max(1, uint64(float64(v)*f))
}

// limits are a worker's recycling limits (Options.MaxRequests, MaxMemory,
// jittered; 0: none). The message path counts the requests and kicks the
// control loop the moment the request limit is reached; a Timer of the
// wheel kicks it every limitsEvery to read the memory. The control loop
// (check) decides and asks the master.
type limits struct {
	maxReq, maxMem uint64
	served         atomic.Uint64 // messages delivered to OnMessage
	kick           chan struct{} // buffered 1: a check is due
	asked          time.Time     // control loop: when the master was last asked
}

func (l *limits) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// setLimits draws the worker's limits and, with a request limit, counts
// the messages on their way to OnMessage. Before the server is made.
func (w *worker) setLimits() {
	if w.o.Ctl == nil || w.o.MaxRequests == 0 && w.o.MaxMemory == 0 {
		return
	}
	l := &limits{maxReq: jitter(w.o.MaxRequests), maxMem: jitter(w.o.MaxMemory), kick: make(chan struct{}, 1)}
	w.limits = l
	w.log.Info().Uint64("max_requests", l.maxReq).Uint64("max_memory", l.maxMem).Msg("recycling limits")
	if l.maxReq == 0 {
		return
	}
	next := w.o.Config.Handler.OnMessage
	w.o.Config.Handler.OnMessage = func(c connections.Connection, data []byte) {
		if l.served.Add(1) == l.maxReq {
			l.poke()
		}
		if next != nil {
			next(c, data)
		}
	}
}

// watchLimits kicks the checks every limitsEvery on a Timer of the
// worker's wheel; it returns a function that stops them.
func (w *worker) watchLimits() (stop func()) {
	l := w.limits
	if l == nil {
		return func() {}
	}
	var (
		t       timer.Timer
		stopped atomic.Bool
		tick    func()
	)
	tick = func() { // on the wheel's goroutine, one call at a time
		l.poke()
		if !stopped.Load() {
			t.Reset(limitsEvery)
		}
	}
	w.wheel.Schedule(&t, limitsEvery, tick)
	return func() {
		stopped.Store(true)
		t.Stop()
	}
}

// checkLimits runs in the control loop when kicked: over a limit, a
// running worker asks its master for a replacement (again after askAgain
// if it is still there).
func (w *worker) checkLimits(ctl *ipc.Conn) {
	l := w.limits
	if w.state.Load().(string) != StateRunning || !l.asked.IsZero() && time.Since(l.asked) < askAgain {
		return
	}
	n := l.served.Load()
	var req ipc.RecycleRequest
	switch {
	case l.maxReq > 0 && n >= l.maxReq:
		req = ipc.RecycleRequest{Reason: ipc.RecycleMaxRequests, Requests: n, Limit: l.maxReq}
	case l.maxMem > 0:
		if m := memoryBytes(); m > l.maxMem {
			req = ipc.RecycleRequest{Reason: ipc.RecycleMaxMemory, MemoryBytes: m, Requests: n, Limit: l.maxMem}
		}
	}
	if req.Reason == "" {
		return
	}
	l.asked = time.Now()
	w.log.Info().Str("reason", req.Reason).Uint64("requests", req.Requests).Uint64("memory_bytes", req.MemoryBytes).
		Uint64("limit", req.Limit).Msg("worker asks to be recycled")
	if msg, err := ipc.New(ipc.TypeRecycle, 0, req); err == nil {
		ctl.Send(msg) // a broken channel shows as EOF to the reader
	}
}
