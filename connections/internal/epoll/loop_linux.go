//go:build linux

package epoll

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
)

// Pending work that other goroutines hand to a connection's loop
// (epConn.acts).
const (
	actFlush    uint32 = 1 << iota // write what is queued
	actResume                      // ResumeRecv: read and dispatch again
	actClose                       // the socket was closed: release it, run OnClose
	actTaskDone                    // a pool task of this connection ended
	actShed                        // the input budget shed it: drop its input now
	actTLSUp                       // its TLS handshake ended (tls_linux.go)

	actQueued uint32 = 1 << 31 // the connection is in its loop's queue
)

const loopReadBuf = 64 << 10 // a loop's shared read buffer

// loop is one event loop: a poller served by one goroutine (run), which
// owns the connections registered with it. e, s, sys and pool are set
// before run starts; ctr is atomics, cb is written by the loop and read
// by the watchdog; the other fields are loop-owned unless their comment
// names a lock.
type loop struct {
	e     *epollEngine
	rt    *core.Runtime
	sys   *Sys
	pool  *core.TaskPool // the engine's, nil when callbacks run on the loop
	p     Poller
	rbuf  []byte
	ctr   core.Counters
	cb    core.CbMark      // the user callback running on the loop, for the watchdog
	busy  atomic.Int64     // nanoseconds spent handling events (not waiting), for core.Stats.LoopBusy
	n     int              // open connections
	busyN int              // connections with a pool task
	lag   core.LagRecorder // the passes by duration, for core.Runtime.LoopLag

	// tmu guards conns and lns for other goroutines (listings, Close,
	// listener changes) and dead; the loop itself reads conns without it.
	tmu   sync.Mutex
	conns []*epConn // by fd
	lns   map[int32]*loopListener
	dead  bool

	// ring is the loop's io_uring send batch (without a ring: write(2)
	// only); runQueue gathers the writes of a pass in it, with their
	// connections and buffers in ops; seals holds the TLS records sealed
	// for the batch in place (batch_linux.go).
	ring  SendBatch
	ops   []gathered
	seals sealArena

	qmu   sync.Mutex
	queue []*epConn
	funcs []func()
	spare []*epConn
	qdead bool // under qmu: the loop is gone, its eventfd closed

	// TLS connections (tls_linux.go): a buffer of plaintext and one of
	// crypto/tls's own output, made by the first.
	pbuf []byte
	cbuf []byte
	// tlsOpen counts the loop's TLS connections whose handshake is done
	// (core.Stats.TLSConnections).
	tlsOpen atomic.Int64
}

func newLoop(e *epollEngine) (*loop, error) {
	l := &loop{
		e: e, rt: e.rt, sys: &e.sys,
		rbuf: make([]byte, loopReadBuf),
		lns:  make(map[int32]*loopListener),
	}
	if err := l.p.Open(l.sys); err != nil {
		return nil, err
	}
	if !l.rt.Cfg.NoIOUring {
		if err := l.ring.Open(l.sys); err != nil {
			e.ringOnce.Do(func() {
				l.rt.Log.Info().Err(err).Msg("io_uring unavailable: event loops write with write(2)")
			})
		}
	}
	return l, nil
}

// release closes the loop's descriptors; the loop goroutine is gone or
// never ran.
func (l *loop) release() {
	l.tmu.Lock()
	l.dead = true
	l.p.CloseEpoll()
	l.tmu.Unlock()
	l.ring.Close()
	l.qmu.Lock()
	l.qdead = true
	l.p.CloseWake()
	l.qmu.Unlock()
}

// run is the loop goroutine.
func (l *loop) run() {
	defer l.e.loopWG.Done()
	defer l.release()
	s := l.rt
	for {
		l.p.Sleep()
		n, errno := l.p.Wait(!l.hasWork())
		t0 := s.Clock()
		if errno != 0 && errno != unix.EINTR {
			s.Log.Error().Err(errno).Msg("epoll_wait failed, event loop stopped")
			l.destroyAll()
			return
		}
		for i := 0; i < n; i++ {
			ev := &l.p.Events[i]
			switch ev.Pad {
			case TagConn:
				if int(ev.Fd) < len(l.conns) {
					if c := l.conns[ev.Fd]; c != nil {
						l.handle(c, ev.Events)
					}
				}
			case TagWake:
				l.p.Woken()
			case TagListener:
				l.accept(ev.Fd)
			}
		}
		l.runQueue()
		d := s.Clock() - t0
		l.busy.Add(d)
		l.lag.Observe(time.Duration(d))
		if l.n == 0 && l.busyN == 0 && (s.Closed.Load() || s.Draining.Load()) {
			return
		}
	}
}

func (l *loop) hasWork() bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return len(l.queue) > 0 || len(l.funcs) > 0
}

// Wake makes the loop return from its wait. Safe for concurrent use.
func (l *loop) wake() {
	if !l.p.NeedsSignal() {
		return
	}
	l.qmu.Lock()
	if !l.qdead {
		l.p.Signal()
	}
	l.qmu.Unlock()
}

// post hands acts for c to its loop. Safe for concurrent use.
func (l *loop) post(c *epConn, acts uint32) {
	if c.acts.Or(acts|actQueued)&actQueued != 0 {
		return // already queued: the loop takes acts with the rest
	}
	l.qmu.Lock()
	if l.qdead {
		l.qmu.Unlock()
		return
	}
	l.queue = append(l.queue, c)
	l.qmu.Unlock()
	l.wake()
}

// PostKicks queues connections whose actQueued their BatchKick set (with
// actFlush) for the loop, at once: the loop is a Fanout's core.KickQueue. Safe
// for concurrent use.
func (l *loop) PostKicks(cs []core.Ops) {
	l.qmu.Lock()
	if l.qdead {
		l.qmu.Unlock()
		return
	}
	for _, c := range cs {
		l.queue = append(l.queue, c.(*epConn))
	}
	l.qmu.Unlock()
	l.wake()
}

// postFunc runs fn on the loop. Safe for concurrent use.
func (l *loop) postFunc(fn func()) {
	l.qmu.Lock()
	if l.qdead {
		l.qmu.Unlock()
		return
	}
	l.funcs = append(l.funcs, fn)
	l.qmu.Unlock()
	l.wake()
}

// runQueue does the work other goroutines posted.
func (l *loop) runQueue() {
	for {
		l.qmu.Lock()
		q := l.queue
		fns := l.funcs
		if len(q) == 0 && len(fns) == 0 {
			l.qmu.Unlock()
			return
		}
		l.queue = l.spare[:0]
		l.funcs = nil
		l.qmu.Unlock()
		tls := l.tlsOpen.Load() > 0
		for i, c := range q {
			q[i] = nil
			if i+pfTLS < len(q) { // else nothing is ahead to prefetch (a short queue: no call)
				l.prefetchAhead(q, i, tls)
			}
			acts := c.acts.Swap(0) // and actQueued: posts from now on queue c again
			if acts&actTaskDone != 0 {
				l.taskDone(c)
			}
			if c.fd < 0 {
				continue
			}
			// Only actClose releases the socket: it is posted by
			// CloseSocketLocked once it has used the descriptor, so the
			// number is never closed (and reused) under it.
			if acts&actClose != 0 {
				l.finish(c)
				continue
			}
			if acts&actTLSUp != 0 {
				l.tlsUp(c)
			}
			if acts&actShed != 0 && !c.busy {
				l.dropInput(c) // a running task lets go of it itself: c is closing
			}
			if acts&actResume != 0 {
				l.resume(c)
			}
			switch {
			case acts&actResume != 0:
				l.flush(c)
			case acts&actFlush != 0 && l.ring.Usable():
				l.gather(c)
			case acts&actFlush != 0:
				l.flush(c)
			}
		}
		l.sendGathered()
		l.spare = q[:0]
		for _, fn := range fns {
			fn()
		}
	}
}

// destroyAll closes every connection of a loop that cannot go on.
func (l *loop) destroyAll() {
	for _, c := range l.conns {
		if c != nil {
			c.Destroy()
			l.finish(c)
		}
	}
}

// register adds c to the loop's table and its epoll set; false when the
// server is closed.
func (l *loop) register(c *epConn) bool {
	s := l.rt
	fd := int(c.fd)
	l.tmu.Lock()
	if s.Closed.Load() {
		l.tmu.Unlock()
		return false
	}
	if fd >= len(l.conns) {
		n := 2 * len(l.conns)
		if n <= fd {
			n = fd + 64
		}
		conns := make([]*epConn, n)
		copy(conns, l.conns)
		l.conns = conns
	}
	l.conns[fd] = c
	l.tmu.Unlock()
	s.Open.Add(1)
	s.Accepted.Add(1)
	l.n++
	if err := l.p.Add(c.fd, In|RdHup, TagConn); err != nil {
		s.Log.Warn().Err(err).Msg("epoll_ctl add failed, connection closed")
		c.Destroy()
		return true
	}
	c.ev = In | RdHup
	return true
}

// AppendConns appends the loop's connections to dst. Safe for
// concurrent use.
func (l *loop) appendConns(dst []core.Connection) []core.Connection {
	l.tmu.Lock()
	for _, c := range l.conns {
		if c != nil {
			dst = append(dst, c)
		}
	}
	l.tmu.Unlock()
	return dst
}
