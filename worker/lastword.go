package worker

import (
	"sync"
	"time"

	"github.com/goes-project/goes/ipc"
)

// lastWord holds a worker's last figures for the new master of an orphan
// (orphan.Handler.Final): finish says them once the worker has drained,
// then waits, bounded, until the answers to the masters that asked are
// written, and the worker exits. Safe for concurrent use.
type lastWord struct {
	ready   chan struct{} // closed by say, st set
	st      ipc.WorkerStats
	mu      sync.Mutex
	pending []chan struct{} // closed as each answer is written
}

// final waits for the last figures; written is to be called once they
// are written to the master.
func (l *lastWord) final() (ipc.WorkerStats, func(), error) {
	done := make(chan struct{})
	l.mu.Lock()
	l.pending = append(l.pending, done)
	l.mu.Unlock()
	<-l.ready
	var once sync.Once
	return l.st, func() { once.Do(func() { close(done) }) }, nil
}

// say makes st the last figures and waits up to bound for the answers to
// the masters waiting for them to be written. finish calls it once.
func (l *lastWord) say(st ipc.WorkerStats, bound time.Duration) {
	l.st = st
	close(l.ready)
	l.mu.Lock()
	pending := l.pending
	l.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	for _, done := range pending {
		select {
		case <-done:
		case <-t.C:
			return
		}
	}
}

// Final answers a new master's orphan.TypeFinal: the worker's figures
// once it has drained.
func (h *orphanHandler) Final() (ipc.WorkerStats, func(), error) { return h.last.final() }
