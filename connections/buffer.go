package connections

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/goes-project/goes/protocols"
)

// Buffer size classes of a server's pool: powers of two from 4 KiB (a new
// buffer's capacity) to 4 MiB; larger buffers are left to the GC.
const (
	bufferSize   = 1 << minClassBits
	minClassBits = 12
	maxClassBits = 22
	numClasses   = maxClassBits - minClassBits + 1
)

// buffer is a byte slice lent by a bufferPool: connections hold one only
// while they have unsent output or unprocessed input, so an idle
// connection owns none. A shared buffer holds bytes that no connection
// owns (a Fanout's frame), queued as is on many connections at once: it is
// never changed, appended to nor kept by the pool.
type buffer struct {
	b      []byte
	shared bool
}

// bufferPool lends buffers by size class, so that a connection whose
// output or input grows (a producer that outruns its peer, a large
// packet) reuses large buffers instead of allocating them again. Safe for
// concurrent use; the zero value works.
type bufferPool struct{ classes [numClasses]sync.Pool }

// get returns an empty buffer of the smallest class.
func (p *bufferPool) get() *buffer { return p.getCap(bufferSize) }

// getCap returns an empty buffer with a capacity of at least n.
func (p *bufferPool) getCap(n int) *buffer {
	k := max(bits.Len(uint(n-1)), minClassBits) // 1<<k >= n
	if k > maxClassBits {
		return &buffer{b: make([]byte, 0, n)}
	}
	if v := p.classes[k-minClassBits].Get(); v != nil {
		return v.(*buffer)
	}
	return &buffer{b: make([]byte, 0, 1<<k)}
}

// grow returns buf, or a buffer from the pool holding buf's bytes if buf
// has no room for n more; then buf goes back to the pool.
func (p *bufferPool) grow(buf *buffer, n int) *buffer {
	if !buf.shared && cap(buf.b)-len(buf.b) >= n {
		return buf
	}
	nb := p.getCap(max(len(buf.b)+n, 2*cap(buf.b)))
	nb.b = append(nb.b, buf.b...)
	p.put(buf)
	return nb
}

// put gives buf back; it must not be used afterwards. Only a buffer
// whose capacity is a class size is kept, so that every buffer the pool
// lends has exactly its class's capacity: an input buffer sized to a
// packet (inputSize) or one that grew by append is left to the GC.
func (p *bufferPool) put(buf *buffer) {
	if buf.shared {
		return // other connections may still be writing it
	}
	c := cap(buf.b)
	k := bits.Len(uint(c)) - 1 // 1<<k <= cap
	if k < minClassBits || k > maxClassBits || c != 1<<k {
		return
	}
	buf.b = buf.b[:0]
	p.classes[k-minClassBits].Put(buf)
}

// maxPooledInput: an input buffer larger than this is not given back to
// the pool but left to the GC. The input budget bounds what connections
// hold; buffers parked in a sync.Pool would be outside it, and under an
// attack that sheds large holders they pile up there by the hundred MiB.
const maxPooledInput = 64 << 10

// putInput gives back an input buffer: to the pool when it is small.
func (p *bufferPool) putInput(buf *buffer) {
	if cap(buf.b) <= maxPooledInput {
		p.put(buf)
	}
}

// getInput returns an empty buffer of capacity n exactly: from the pool
// when n is a class size, made otherwise (inputSize gives a packet's
// exact length).
func (p *bufferPool) getInput(n int) *buffer {
	if k := bits.Len(uint(n - 1)); k >= minClassBits && k <= maxClassBits && n == 1<<k {
		return p.getCap(n)
	}
	return &buffer{b: make([]byte, 0, n)}
}

// firstRoom is the least room a first input buffer leaves for what
// follows its packet's start (before rounding up to a pool class).
const firstRoom = 1 << 10

// smallPacket: a packet of at most this many bytes gets an input buffer of
// its pool class rather than its exact length (at most twice as much,
// from the pool, which lends those again without allocating).
const smallPacket = 16 << 10

// inputSize returns the capacity to give a connection's input buffer that
// holds n bytes of an unfinished packet in cur bytes of capacity (0: no
// buffer yet) and needs room for more. When the protocol knows the
// packet's length (want, from protocols.PacketSizer) that is exactly the
// size (the pool class for a packet of at most smallPacket bytes): one
// buffer, never larger than the packet, and no copy as the rest arrives.
// Without it the first buffer has firstRoom to spare and then doubles, to
// at least n+step, rounded up to a pool class, so that a packet spanning
// many reads is copied a few times only.
// It is never larger than limit (MaxPackageSize); a packet that needs
// more fails with ErrPackageTooLarge.
//
// A 10 MB HTTP body, say, is read into one buffer of exactly its head and
// body, never into the next power of two.
func inputSize(n, cur, want, limit, step int) (int, error) {
	if n >= limit {
		return 0, fmt.Errorf("connections: %d bytes buffered without a complete packet: %w",
			n, protocols.ErrPackageTooLarge)
	}
	var size int
	switch {
	case want > n && want <= smallPacket:
		size = max(1<<bits.Len(uint(want-1)), bufferSize)
	case want > n:
		size = want
	case cur == 0:
		size = n + firstRoom
		if k := bits.Len(uint(size - 1)); k <= maxClassBits {
			size = max(1<<k, bufferSize)
		}
	default:
		size = max(2*cur, n+step)
		if k := bits.Len(uint(size - 1)); k <= maxClassBits {
			size = max(1<<k, bufferSize)
		}
	}
	return min(size, limit), nil
}
