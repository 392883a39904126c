package connections

import "time"

// DefaultAcceptMargin is Config.AcceptMargin's default: a process takes
// new connections while it holds at most 10 % (plus acceptSlack) more
// than the mean of the processes that share its listener.
const DefaultAcceptMargin = 0.1

const (
	// acceptSlack is the connections a process may hold above its margin,
	// so that small counts (a few connections per worker) never pause.
	acceptSlack = 16
	// acceptPause is how long a process above its share stops accepting
	// before it looks again.
	acceptPause = 10 * time.Millisecond
	// acceptGrace: a paused process that finds that no process of the
	// share accepted anything during its pause (nothing arrives, or the
	// others cannot accept: stopped, hung, gone without a Reset) accepts
	// for this long whatever its share, so that the accept queue is never
	// left unserved for more than acceptPause.
	acceptGrace = 10 * time.Millisecond
)

// balancer is a server's use of its AcceptShare: it publishes the
// server's connection count in its slot and compares it with the other
// active slots'. Its methods are safe for concurrent use (atomics only).
type balancer struct {
	slots  []shareSlot
	me     *shareSlot
	factor float64 // 1 + margin
}

// newBalancer returns cfg's balancer; nil when cfg has no share, its
// slot is out of range or balancing is off.
func newBalancer(cfg *Config) *balancer {
	a := cfg.AcceptShare
	if a == nil || cfg.AcceptMargin < 0 || cfg.AcceptSlot < 0 || cfg.AcceptSlot >= len(a.slots) {
		return nil
	}
	m := cfg.AcceptMargin
	if m == 0 {
		m = DefaultAcceptMargin
	}
	return &balancer{slots: a.slots, me: &a.slots[cfg.AcceptSlot], factor: 1 + m}
}

// join marks the slot active: the server accepts from the listener.
func (b *balancer) join(open int64) {
	b.me.open.Store(open)
	b.me.active.Store(1)
}

// leave marks the slot inactive: the server accepts no more (it drains).
func (b *balancer) leave() { b.me.active.Store(0) }

// admit publishes open, the server's connections now, and reports
// whether the server is within its share: open is at most the mean of
// the active slots (this one included) times 1+margin, plus acceptSlack.
// The server whose count is the lowest is always within it, so some
// process of the share always accepts.
func (b *balancer) admit(open int64) bool {
	b.me.open.Store(open)
	sum, n := open, int64(1)
	for i := range b.slots {
		s := &b.slots[i]
		if s == b.me || s.active.Load() == 0 {
			continue
		}
		sum += max(s.open.Load(), 0)
		n++
	}
	if n == 1 {
		return true
	}
	return float64(open*n) <= float64(sum)*b.factor+float64(acceptSlack*n)
}

// accepted publishes one accept and open, the server's connections now.
func (b *balancer) accepted(open int64) {
	b.me.open.Store(open)
	b.me.accepted.Add(1)
}

// progress sums the accepts of every slot: it changes while some process
// of the share accepts.
func (b *balancer) progress() uint64 {
	var n uint64
	for i := range b.slots {
		n += b.slots[i].accepted.Load()
	}
	return n
}

// waitShare holds the standard engine's accept loop while the server is
// above its share: it looks again every acceptPause, and goes on at once
// (for acceptGrace, whatever its share, through *grace) when no process
// of the share accepted anything meanwhile. It returns false when the
// server drains meanwhile (the listener is closed then).
func (s *Server) waitShare(b *balancer, grace *time.Time) bool {
	if b.admit(s.open.Load()) || time.Now().Before(*grace) {
		return true
	}
	since := b.progress()
	s.acceptPauses.Add(1)
	t := time.NewTimer(acceptPause)
	defer t.Stop()
	for {
		select {
		case <-s.stopAccept:
			return false
		case <-t.C:
		}
		p := b.progress()
		if p == since {
			*grace = time.Now().Add(acceptGrace)
			return true
		}
		if b.admit(s.open.Load()) {
			return true
		}
		since = p
		t.Reset(acceptPause)
	}
}
