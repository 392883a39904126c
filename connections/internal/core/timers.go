package core

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

// ConnTimers are the timeouts and the heartbeat of one stream
// connection, on one node of the server's timer wheel. They are allocated
// together with the connection, just before it (see newStdConn,
// newEpConn, UseTimers), so that arming them costs no allocation and
// neither holds a pointer to the other; connections of a server without
// any timeout (every rule turned off) and without Heartbeat have none.
//
// Traffic does not touch the wheel: a read stores the time in lastIn (and
// a write, with Heartbeat, in lastOut), the dispatcher records the
// connection's phase when a batch of input changes it, a write that has
// to wait for the peer stores when in outWait; when the node fires it
// works out from these whether a rule is broken, a heartbeat is owed, or
// when to look again, and re-arms for that. A busy connection costs one
// wheel operation per period, not one per read.
//
// The fields are packed so that the 96 bytes of ConnTimers keep an epConn
// with timers in the size class of 288 bytes (the epoll package's
// TestEpConnWithTimersSize): mind the sizes when adding one. 4 bytes
// after phase are padding.
type ConnTimers struct {
	t       timer.Timer  // first (expireTimers); re-armed with Reset: its func is the Runtime's expireTimers
	lastIn  atomic.Int64 // Runtime.clock of the last read
	lastOut atomic.Int64 // Runtime.clock of the last write (with Heartbeat)
	// outWait is the Runtime.clock since which a write has been waiting
	// for the peer to take output without any moving (a partial write
	// waiting for room, a writer goroutine blocked), 0 while no write
	// waits. The writer sets it on the slow path only and clears it when
	// its buffer is written.
	outWait atomic.Int64
	// since is the Runtime.clock when phase began (the read that brought
	// it), and in PhaseBody the start of the current BodyMinRate window,
	// which starts with the phase and then moves on window by window;
	// winIn is bytesIn at the start of the window. Under Conn.Mu.
	since int64
	winIn uint64
	// phase is the protocols.Phase the dispatcher last recorded, with
	// phaseStarted once the connection has delivered a packet. It changes
	// under Conn.Mu and is read without it by the dispatcher.
	phase atomic.Uint32
}

// conn returns the Conn tm belongs to, which follows it in their one
// allocation (UseTimers): the Runtime's one expiry func finds the Conn
// from the Timer that fired, so that no connection carries a method value
// of its own (16 bytes each).
func (tm *ConnTimers) conn() *Conn {
	return (*Conn)(unsafe.Add(unsafe.Pointer(tm), unsafe.Sizeof(*tm)))
}

// expireTimers is the func of every connection's timer node: it runs the
// timers of the connection whose node fired (timer.Wheel.Running; t is
// ConnTimers' first field).
func (s *Runtime) expireTimers() {
	if t := s.Wheel.Running(); t != nil {
		(*ConnTimers)(unsafe.Pointer(t)).conn().timersExpired()
	}
}

// phaseStarted marks, in ConnTimers.phase, a connection that has
// delivered a packet: before that, PhaseIdle counts as PhaseHead.
const phaseStarted = 1 << 8

// clock is the time in nanoseconds since the server was made (monotonic),
// plus one, so that 0 can stand for never.
func (s *Runtime) Clock() int64 { return int64(time.Since(s.epoch)) + 1 }

// startWheel starts the wheel the server owns, once, unless the server is
// closed (Close stops it).
func (s *Runtime) StartWheel() {
	if !s.ownWheel || s.wheelOn.Load() {
		return
	}
	s.Mu.Lock()
	if !s.wheelOn.Load() && !s.Closed.Load() {
		s.Wheel.Start()
		s.wheelOn.Store(true)
	}
	s.Mu.Unlock()
}

// onWheel reports whether the server's timers run on its wheel: a wheel
// given in Config.Wheel (a worker's, running), or the server's own once it
// serves. A Client's server never runs one.
func (s *Runtime) onWheel() bool { return !s.ownWheel || s.wheelOn.Load() }

// afterFunc runs fn once, d from now, on the server's timer wheel when it
// runs (a worker's wheel, passed in Config.Wheel, or the server's own once
// it serves), else on a runtime timer (a Client's server, which runs no
// wheel of its own); stop cancels it and reports whether that prevented
// the call.
func (s *Runtime) AfterFunc(d time.Duration, fn func()) (stop func() bool) {
	if s.onWheel() {
		t := new(timer.Timer)
		s.Wheel.Schedule(t, d, fn)
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
func (c *Conn) AfterFunc(d time.Duration, fn func()) (stop func() bool) {
	return c.RT.AfterFunc(d, fn)
}

// stopWheel stops the wheel the server owns; the connections are gone.
func (s *Runtime) StopWheel() {
	s.Mu.Lock()
	on := s.wheelOn.Load()
	s.Mu.Unlock()
	if on {
		s.Wheel.Stop()
	}
}

// StartTimers arms c's timers once c is accepted; the time of the accept
// counts as traffic.
func (c *Conn) StartTimers() {
	tm := c.timers()
	if tm == nil {
		return
	}
	s := c.RT
	s.StartWheel()
	now := s.Clock()
	tm.lastIn.Store(now)
	tm.lastOut.Store(now)
	c.Mu.Lock()
	tm.since = now
	if s.phaser != nil {
		// The first request is due within HeaderTimeout of the accept.
		tm.phase.Store(uint32(protocols.PhaseIdle))
	}
	if !c.Has(FClosing | FSockClosed) {
		// Coarse: the rules are bounds, so connections due in one window
		// share one wake-up (never early, at most timer.Slack late); its
		// Resets keep the slack.
		s.Wheel.ScheduleCoarse(&tm.t, s.firstTimer, s.expire)
	}
	c.Mu.Unlock()
}

// TouchIn records a read. It costs a clock read and an atomic store.
func (c *Conn) TouchIn() {
	if c.Has(FTimers) {
		c.timersAt().lastIn.Store(c.RT.Clock())
	}
}

// stopTimersLocked cancels c's timers as it closes; mu is held, so a
// timersExpired running meanwhile sees the connection closed and does not
// re-arm them.
func (c *Conn) stopTimersLocked() {
	if tm := c.timers(); tm != nil {
		tm.t.Stop()
	}
}

// WaitingOut records that a write is waiting for the peer to take
// output: since now if no wait was recorded or if output moved (moved is
// true), else since when it was. Only the engines' slow write paths call
// it.
func (c *Conn) WaitingOut(moved bool) {
	if tm := c.timers(); tm != nil && c.RT.sendNs|c.RT.idleNs != 0 && (moved || tm.outWait.Load() == 0) {
		tm.outWait.Store(c.RT.Clock())
	}
}

// outDone records that no write waits for the peer any more.
func (c *Conn) outDone() {
	if tm := c.timers(); tm != nil && tm.outWait.Load() != 0 {
		tm.outWait.Store(0)
	}
}

// restartReadRulesLocked starts the read rules' clocks again from now,
// as reading resumes after a pause for backpressure: the wait was the
// server's. mu is held.
func (c *Conn) restartReadRulesLocked() {
	if tm := c.timers(); tm != nil {
		now := c.RT.Clock()
		tm.lastIn.Store(now)
		tm.since, tm.winIn = now, c.bytesIn.Load()
	}
}

// notePhase records the phase of c after a batch of input was dispatched
// (used bytes of it delivered, rest left as a partial packet unless
// Halted), on c's dispatcher. A protocol with a Phaser is asked (with the
// state nil it is PhaseIdle); one without is in PhaseBody while rest
// holds a partial packet and in PhaseOpen otherwise. Nothing is written
// unless the phase changes or a new packet begins in this input, so that
// a steady exchange costs an atomic load here. A panic in the protocol's
// Phase is returned.
func (c *Conn) notePhase(tm *ConnTimers, state any, used, rest int, halted bool) error {
	s := c.RT
	partial := rest > 0 && !halted
	var p protocols.Phase
	switch {
	case s.phaser != nil && state != nil:
		if err := Guard(func() { p = s.phaser.Phase(c.Self(), partial) }); err != nil {
			return err
		}
	case s.phaser != nil:
		p = protocols.PhaseIdle
	case partial:
		p = protocols.PhaseBody
	}
	cur := tm.phase.Load()
	want := uint32(p) | cur&phaseStarted
	if used > 0 {
		want |= phaseStarted
	}
	// A new packet, or a phase whose rule differs, starts the clock
	// again; the first request's head, begun before it was seen, keeps
	// the accept's.
	restart := used > 0 && (p == protocols.PhaseHead || p == protocols.PhaseBody) || effective(want) != effective(cur)
	if want == cur && !restart {
		return nil
	}
	c.Mu.Lock()
	tm.phase.Store(want)
	if restart {
		tm.since, tm.winIn = tm.lastIn.Load(), c.bytesIn.Load()
	}
	c.Mu.Unlock()
	return nil
}

// effective is the phase whose rule applies to a ConnTimers.phase:
// PhaseIdle before the first packet is PhaseHead.
func effective(ph uint32) protocols.Phase {
	p := protocols.Phase(ph &^ phaseStarted)
	if p == protocols.PhaseIdle && ph&phaseStarted == 0 {
		return protocols.PhaseHead
	}
	return p
}

// timersExpired runs on the wheel's goroutine when c's node is due. It
// applies the rules (see the package doc's Timeouts section) and re-arms
// for the nearest deadline, or for the server's checkNs when none is
// nearer, so that a phase recorded meanwhile is looked at in time:
//
//   - SendTimeout: a write has waited that long for the peer: destroy.
//     A paused connection with IdleTimeout has its output stall bounded
//     by IdleTimeout too, if that is shorter.
//   - IdleTimeout: nothing received for that long: close.
//   - the phase's rule (HeaderTimeout, BodyTimeout and BodyMinRate,
//     KeepAliveTimeout): close, after the protocol's TimedOut answer.
//   - Heartbeat: queue the heartbeat on a connection silent both ways.
//
// A connection whose reading is paused (PauseRecv, or backpressure: the
// server stops reading while its answers wait for the peer) or whose
// Callback runs, or whose input waits for a pool task (FInputWaits), is
// not held to the read rules: its input waits for the application or for
// its output, not for the peer, and the rules start again from now; SendTimeout bounds the wait for a peer that reads
// nothing. A closing connection
// needs no timers any more. No user callback runs here.
// deferredRecheck is how often the read timeouts' rules look again
// while one dispatcher runs on (timersExpired), after a first look a
// tick later.
const deferredRecheck = 50 * time.Millisecond

func (c *Conn) timersExpired() {
	s, tm := c.RT, c.timers()
	now := s.Clock()
	c.Mu.Lock()
	if c.Has(FClosing | FSockClosed) {
		c.Mu.Unlock()
		return
	}
	next := now + s.checkNs
	if w := tm.outWait.Load(); w != 0 {
		limit := s.sendNs
		if s.idleNs > 0 && c.Has(FPaused) && (limit == 0 || s.idleNs < limit) {
			limit = s.idleNs
		}
		if limit > 0 {
			if now-w >= limit {
				s.noteCut(cutSend) // counted before the connection is gone from Stats
				c.CloseLocked()
				c.Mu.Unlock()
				return
			}
			next = min(next, w+limit)
		}
	}
	// While reading stops (PauseRecv, backpressure, pool input waiting
	// for its task) the client is not the one late: the read timeouts
	// start again from when reading resumes. A dispatcher running is
	// different: it delivers what was just read, and restarting the
	// windows then would give a client whose byte lands as its deadline
	// passes a whole new window (a slowloris cut at 2 s for 1 s): the
	// rules look again a tick later, then every deferredRecheck while
	// the dispatcher runs on, from the windows as they are.
	waiting := c.Has(FPaused | FBackpressure | FInputWaits)
	if waiting {
		tm.lastIn.Store(now)
		tm.since, tm.winIn = now, c.bytesIn.Load()
	}
	busy := !waiting && c.dispatching > 0
	if busy {
		d := int64(time.Millisecond)
		if c.Has(FRulesDeferred) {
			d = int64(deferredRecheck)
		}
		c.SetFlag(FRulesDeferred)
		next = min(next, now+d)
	} else {
		c.ClearFlag(FRulesDeferred)
	}
	if s.idleNs > 0 && !busy {
		last := tm.lastIn.Load()
		if last+s.idleNs <= now {
			c.closingUnlock()
			s.noteCut(cutIdle)
			return
		}
		next = min(next, last+s.idleNs)
	}
	if !waiting && !busy {
		if reason, p, due := c.phaseRuleLocked(now); reason != cutNone {
			c.timedOutUnlock(reason, p)
			return
		} else if due > 0 {
			next = min(next, due)
		}
	}
	beat, deferred := false, false
	if s.beatNs > 0 {
		due := max(tm.lastIn.Load(), tm.lastOut.Load()) + s.beatNs
		if due <= now {
			// Nothing queued: a connection with output pending is not
			// silent, and the heartbeat must not push it over its limit.
			if c.queuedLocked() == 0 {
				c.out = s.Bufs.Get()
				c.out.B = append(c.out.B, s.Cfg.HeartbeatData...)
				beat, deferred = true, c.dispatching > 0
			}
			tm.lastOut.Store(now)
			due = now + s.beatNs
		}
		next = min(next, due)
	}
	tm.t.Reset(time.Duration(next - now))
	c.Mu.Unlock()
	if beat && !deferred {
		c.ops.Kick()
	}
}

// phaseRuleLocked applies the rule of c's phase at now: it returns the
// reason to close c and the phase it broke (PhaseHead for a first request
// not yet begun), or cutNone and the deadline at which the rule must be
// looked at again (0: none). A phase of PhaseBusy is asked again of
// the protocol, since an answer ends it without any input. mu is held
// and no dispatcher runs.
func (c *Conn) phaseRuleLocked(now int64) (cutReason, protocols.Phase, int64) {
	s, tm := c.RT, c.timers()
	ph := tm.phase.Load()
	p := protocols.Phase(ph &^ phaseStarted)
	if p == protocols.PhaseBusy && s.phaser != nil {
		np := protocols.PhaseIdle
		if st := c.State(); st != nil {
			if err := Guard(func() { np = s.phaser.Phase(c.Self(), false) }); err != nil {
				np = protocols.PhaseBusy
				s.Log.Error().Uint64("conn", c.id).Err(err).Msg("protocol's Phase panicked")
			}
		}
		if np != p {
			p = np
			tm.phase.Store(uint32(p) | ph&phaseStarted)
			tm.since, tm.winIn = now, c.bytesIn.Load()
		}
	}
	p = effective(uint32(p) | ph&phaseStarted)
	switch p {
	case protocols.PhaseHead:
		if s.headNs > 0 {
			if now-tm.since >= s.headNs {
				return cutHeader, p, 0
			}
			return cutNone, p, tm.since + s.headNs
		}
	case protocols.PhaseIdle:
		if s.keepNs > 0 {
			start := max(tm.since, tm.lastIn.Load())
			if now-start >= s.keepNs {
				return cutKeepAlive, p, 0
			}
			return cutNone, p, start + s.keepNs
		}
	case protocols.PhaseBody:
		if s.bodyNs == 0 {
			break
		}
		last := tm.lastIn.Load()
		if now-last >= s.bodyNs {
			return cutBody, p, 0
		}
		due := last + s.bodyNs
		if s.minRate > 0 {
			// The window is [since, since+BodyTimeout).
			if elapsed := now - tm.since; elapsed >= s.bodyNs {
				in := c.bytesIn.Load()
				if float64(in-tm.winIn) < float64(s.minRate)*float64(elapsed)/float64(time.Second) {
					return cutMinRate, p, 0
				}
				tm.since, tm.winIn = now, in
			}
			due = min(due, tm.since+s.bodyNs)
		}
		return cutNone, p, due
	}
	return cutNone, p, 0
}

// timedOutUnlock closes c for breaking the rule of phase p: the
// protocol's TimedOut answer, if any, is queued and c closes once it is
// written. mu is held and no dispatcher runs; timedOutUnlock releases
// it.
func (c *Conn) timedOutUnlock(reason cutReason, p protocols.Phase) {
	s := c.RT
	if s.phaser != nil {
		var reply []byte
		if err := Guard(func() { reply = s.phaser.TimedOut(c.Self(), p) }); err != nil {
			s.Log.Error().Uint64("conn", c.id).Err(err).Msg("protocol's TimedOut panicked")
		}
		if len(reply) > 0 {
			c.queueRawLocked(reply)
		}
	}
	c.closingUnlock()
	s.noteCut(reason)
}
