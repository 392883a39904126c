//go:build linux

package connections

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/epoll"
	"github.com/goes-project/goes/connections/internal/tlsrec"
)

// platformEngines are the event-loop engines of this platform, in the
// order EngineAuto prefers them.
func platformEngines(s *Server) []engine { return []engine{newEpollEngine(s)} }

// epollEngine is EngineEpoll: Config.Loops event loops over epoll, each
// accepting from every listener of the server, and the callback pool and
// watchdog that go with them. The loops start with the first Serve.
type epollEngine struct {
	s *Server
	// sys is set before the first Serve and never changes afterwards:
	// the loops read it without locks (tests replace calls in it first).
	sys epoll.Sys

	once   sync.Once
	err    error          // startLoops' result
	loops  []*loop        // under s.mu; set once
	pool   *core.TaskPool // under s.mu; set once, nil without CallbackGoroutines
	loopWG sync.WaitGroup // loop goroutines
	poolWG sync.WaitGroup // callback pool goroutines and the watchdog
	// ringOnce logs once that io_uring is not available.
	ringOnce sync.Once

	// tlsPool runs the TLS handshakes of every loop (tlsPoolFor).
	tlsOnce sync.Once
	tlsPool *tlsrec.Pool

	wd           *core.Watchdog // under s.mu; set once
	watchStop    chan struct{}
	watchStopped bool // under s.mu
}

var _ engine = (*epollEngine)(nil)

func newEpollEngine(s *Server) *epollEngine { return &epollEngine{s: s, sys: epoll.Live()} }

func (e *epollEngine) name() string { return EngineEpoll }

// usable reports whether the engine can serve ln: TCP and Unix listeners,
// and TLSListeners over them.
func (e *epollEngine) usable(ln net.Listener) bool {
	if tl, ok := ln.(TLSListener); ok {
		ln, _ = tl.TLS()
	}
	switch ln.(type) {
	case *net.TCPListener, *net.UnixListener:
		return true
	}
	return false
}

// serve serves ln on the engine's event loops.
func (e *epollEngine) serve(ln net.Listener) error {
	s := e.s
	raw := ln
	var lt *epTLSListener
	if tl, ok := ln.(TLSListener); ok {
		var sv TLSServing
		raw, sv = tl.TLS()
		lt = &epTLSListener{sv: sv, timeout: sv.HandshakeTimeout, pool: e.tlsPoolFor(sv)}
		if lt.timeout <= 0 {
			lt.timeout = DefaultTLSHandshakeTimeout
		}
	}
	sc, ok := raw.(syscall.Conn)
	if !ok || !e.usable(ln) {
		return fmt.Errorf("connections: %T: %w", ln, ErrEngineUnsupported)
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
	if !s.track(el, false) {
		return ErrServerClosed
	}
	defer s.untrack(el)
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
		return ErrServerClosed
	case err := <-el.errc:
		el.Close()
		if s.draining.Load() {
			return ErrServerClosed
		}
		return err
	}
}

// startLoops starts the loops once, unless the server is closed: the
// loops, the callback pool and the watchdog are published under s.mu
// together with the check, so Close either sees them all and waits for
// them or makes startLoops fail with ErrServerClosed.
func (e *epollEngine) startLoops() error {
	e.once.Do(func() {
		s := e.s
		n := s.cfg.Loops
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
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			for _, l := range loops {
				l.release()
			}
			e.err = ErrServerClosed
			return
		}
		e.loops = loops
		if s.cfg.CallbackGoroutines > 0 {
			e.pool = core.NewTaskPool(s.cfg.CallbackGoroutines, &e.poolWG)
		}
		wd := &core.Watchdog{Log: s.log, After: s.stallAfter, IDBase: s.cfg.IDBase, Loops: make([]*core.CbMark, len(loops))}
		for i, l := range loops {
			l.pool = e.pool
			wd.Loops[i] = &l.cb
		}
		e.wd = wd
		e.watchStop = make(chan struct{})
		e.loopWG.Add(len(loops))
		e.poolWG.Add(1)
		s.mu.Unlock()
		for _, l := range loops {
			go l.run()
		}
		go wd.Run(e.watchStop, &e.poolWG)
	})
	return e.err
}

// loopList returns the event loops (none before the first Serve).
func (e *epollEngine) loopList() []*loop {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return e.loops
}

// appendConns appends the open connections of every loop to dst.
func (e *epollEngine) appendConns(dst []Connection) []Connection {
	for _, l := range e.loopList() {
		dst = l.appendConns(dst)
	}
	return dst
}

// addStats adds the loops' counters to st.
func (e *epollEngine) addStats(st *Stats) {
	for _, l := range e.loopList() {
		l.ctr.addTo(st)
		st.LoopBusy += time.Duration(l.busy.Load())
	}
}

// wake makes every loop look at the server's state.
func (e *epollEngine) wake() {
	for _, l := range e.loopList() {
		l.postFunc(func() {})
	}
}

// wait waits until the loops, the callback pool and the watchdog are
// gone.
func (e *epollEngine) wait() {
	s := e.s
	e.loopWG.Wait()
	s.mu.Lock()
	pool := e.pool
	if e.watchStop != nil && !e.watchStopped {
		e.watchStopped = true
		close(e.watchStop)
	}
	s.mu.Unlock()
	if pool != nil {
		pool.Stop()
	}
	e.poolWG.Wait()
}
