package core

import (
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/protocols"
)

// shedLogInterval is how often the shedding of connections is logged:
// one line when it starts, then one summary line per interval while it
// goes on.
const shedLogInterval = 10 * time.Second

// InputBudget bounds the memory a server's stream connections hold for
// input that is not yet a whole packet: the capacity of their input
// buffers while they hold a partial packet, and what their protocols hold
// besides (protocols.InputHolder: WebSocket fragments). A connection's
// charge changes only when its buffer is made, grows or is let go (a
// buffer lent for one read and emptied by it is never charged), so the
// path of whole packets never takes the lock.
//
// When a charge would take the total past the limit, the budget sheds the
// connections holding the most, largest first, until it fits: each is
// closed after a reply its protocol gives (protocols.OverloadReplier: 503
// for HTTP), its input dropped at once. If the connection asking holds
// the most itself, it is the one shed. Pausing the largest holders instead
// would not give back a byte: their buffers would stay full and small
// requests would find no room, while an attacker only wants its
// connections held. A connection that is neither refused nor shed keeps
// all it was given, so legitimate packets that fit the budget are never
// disturbed by one that does not.
//
// The holders are kept in lists by size class (bits.Len of their charge),
// so finding one of the largest is O(1): the shed one is the first of the
// highest class, within a factor of two of the largest. A charge whose
// class is below the highest sheds from it; one of the highest class or
// above is refused. So the connections that hold memory keep it until
// their packets are complete, a newcomer as large as they are is turned
// away before it costs an allocation (no churn of large buffers for the
// GC under attack), and a smaller one, such as a request with a few KiB
// of head, always gets in.
//
// mu is a leaf: nothing else is locked while it is held; connections are
// Shed after it is released. Safe for concurrent use.
type InputBudget struct {
	RT    *Runtime
	limit int
	every time.Duration // shedLogInterval (tests shorten it)

	mu      sync.Mutex
	used    int
	holders map[*Conn]*holder
	lists   [bits.UintSize + 1]*holder // by class: bits.Len(uint(charge))
	mask    uint64                     // bit k set: lists[k] is not empty
	free    *holder                    // spare holders, chained by next

	held    atomic.Int64  // used, for Stats
	shed    atomic.Uint64 // connections shed since the server started
	pending atomic.Uint64 // shed since the last log line
	armed   atomic.Bool   // a summary line is scheduled
}

// holder is a connection's record in the budget: what its input buffer
// holds (buf) and what its protocol holds (proto).
type holder struct {
	c          *Conn
	buf, proto int
	class      int
	prev, next *holder
}

func newInputBudget(s *Runtime, limit int) *InputBudget {
	return &InputBudget{RT: s, limit: limit, every: shedLogInterval, holders: make(map[*Conn]*holder)}
}

func (h *holder) charge() int { return h.buf + h.proto }

// HoldBuf sets the bytes of c's input buffer to n (0: it has none now).
// It reports false when c is refused: it would hold the most, over the
// limit; the caller then sheds c (its charge is unchanged). Others may be
// Shed to make room.
func (b *InputBudget) HoldBuf(c *Conn, n int) bool { return b.set(c, n, false) }

// holdProto sets the bytes c's protocol holds to n; as HoldBuf.
func (b *InputBudget) holdProto(c *Conn, n int) bool { return b.set(c, n, true) }

// Forget drops c's record: c is gone.
func (b *InputBudget) Forget(c *Conn) {
	if !c.Has(FInputHeld) {
		return
	}
	b.mu.Lock()
	if h := b.holders[c]; h != nil {
		b.removeLocked(h)
	}
	b.mu.Unlock()
}

func (b *InputBudget) set(c *Conn, n int, proto bool) bool {
	if n == 0 && !c.Has(FInputHeld) {
		return true
	}
	for {
		b.mu.Lock()
		h := b.holders[c]
		cur := 0
		if h != nil {
			cur = h.charge()
		}
		next := n
		if h != nil {
			if proto {
				next += h.buf
			} else {
				next += h.proto
			}
		}
		if next <= cur || b.used-cur+next <= b.limit {
			b.commitLocked(c, h, n, proto)
			b.mu.Unlock()
			return true
		}
		v := b.victimLocked(h, next)
		if v == nil {
			b.mu.Unlock()
			return false
		}
		vc := v.c
		b.removeLocked(v)
		b.mu.Unlock()
		vc.Shed(false)
	}
}

// commitLocked records c's new amounts (h is c's holder or nil).
func (b *InputBudget) commitLocked(c *Conn, h *holder, n int, proto bool) {
	if h == nil {
		if n == 0 {
			return
		}
		h = b.free
		if h != nil {
			b.free = h.next
			h.next = nil
		} else {
			h = new(holder)
		}
		h.c = c
		b.holders[c] = h
		c.SetFlag(FInputHeld)
	} else {
		b.unlinkLocked(h)
	}
	if proto {
		h.proto = n
	} else {
		h.buf = n
	}
	if h.charge() == 0 {
		delete(b.holders, c)
		c.ClearFlag(FInputHeld)
		*h = holder{next: b.free}
		b.free = h
		b.sync()
		return
	}
	b.linkLocked(h)
	b.sync()
}

// victimLocked returns the holder to shed so that a connection (holder
// self, or nil for a new one) may hold want bytes, or nil when the asking
// connection would hold the most and is the one to refuse.
func (b *InputBudget) victimLocked(self *holder, want int) *holder {
	mask := b.mask
	if self != nil && b.lists[self.class] == self && self.next == nil {
		mask &^= 1 << self.class // self alone in its class: no candidate there
	}
	if mask == 0 {
		return nil
	}
	top := bits.Len64(mask) - 1
	if top <= classOf(want) {
		return nil
	}
	v := b.lists[top]
	if v == self {
		v = v.next
	}
	return v
}

func classOf(n int) int { return bits.Len(uint(n)) }

func (b *InputBudget) linkLocked(h *holder) {
	k := classOf(h.charge())
	h.class = k
	h.prev = nil
	h.next = b.lists[k]
	if h.next != nil {
		h.next.prev = h
	}
	b.lists[k] = h
	b.mask |= 1 << k
	b.used += h.charge()
}

func (b *InputBudget) unlinkLocked(h *holder) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		b.lists[h.class] = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	}
	if b.lists[h.class] == nil {
		b.mask &^= 1 << h.class
	}
	h.prev, h.next = nil, nil
	b.used -= h.charge()
}

// removeLocked drops h altogether (its connection is shed or gone).
func (b *InputBudget) removeLocked(h *holder) {
	b.unlinkLocked(h)
	delete(b.holders, h.c)
	h.c.ClearFlag(FInputHeld)
	*h = holder{next: b.free}
	b.free = h
	b.sync()
}

func (b *InputBudget) sync() { b.held.Store(int64(b.used)) }

// count counts a shed connection and logs: at once when shedding starts,
// then one summary line per shedLogInterval while it goes on.
func (b *InputBudget) count() {
	b.shed.Add(1)
	b.pending.Add(1)
	if !b.armed.CompareAndSwap(false, true) {
		return
	}
	n := b.pending.Swap(0)
	b.RT.Log.Warn().Uint64("shed", n).Uint64("shed_total", b.shed.Load()).Int("max_input_memory", b.limit).
		Int64("held", b.held.Load()).Msg("input memory budget spent, shedding the largest holders")
	b.RT.AfterFunc(b.every, b.summary)
}

// summary logs the connections shed in the interval that ended, and
// stays armed while there are any.
func (b *InputBudget) summary() {
	n := b.pending.Swap(0)
	if n == 0 {
		b.armed.Store(false)
		if b.pending.Load() > 0 && b.armed.CompareAndSwap(false, true) {
			b.RT.AfterFunc(b.every, b.summary) // one came meanwhile
		}
		return
	}
	b.RT.Log.Warn().Uint64("shed", n).Uint64("shed_total", b.shed.Load()).Dur("interval_ms", b.every).
		Int("max_input_memory", b.limit).Int64("held", b.held.Load()).Msg("connections shed by the input memory budget")
	b.RT.AfterFunc(b.every, b.summary)
}

// Shed closes c because the input budget is spent: its protocol's
// overload reply is queued and c closes once that is written. self says
// c's own reading goroutine sheds it, after its charge was refused: the
// caller lets go of c's input (right away, or once the dispatch in
// progress returns, for a refusal of HoldInput from Decode). Otherwise
// another connection's goroutine sheds c, after the budget dropped c's
// record, and c's engine drops c's input as soon as it can
// (Ops.ShedInput).
func (c *Conn) Shed(self bool) {
	s := c.RT
	if !self {
		defer c.ops.ShedInput()
	}
	if c.Has(FClosing | FSockClosed) {
		return
	}
	s.Budget.count()
	if ev := s.Log.Debug(); ev.Enabled() { // Remote allocates: only for a log that is written
		ev.Uint64("conn", c.id).Stringer("remote", c.ops.Remote()).Msg("connection shed by the input memory budget")
	}
	if r := s.overload; r != nil {
		var reply []byte
		if err := Guard(func() { reply = r.OverloadReply(c.Self()) }); err != nil {
			s.Log.Error().Uint64("conn", c.id).Err(err).Msg("OverloadReply panicked")
		} else if len(reply) > 0 {
			c.sendLast(reply)
		}
	}
	c.Close()
}

// HoldInput implements protocols.InputHolder: the bytes c's protocol holds
// for an unfinished message count against the server's input budget. When
// the budget refuses them, c is shed and the error wraps
// protocols.ErrOverloaded. Call it from Input or Decode only.
func (c *Conn) HoldInput(n int) error {
	if n < 0 {
		n = 0
	}
	if !c.RT.Budget.holdProto(c, n) {
		c.Shed(true)
		return ErrInputBudget
	}
	return nil
}

var _ protocols.InputHolder = (*Conn)(nil)

// isShed reports whether err is a budget refusal (already counted and
// logged by shed).
func isShed(err error) bool { return errors.Is(err, protocols.ErrOverloaded) }
