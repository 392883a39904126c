package connections

import "sync"

// task is the callback work of one connection that an event loop hands
// to a taskPool: run does what is pending and tells the loop when done.
type task interface{ runTasks() }

// taskPool runs tasks on at most max goroutines, started on demand; idle
// ones wait for work until stop. A loop submits a connection again only
// once its previous task has ended, so the callbacks of one connection
// never overlap. Safe for concurrent use.
type taskPool struct {
	wg      *sync.WaitGroup // counts the workers; the engine waits on it
	max     int
	mu      sync.Mutex
	cond    sync.Cond // on mu: work queued or stopping
	q       []task    // q[head:] is waiting
	head    int
	running int
	idle    int
	stopped bool
}

func newTaskPool(max int, wg *sync.WaitGroup) *taskPool {
	p := &taskPool{wg: wg, max: max}
	p.cond.L = &p.mu
	return p
}

// submit queues t for a worker.
func (p *taskPool) submit(t task) {
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

func (p *taskPool) work() {
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
		t.runTasks()
		p.mu.Lock()
	}
}

// stop ends the idle workers once the loops are gone.
func (p *taskPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}
