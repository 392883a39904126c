package core

import "time"

const (
	// AcceptSlack is the connections a process may hold above its margin,
	// so that small counts (a few connections per worker) never pause.
	AcceptSlack = 16
	// AcceptPause is how long a process above its share stops accepting
	// before it looks again.
	AcceptPause = 10 * time.Millisecond
	// AcceptGrace: a paused process that finds that no process of the
	// share accepted anything during its pause (nothing arrives, or the
	// others cannot accept: stopped, hung, gone without a Reset) accepts
	// for this long whatever its share, so that the accept queue is never
	// left unserved for more than AcceptPause.
	AcceptGrace = 10 * time.Millisecond
)

// Balancer is a server's use of its AcceptShare: it publishes the
// server's connection count in its slot and compares it with the other
// active slots'. Its methods are safe for concurrent use (atomics only).
type Balancer struct {
	slots  []shareSlot
	me     *shareSlot
	factor float64 // 1 + margin
}

// NewBalancer returns cfg's Balancer; nil when cfg has no share, its
// slot is out of range or balancing is off.
func NewBalancer(cfg *Config) *Balancer {
	a := cfg.AcceptShare
	if a == nil || cfg.AcceptMargin < 0 || cfg.AcceptSlot < 0 || cfg.AcceptSlot >= len(a.slots) {
		return nil
	}
	m := cfg.AcceptMargin
	if m == 0 {
		m = DefaultAcceptMargin
	}
	return &Balancer{slots: a.slots, me: &a.slots[cfg.AcceptSlot], factor: 1 + m}
}

// Join marks the slot active: the server accepts from the listener.
func (b *Balancer) Join(open int64) {
	b.me.open.Store(open)
	b.me.active.Store(1)
}

// Leave marks the slot inactive: the server accepts no more (it drains).
func (b *Balancer) Leave() { b.me.active.Store(0) }

// Admit publishes open, the server's connections now, and reports
// whether the server is within its share: open is at most the mean of
// the active slots (this one included) times 1+margin, plus AcceptSlack.
// The server whose count is the lowest is always within it, so some
// process of the share always accepts.
func (b *Balancer) Admit(open int64) bool {
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
	return float64(open*n) <= float64(sum)*b.factor+float64(AcceptSlack*n)
}

// Accepted publishes one accept and open, the server's connections now.
func (b *Balancer) Accepted(open int64) {
	b.me.open.Store(open)
	b.me.accepted.Add(1)
}

// Progress sums the accepts of every slot: it changes while some process
// of the share accepts.
func (b *Balancer) Progress() uint64 {
	var n uint64
	for i := range b.slots {
		n += b.slots[i].accepted.Load()
	}
	return n
}

// WaitShare holds the standard engine's accept loop while the server is
// above its share: it looks again every AcceptPause, and goes on at once
// (for AcceptGrace, whatever its share, through *grace) when no process
// of the share accepted anything meanwhile. It returns false when the
// server drains meanwhile (the listener is closed then).
func (s *Runtime) WaitShare(b *Balancer, grace *time.Time) bool {
	if b.Admit(s.Open.Load()) || time.Now().Before(*grace) {
		return true
	}
	since := b.Progress()
	s.AcceptPauses.Add(1)
	t := time.NewTimer(AcceptPause)
	defer t.Stop()
	for {
		select {
		case <-s.StopAccept:
			return false
		case <-t.C:
		}
		p := b.Progress()
		if p == since {
			*grace = time.Now().Add(AcceptGrace)
			return true
		}
		if b.Admit(s.Open.Load()) {
			return true
		}
		since = p
		t.Reset(AcceptPause)
	}
}
