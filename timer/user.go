package timer

import "time"

// ID identifies a user timer made by Add. IDs carry a generation: once a
// timer has fired (one-shot) or been deleted, its ID matches nothing, even
// after its slot has been reused by another timer (a slot is reused only
// after every other free slot, and it takes 2^31 reuses of one slot before
// an ID repeats). The zero ID is never returned by Add.
type ID uint64

// entry is a user timer: a node in the wheel's slab plus one word, 48
// bytes on 64-bit platforms. The node's gen is odd while the entry is
// allocated; aux is the period while it is allocated and the free list's
// link while it is free.
type entry struct {
	n   node
	aux int64 // allocated: period in nanoseconds, 0 for one-shot; free: next free entry's index + 1
}

// A chunk is 1024 entries, 48 KiB: a large object, which the allocator
// stores without a per-object header that would round it up.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// slab stores user timers in fixed chunks that never move, with a FIFO
// list of free entries. It is guarded by Wheel.mu.
type slab struct {
	chunks     []*[chunkSize]entry
	head, tail uint32 // free list, index + 1; 0 when empty
	used       int
}

func (s *slab) at(i uint32) *entry { return &s.chunks[i>>chunkBits][i&chunkMask] }

// entryOf returns the entry whose node n is; n.idx is not 0.
func (s *slab) entryOf(n *node) *entry { return s.at(n.idx - 1) }

// alloc takes a free entry, growing the slab when there is none.
func (s *slab) alloc() (*entry, uint32) {
	if s.head == 0 {
		base := uint32(len(s.chunks)) << chunkBits
		c := new([chunkSize]entry)
		s.chunks = append(s.chunks, c)
		for j := range c {
			c[j].n.idx = base + uint32(j) + 1
			s.push(&c[j])
		}
	}
	i := s.head - 1
	e := s.at(i)
	if s.head = uint32(e.aux); s.head == 0 {
		s.tail = 0
	}
	e.aux = 0
	e.n.gen++ // odd: allocated
	s.used++
	return e, i
}

// push appends the free entry e to the free list.
func (s *slab) push(e *entry) {
	e.aux = 0
	if s.tail == 0 {
		s.head = e.n.idx
	} else {
		s.at(s.tail - 1).aux = int64(e.n.idx)
	}
	s.tail = e.n.idx
}

// free retires e's ID and returns e to the free list.
func (s *slab) free(e *entry) {
	e.n.gen++ // even: free, and the ID it had is retired
	e.n.fn = nil
	s.used--
	s.push(e)
}

// inUse reports whether e is allocated.
func (e *entry) inUse() bool { return e.n.gen&1 != 0 }

// lookup returns the allocated entry id names, or nil.
func (s *slab) lookup(id ID) *entry {
	i, gen := uint32(id), uint32(id>>32)
	if i>>chunkBits >= uint32(len(s.chunks)) {
		return nil
	}
	e := s.at(i)
	if e.n.gen != gen || !e.inUse() {
		return nil
	}
	return e
}

// Add starts a user timer that calls fn on the wheel's goroutine interval
// from now and, when persistent is true, every interval after that, and
// returns its ID for Del. A persistent timer keeps its phase: the k-th call
// is due at k*interval after Add, however late the calls before it ran.
// Like a time.Ticker, when a slow callback (or a stopped wheel) made the
// wheel miss several periods, it makes one late call and skips the rest,
// without bunching. A persistent interval shorter than one tick is rounded
// up to a tick. fn must not be nil.
//
// A callback that deletes its own timer needs the ID Add returns: store it
// where the callback reads it with synchronisation (an atomic.Uint64, or a
// variable guarded by a mutex), since the callback may run before Add
// returns. A Timer avoids the question.
//
// Add allocates nothing once the wheel's slab has grown to the number of
// user timers pending at once; each costs 48 bytes of slab. Safe for
// concurrent use, including from callbacks (for example OnWorkerStart or a
// timer's own callback).
func (w *Wheel) Add(interval time.Duration, fn func(), persistent bool) ID {
	if fn == nil {
		panic("timer: Add with a nil func")
	}
	when := w.deadline(interval)
	w.mu.Lock()
	e, i := w.users.alloc()
	if persistent {
		e.aux = max(int64(interval), w.tick)
	}
	e.n.fn, e.n.when = fn, when
	w.link(&e.n)
	id := ID(uint64(e.n.gen)<<32 | uint64(i))
	w.mu.Unlock()
	return id
}

// Del deletes the user timer id and reports whether that prevented a call:
// true for a pending timer, and for a persistent timer whose callback is
// running (it is not re-armed); false for an unknown ID, a one-shot timer
// that has already fired or started, or a timer already deleted. Safe for
// concurrent use, including from the timer's own callback.
func (w *Wheel) Del(id ID) bool {
	w.mu.Lock()
	ok := w.del(w.users.lookup(id))
	w.mu.Unlock()
	return ok
}

// del deletes the user timer e (nil: nothing). w.mu is held.
func (w *Wheel) del(e *entry) bool {
	switch {
	case e == nil:
		return false
	case e.n.next != nil:
		w.unlink(&e.n)
		w.users.free(e)
		return true
	case w.running == &e.n && !w.runStopped: // persistent, in its callback
		w.runStopped = true
		return true
	}
	return false
}

// DelAll deletes every user timer, as Del would. Timers and Idles are not
// affected. It takes time proportional to the largest number of user timers
// pending at once. Safe for concurrent use, including from callbacks.
func (w *Wheel) DelAll() {
	w.mu.Lock()
	for _, c := range w.users.chunks {
		for j := range c {
			if c[j].inUse() {
				w.del(&c[j])
			}
		}
	}
	w.mu.Unlock()
}

// LenUser returns the number of user timers (made by Add) that are pending
// or whose persistent callback is running. Safe for concurrent use.
func (w *Wheel) LenUser() int {
	w.mu.Lock()
	n := w.users.used
	w.mu.Unlock()
	return n
}
