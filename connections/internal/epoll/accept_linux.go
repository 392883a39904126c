//go:build linux

package epoll

import (
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/timer"
)

// acceptBatch is the number of accepts per listener event, to share new
// connections between loops.
const acceptBatch = 4

// epListener is a listening socket shared by all loops of a server
// (EPOLLEXCLUSIVE: one loop is woken per connection).
type epListener struct {
	e    *epollEngine
	ln   net.Listener
	tls  *epTLSListener // a TLS listener's: its connections are TLS (tls_linux.go)
	fd   int
	tcp  bool
	addr net.Addr
	done chan struct{}
	errc chan error

	mu     sync.RWMutex // accept holds it for reading, Close for writing
	closed bool
	once   sync.Once
}

// loopListener is a listener as one loop sees it; loop-owned.
type loopListener struct {
	el      *epListener
	backoff time.Duration // the last back-off; 0 after a successful accept
	// graceUntil (core.Runtime.Clock) is when a loop that found nobody of its
	// AcceptShare accepting during its pause checks its share again.
	graceUntil int64
}

// Close stops every loop accepting from the listener and closes it. It
// never waits for a loop that is running a callback.
func (el *epListener) Close() error {
	var err error
	el.once.Do(func() {
		el.mu.Lock()
		el.closed = true
		el.mu.Unlock()
		for _, l := range el.e.loopList() {
			l.delListener(el)
		}
		err = el.ln.Close()
		close(el.done)
	})
	return err
}

// fail ends Serve with a fatal accept error.
func (el *epListener) fail(err error) {
	select {
	case el.errc <- err:
	default:
	}
}

// isClosed reports whether Close has begun.
func (el *epListener) isClosed() bool {
	el.mu.RLock()
	defer el.mu.RUnlock()
	return el.closed
}

func (l *loop) addListener(el *epListener) error {
	el.mu.RLock()
	defer el.mu.RUnlock()
	if el.closed {
		return nil
	}
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if l.dead {
		return core.ErrServerClosed
	}
	l.lns[int32(el.fd)] = &loopListener{el: el}
	if err := l.p.Add(int32(el.fd), In|Exclusive, TagListener); err != nil {
		delete(l.lns, int32(el.fd))
		return fmt.Errorf("connections: epoll_ctl listener: %w", err)
	}
	return nil
}

func (l *loop) delListener(el *epListener) {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if ll, ok := l.lns[int32(el.fd)]; ok && ll.el == el {
		delete(l.lns, int32(el.fd))
		if !l.dead {
			l.p.Del(int32(el.fd))
		}
	}
}

// accept takes new connections from the listener registered as fd.
func (l *loop) accept(fd int32) {
	l.tmu.Lock()
	ll := l.lns[fd]
	l.tmu.Unlock()
	if ll == nil {
		return
	}
	el := ll.el
	s := l.rt
	b := s.Bal
	for i := 0; i < acceptBatch; i++ {
		// The read lock is held from accept4 until the connection is
		// counted, so that once Close has taken the write lock every
		// connection accepted from el is counted (see core.Runtime.Drain).
		el.mu.RLock()
		if el.closed {
			el.mu.RUnlock()
			return
		}
		if b != nil && !b.Admit(s.Open.Load()) && s.Clock() >= ll.graceUntil {
			el.mu.RUnlock()
			l.pause(ll)
			return
		}
		nfd, rsa, errno := l.sys.Accept(el.fd)
		if errno != 0 {
			el.mu.RUnlock()
		}
		switch {
		case errno == unix.EAGAIN || errno == unix.EINTR || errno == unix.ECONNABORTED:
			return
		case errno == unix.EMFILE || errno == unix.ENFILE || errno == unix.ENOBUFS || errno == unix.ENOMEM:
			l.backOff(ll, errno)
			return
		case errno != 0:
			l.delListener(el)
			el.fail(fmt.Errorf("connections: accept: %w", errno))
			return
		}
		ll.backoff = 0
		if el.tcp {
			l.sys.NoDelay(nfd)
		}
		c, t := newEpConn(s, el.tls != nil)
		c.l, c.ln, c.fd, c.ev = l, el, nfd, doneEvents
		c.Init(s, c, &l.ctr)
		c.setRemote(&rsa)
		ok := l.register(c)
		el.mu.RUnlock()
		if !ok {
			l.sys.Close(int(nfd))
			continue
		}
		if b != nil {
			b.Accepted(s.Open.Load())
		}
		c.StartTimers()
		if t != nil {
			l.tlsAccept(c, t)
		}
		if ev := s.Log.Debug(); ev.Enabled() { // Remote allocates: only for a log that is written
			ev.Uint64("conn", c.ID()).Stringer("remote", c.Remote()).Msg("connection accepted")
		}
		if l.pool != nil {
			l.schedule(c, pendConnect)
		} else {
			l.cb.Enter(core.CbConnect, c.ID())
			c.Callback(s.Cfg.Handler.OnConnect)
			l.cb.Leave()
			l.flush(c)
		}
	}
}

// backOff stops this loop accepting from ll for a while after running out
// of descriptors or memory: the listener leaves the loop's epoll set and
// comes back after the next delay of core.NextBackoff, on the server's wheel.
// Other loops, and this loop's connections, go on meanwhile.
func (l *loop) backOff(ll *loopListener, errno unix.Errno) {
	ll.backoff = core.NextBackoff(ll.backoff)
	l.rt.Log.Warn().Err(errno).Dur("retry_in_ms", ll.backoff).Msg("accept failed")
	el := ll.el
	l.tmu.Lock()
	if !l.dead {
		l.p.Del(int32(el.fd))
	}
	l.tmu.Unlock()
	var retry timer.Timer // fires once; the closure keeps it
	l.rt.Wheel.Schedule(&retry, ll.backoff, func() {
		l.postFunc(func() {
			if el.isClosed() {
				return
			}
			l.tmu.Lock()
			if cur := l.lns[int32(el.fd)]; cur == ll && !l.dead {
				l.p.Add(int32(el.fd), In|Exclusive, TagListener)
			}
			l.tmu.Unlock()
		})
	})
}

// pause stops this loop accepting from ll while the server holds more
// than its share of the listener's connections (core.Config.AcceptShare): the
// listener leaves the loop's epoll set, so the kernel wakes the loops of
// other processes for the connections in the shared accept queue. Every
// core.AcceptPause the loop looks again, on the server's wheel: it comes back
// when it is within its share, or at once, for core.AcceptGrace whatever its
// share, when no process of the share accepted anything meanwhile (then
// nobody else serves the queue, or nothing arrives). Runs on the loop.
func (l *loop) pause(ll *loopListener) {
	el, s, b := ll.el, l.rt, l.rt.Bal
	s.AcceptPauses.Add(1)
	fd := int32(el.fd)
	l.tmu.Lock()
	if !l.dead {
		l.p.Del(fd)
	}
	l.tmu.Unlock()
	since := b.Progress() // loop-owned, like ll
	t := new(timer.Timer)
	s.Wheel.Schedule(t, core.AcceptPause, func() {
		l.postFunc(func() {
			if el.isClosed() {
				return
			}
			switch p := b.Progress(); {
			case p == since:
				ll.graceUntil = s.Clock() + int64(core.AcceptGrace)
			case !b.Admit(s.Open.Load()):
				since = p
				t.Reset(core.AcceptPause)
				return
			}
			l.tmu.Lock()
			if cur := l.lns[fd]; cur == ll && !l.dead {
				l.p.Add(fd, In|Exclusive, TagListener)
			}
			l.tmu.Unlock()
		})
	})
}
