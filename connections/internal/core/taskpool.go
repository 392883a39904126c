package core

import "sync"

// Task is the callback work of one connection that an event loop hands
// to a TaskPool: RunTasks does what is pending and tells the loop when done.
type Task interface{ RunTasks() }

// TaskPool runs tasks on at most max goroutines, started on demand; idle
// ones wait for work until stop. A loop submits a connection again only
// once its previous task has ended, so the callbacks of one connection
// never overlap. Safe for concurrent use.
type TaskPool struct {
	wg      *sync.WaitGroup // counts the workers; the engine waits on it
	max     int
	mu      sync.Mutex
	cond    sync.Cond // on mu: work queued or stopping
	q       []Task    // q[head:] is waiting
	head    int
	running int
	idle    int
	stopped bool
}

func NewTaskPool(max int, wg *sync.WaitGroup) *TaskPool {
	p := &TaskPool{wg: wg, max: max}
	p.cond.L = &p.mu
	return p
}

// Submit queues t for a worker.
func (p *TaskPool) Submit(t Task) {
	p.mu.Lock()
	p.q = append(p.q, t)
	switch {
	case p.idle > 0:
		p.cond.Signal()
	case p.running < p.max:
		p.running++
		p.wg.Add(1)
		go p.work()
	}
	p.mu.Unlock()
}

func (p *TaskPool) work() {
	defer p.wg.Done()
	p.mu.Lock()
	for {
		for p.head == len(p.q) {
			if p.stopped {
				p.running--
				p.mu.Unlock()
				return
			}
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		t := p.q[p.head]
		p.q[p.head] = nil
		if p.head++; p.head == len(p.q) {
			p.q, p.head = p.q[:0], 0
		}
		p.mu.Unlock()
		t.RunTasks()
		p.mu.Lock()
	}
}

// Stop ends the idle workers once the loops are gone.
func (p *TaskPool) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}
