package core

import (
	"errors"
	"sync/atomic"
	"unsafe"
)

// AcceptShare is memory shared by the processes that accept from one
// listening socket (the workers of a listener, which inherit the same
// socket and so one accept queue): one slot per process, in which that
// process publishes how many connections it holds. A Server given a share
// and a slot (Config.AcceptShare) takes new connections only while it
// holds no more than its share of them: see Config.AcceptMargin.
//
// Whoever creates the share (the master: NewAcceptShare) hands each
// process a slot of its own, passes the share's File on, and clears a
// slot (Reset) once its process has exited; a slot is reused only then.
// The processes open it with OpenAcceptShare. The slots are read and
// written with atomic operations: every method is safe for concurrent use,
// across processes too, except Close, after which nothing may use it.
type AcceptShare struct {
	f     fileCloser
	mem   []byte
	slots []shareSlot
}

// fileCloser is the share's descriptor (an *os.File), kept by the
// process that made it to pass it on.
type fileCloser interface{ Close() error }

// shareSlot is one process's place in a share: a cache line of its own.
type shareSlot struct {
	active   atomic.Int64  // 1 while the process accepts from the listener
	open     atomic.Int64  // its connections, as it last published them
	accepted atomic.Uint64 // connections it has accepted
	_        [40]byte
}

// shareSlotSize is the bytes of one slot.
const shareSlotSize = int(unsafe.Sizeof(shareSlot{}))

// ErrAcceptShareUnsupported: shared accept counters need memory shared
// between processes, which this platform does not offer here.
var ErrAcceptShareUnsupported = errors.New("connections: accept share not supported on this platform")

// errBadShare: a share's memory is not a whole number of slots.
var errBadShare = errors.New("connections: accept share: size is not a whole number of slots")

// Slots is the number of slots of a.
func (a *AcceptShare) Slots() int { return len(a.slots) }

// Reset clears slot i: its process has exited (or is about to get it).
// It does nothing for an i out of range.
func (a *AcceptShare) Reset(i int) {
	if i < 0 || i >= len(a.slots) {
		return
	}
	s := &a.slots[i]
	s.active.Store(0)
	s.open.Store(0)
	s.accepted.Store(0)
}

// viewSlots views mem as slots.
func viewSlots(mem []byte) ([]shareSlot, error) {
	if len(mem) == 0 || len(mem)%shareSlotSize != 0 {
		return nil, errBadShare
	}
	return unsafe.Slice((*shareSlot)(unsafe.Pointer(&mem[0])), len(mem)/shareSlotSize), nil
}
