//go:build linux

package epoll

import (
	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/internal/uring"
)

// The io_uring send path: a loop gathers the queued output of the
// connections other goroutines posted in one pass and sends it as
// batches of up to RingEntries, one io_uring_enter each; what a send does
// not finish (EAGAIN, a short write) waits for EPOLLOUT as after write,
// and what was queued meanwhile is written with write(2).
const (
	RingEntries = 256
	// RingMin: fewer gathered writes than this go out with write(2).
	RingMin = 8
)

// SendBatch is one loop's io_uring and the sends it gathers for one
// pass. Loop-owned; the zero value has no ring (write(2) only).
type SendBatch struct {
	ring *uring.Ring
	ops  []uring.Op
}

// Open sets up the ring with sys.NewRing; on an error the batch stays
// without one.
func (b *SendBatch) Open(sys *Sys) error {
	if sys.NewRing == nil {
		return nil
	}
	r, err := sys.NewRing(RingEntries)
	if err != nil {
		return err
	}
	b.ring = r
	return nil
}

// Usable reports whether the batch has a ring.
func (b *SendBatch) Usable() bool { return b.ring != nil }

// Add gathers a send of p on fd and reports whether the batch is full
// (RingEntries): then the loop sends it before it adds more.
func (b *SendBatch) Add(fd int32, p []byte) (full bool) {
	b.ops = append(b.ops, uring.Op{FD: fd, Buf: p})
	return len(b.ops) == RingEntries
}

// Len is the number of gathered sends.
func (b *SendBatch) Len() int { return len(b.ops) }

// Send submits the gathered sends, when there are RingMin of them at
// least, and reports whether it did (false: the loop writes each with
// write(2)). An error of the ring closes it: the sends not made have a
// result of 0 bytes, and the batch is without a ring from then on.
func (b *SendBatch) Send() (viaRing bool, err error) {
	if len(b.ops) < RingMin {
		return false, nil
	}
	if err := b.ring.Send(b.ops); err != nil {
		b.Close()
		return true, err
	}
	return true, nil
}

// Result is what the i-th gathered send of a Send that went via the ring
// did: bytes written, or the errno.
func (b *SendBatch) Result(i int) (int, unix.Errno) {
	res := b.ops[i].Res
	if res < 0 {
		return 0, unix.Errno(-res)
	}
	return int(res), 0
}

// Reset forgets the gathered sends.
func (b *SendBatch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
}

// Close releases the ring.
func (b *SendBatch) Close() {
	if b.ring != nil {
		b.ring.Close()
		b.ring = nil
	}
}
