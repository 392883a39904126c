//go:build linux

package epoll

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/tlsrec"
)

// New returns the epoll engine of rt (EngineEpoll); connections' engine
// table makes it on Linux.
func New(s *core.Runtime) core.Engine { return newEpollEngine(s) }

// epollEngine is core.EngineEpoll: core.Config.Loops event loops over epoll, each
// accepting from every listener of the server, and the callback pool and
// watchdog that go with them. The loops start with the first Serve.
type epollEngine struct {
	rt *core.Runtime
	// sys is set before the first Serve and never changes afterwards:
	// the loops read it without locks (tests replace calls in it first).
	sys Sys

	once   sync.Once
	err    error          // startLoops' result
	loops  []*loop        // under s.Mu; set once
	pool   *core.TaskPool // under s.Mu; set once, nil without CallbackGoroutines
	loopWG sync.WaitGroup // loop goroutines
	poolWG sync.WaitGroup // callback pool goroutines and the watchdog
	// ringOnce logs once that io_uring is not available.
	ringOnce sync.Once

	// tlsPool runs the TLS handshakes of every loop (tlsPoolFor).
	tlsOnce sync.Once
	tlsPool *tlsrec.Pool

	wd           *core.Watchdog // under s.Mu; set once
	watchStop    chan struct{}
	watchStopped bool // under s.Mu
}

var (
	_ core.Engine    = (*epollEngine)(nil)
	_ core.LagEngine = (*epollEngine)(nil)
)

func newEpollEngine(s *core.Runtime) *epollEngine { return &epollEngine{rt: s, sys: Live()} }

func (e *epollEngine) Name() string { return core.EngineEpoll }

// Usable reports whether the engine can serve ln: TCP and Unix listeners,
// and TLSListeners over them.
func (e *epollEngine) Usable(ln net.Listener) bool {
	if tl, ok := ln.(core.TLSListener); ok {
		ln, _ = tl.TLS()
	}
	switch ln.(type) {
	case *net.TCPListener, *net.UnixListener:
		return true
	}
	return false
}

// Serve serves ln on the engine's event loops.
func (e *epollEngine) Serve(ln net.Listener) error {
	s := e.rt
	raw := ln
	var lt *epTLSListener
	if tl, ok := ln.(core.TLSListener); ok {
		var sv core.TLSServing
		raw, sv = tl.TLS()
		lt = &epTLSListener{sv: sv, conf: tlsrec.NewConfig(sv.Config), timeout: sv.HandshakeTimeout, pool: e.tlsPoolFor(sv)}
		if lt.timeout <= 0 {
			lt.timeout = core.DefaultTLSHandshakeTimeout
		}
	}
	sc, ok := raw.(syscall.Conn)
	if !ok || !e.Usable(ln) {
		return fmt.Errorf("connections: %T: %w", ln, core.ErrEngineUnsupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("connections: listener fd: %w", err)
	}
	el := &epListener{e: e, ln: ln, tls: lt, fd: -1, addr: ln.Addr(), done: make(chan struct{}), errc: make(chan error, 1)}
	_, el.tcp = raw.(*net.TCPListener)
	if err := rc.Control(func(fd uintptr) { el.fd = int(fd) }); err != nil {
		return fmt.Errorf("connections: listener fd: %w", err)
	}
	if !s.Track(el, false) {
		return core.ErrServerClosed
	}
	defer s.Untrack(el)
	if err := e.startLoops(); err != nil {
		el.Close()
		return err
	}
	for _, l := range e.loopList() {
		if err := l.addListener(el); err != nil {
			el.Close()
			return err
		}
	}
	select {
	case <-el.done:
		return core.ErrServerClosed
	case err := <-el.errc:
		el.Close()
		if s.Draining.Load() {
			return core.ErrServerClosed
		}
		return err
	}
}

// startLoops starts the loops once, unless the server is closed: the
// loops, the callback pool and the watchdog are published under s.Mu
// together with the check, so Close either sees them all and waits for
// them or makes startLoops fail with core.ErrServerClosed.
func (e *epollEngine) startLoops() error {
	e.once.Do(func() {
		s := e.rt
		n := s.Cfg.Loops
		loops := make([]*loop, 0, n)
		for i := 0; i < n; i++ {
			l, err := newLoop(e)
			if err != nil {
				for _, l := range loops {
					l.release()
				}
				e.err = err
				return
			}
			loops = append(loops, l)
		}
		s.Mu.Lock()
		if s.Closed.Load() {
			s.Mu.Unlock()
			for _, l := range loops {
				l.release()
			}
			e.err = core.ErrServerClosed
			return
		}
		e.loops = loops
		if s.Cfg.CallbackGoroutines > 0 {
			e.pool = core.NewTaskPool(s.Cfg.CallbackGoroutines, &e.poolWG)
		}
		wd := &core.Watchdog{Log: s.Log, After: s.StallAfter, IDBase: s.Cfg.IDBase, Loops: make([]*core.CbMark, len(loops))}
		for i, l := range loops {
			l.pool = e.pool
			wd.Loops[i] = &l.cb
		}
		e.wd = wd
		e.watchStop = make(chan struct{})
		e.loopWG.Add(len(loops))
		e.poolWG.Add(1)
		s.Mu.Unlock()
		for _, l := range loops {
			go l.run()
		}
		go wd.Run(e.watchStop, &e.poolWG)
	})
	return e.err
}

// loopList returns the event loops (none before the first Serve).
func (e *epollEngine) loopList() []*loop {
	e.rt.Mu.Lock()
	defer e.rt.Mu.Unlock()
	return e.loops
}

// AppendConns appends the open connections of every loop to dst.
func (e *epollEngine) AppendConns(dst []core.Connection) []core.Connection {
	for _, l := range e.loopList() {
		dst = l.appendConns(dst)
	}
	return dst
}

// AddStats adds the loops' counters to st.
func (e *epollEngine) AddStats(st *core.Stats) {
	for _, l := range e.loopList() {
		l.ctr.AddTo(st)
		st.LoopBusy += time.Duration(l.busy.Load())
		st.TLSConnections += l.tlsOpen.Load()
	}
}

// AddLoopLag adds the loops' passes to h (core.LagEngine).
func (e *epollEngine) AddLoopLag(h *core.LagHistogram) {
	for _, l := range e.loopList() {
		l.lag.AddTo(h)
	}
}

// Wake makes every loop look at the server's state.
func (e *epollEngine) Wake() {
	for _, l := range e.loopList() {
		l.postFunc(func() {})
	}
}

// Wait waits until the loops, the callback pool and the watchdog are
// gone.
func (e *epollEngine) Wait() {
	s := e.rt
	e.loopWG.Wait()
	s.Mu.Lock()
	pool := e.pool
	if e.watchStop != nil && !e.watchStopped {
		e.watchStopped = true
		close(e.watchStop)
	}
	s.Mu.Unlock()
	if pool != nil {
		pool.Stop()
	}
	e.poolWG.Wait()
}
