package connections

import (
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/timer"
)

// connTimers are the idle timeout and the heartbeat of one stream
// connection, on one node of the server's timer wheel. They are allocated
// together with the connection (see newStdConn, newEpConn), so that arming
// them costs no allocation; connections of a server without IdleTimeout
// and Heartbeat have none.
//
// Traffic does not touch the wheel: a read stores the time in lastIn (and
// a write, with Heartbeat, in lastOut), and when the node fires it works
// out from these times whether the connection is idle, owes a heartbeat,
// or was active, in which case it re-arms for the time that is left. A
// busy connection costs one wheel operation per period, not one per read.
type connTimers struct {
	t       timer.Timer
	fire    func()       // the connection's timersExpired, made once
	lastIn  atomic.Int64 // Server.clock of the last read
	lastOut atomic.Int64 // Server.clock of the last write (with Heartbeat)
	// A paused connection with output its peer does not take: bytesOut
	// when timersExpired first saw it so, and when. Wheel goroutine only.
	stalled    bool
	stallOut   uint64
	stallSince int64
}

// clock is the time in nanoseconds since the server was made (monotonic).
func (s *Server) clock() int64 { return int64(time.Since(s.epoch)) }

// startWheel starts the wheel the server owns, once, unless the server is
// closed (Close stops it).
func (s *Server) startWheel() {
	if !s.ownWheel || s.wheelOn.Load() {
		return
	}
	s.mu.Lock()
	if !s.wheelOn.Load() && !s.closed.Load() {
		s.wheel.Start()
		s.wheelOn.Store(true)
	}
	s.mu.Unlock()
}

// onWheel reports whether the server's timers run on its wheel: a wheel
// given in Config.Wheel (a worker's, running), or the server's own once it
// serves. A Client's server never runs one.
func (s *Server) onWheel() bool { return !s.ownWheel || s.wheelOn.Load() }

// afterFunc runs fn once, d from now, on the server's timer wheel when it
// runs (a worker's wheel, passed in Config.Wheel, or the server's own once
// it serves), else on a runtime timer (a Client's server, which runs no
// wheel of its own); stop cancels it and reports whether that prevented
// the call.
func (s *Server) afterFunc(d time.Duration, fn func()) (stop func() bool) {
	if s.onWheel() {
		t := new(timer.Timer)
		s.wheel.Schedule(t, d, fn)
		return t.Stop
	}
	return time.AfterFunc(d, fn).Stop
}

// AfterFunc runs fn once, d from now, on the clock of c's server: the
// worker's timer wheel inside a worker (fn then runs on the wheel's
// goroutine: it must not block), a runtime timer for a Client without a
// wheel. stop cancels it and reports whether that prevented the call. It
// is how a protocol, which cannot import this package, arms a timeout of
// its own for c (WebSocket's closing handshake). Safe for concurrent use.
func (c *base) AfterFunc(d time.Duration, fn func()) (stop func() bool) {
	return c.s.afterFunc(d, fn)
}

// stopWheel stops the wheel the server owns; the connections are gone.
func (s *Server) stopWheel() {
	s.mu.Lock()
	on := s.wheelOn.Load()
	s.mu.Unlock()
	if on {
		s.wheel.Stop()
	}
}

// startTimers arms c's timers once c is accepted; the time of the accept
// counts as traffic.
func (c *base) startTimers() {
	tm := c.tm
	if tm == nil {
		return
	}
	s := c.s
	s.startWheel()
	now := s.clock()
	tm.lastIn.Store(now)
	tm.lastOut.Store(now)
	tm.fire = c.timersExpired
	c.mu.Lock()
	if !c.has(fClosing | fSockClosed) {
		s.wheel.Schedule(&tm.t, s.firstTimer, tm.fire)
	}
	c.mu.Unlock()
}

// touchIn records a read. It costs a clock read and an atomic store.
func (c *base) touchIn() {
	if tm := c.tm; tm != nil {
		tm.lastIn.Store(c.s.clock())
	}
}

// stopTimersLocked cancels c's timers as it closes; mu is held, so a
// timersExpired running meanwhile sees the connection closed and does not
// re-arm them.
func (c *base) stopTimersLocked() {
	if tm := c.tm; tm != nil {
		tm.t.Stop()
	}
}

// timersExpired runs on the wheel's goroutine when c's node is due: it
// closes c if it has received nothing for IdleTimeout, queues the
// heartbeat if c has been silent both ways for Heartbeat, and re-arms for
// the next of the two deadlines. A connection whose reading is paused or
// whose callback runs is not idle: its input waits for it, not for the
// peer. But a paused connection whose queued output has not moved for
// IdleTimeout (a stream or a download to a peer that stopped reading) is
// destroyed: what it holds cannot be delivered. A closing connection
// needs no timers any more. No user callback runs here.
func (c *base) timersExpired() {
	s, tm := c.s, c.tm
	now := s.clock()
	c.mu.Lock()
	if c.has(fClosing | fSockClosed) {
		c.mu.Unlock()
		return
	}
	if c.has(fPaused) || c.dispatching > 0 {
		if s.idleNs > 0 && c.has(fPaused) && c.queuedLocked() > 0 {
			out := c.bytesOut.Load()
			switch {
			case !tm.stalled || out != tm.stallOut:
				tm.stalled, tm.stallOut, tm.stallSince = true, out, now
			case now-tm.stallSince >= s.idleNs:
				queued := c.queuedLocked()
				c.closeLocked()
				c.mu.Unlock()
				s.log.Debug().Uint64("conn", c.id).Dur("stalled_for", time.Duration(now-tm.stallSince)).Int("queued", queued).Msg("peer takes no output, connection destroyed")
				return
			}
		} else {
			tm.stalled = false
		}
		tm.lastIn.Store(now)
	} else {
		tm.stalled = false
	}
	next := int64(-1)
	if s.idleNs > 0 {
		last := tm.lastIn.Load()
		if last+s.idleNs <= now {
			c.mu.Unlock()
			s.log.Debug().Uint64("conn", c.id).Dur("silent_for", time.Duration(now-last)).Msg("idle timeout, connection closed")
			c.Close()
			return
		}
		next = last + s.idleNs
	}
	beat, deferred := false, false
	if s.beatNs > 0 {
		due := max(tm.lastIn.Load(), tm.lastOut.Load()) + s.beatNs
		if due <= now {
			// Nothing queued: a connection with output pending is not
			// silent, and the heartbeat must not push it over its limit.
			if c.queuedLocked() == 0 {
				c.out = s.bufs.get()
				c.out.b = append(c.out.b, s.cfg.HeartbeatData...)
				beat, deferred = true, c.dispatching > 0
			}
			tm.lastOut.Store(now)
			due = now + s.beatNs
		}
		if next < 0 || due < next {
			next = due
		}
	}
	s.wheel.Schedule(&tm.t, time.Duration(next-now), tm.fire)
	c.mu.Unlock()
	if beat && !deferred {
		c.ops.kick()
	}
}
