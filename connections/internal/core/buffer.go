package core

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/goes-project/goes/protocols"
)

// Buffer size classes of a server's pool: powers of two from 4 KiB (a new
// Buffer's capacity) to 4 MiB; larger buffers are left to the GC.
const (
	BufferSize   = 1 << minClassBits
	minClassBits = 12
	MaxClassBits = 22
	numClasses   = MaxClassBits - minClassBits + 1
)

// Buffer is a byte slice lent by a BufferPool: connections hold one only
// while they have unsent output or unprocessed input, so an idle
// connection owns none. A shared Buffer holds bytes that no connection
// owns (a Fanout's frame), queued as is on many connections at once: it is
// never changed, appended to nor kept by the pool.
type Buffer struct {
	B      []byte
	Shared bool
}

// BufferPool lends buffers by size class, so that a connection whose
// output or input grows (a producer that outruns its peer, a large
// packet) reuses large buffers instead of allocating them again. Safe for
// concurrent use; the zero value works.
type BufferPool struct{ classes [numClasses]sync.Pool }

// Get returns an empty Buffer of the smallest class.
func (p *BufferPool) Get() *Buffer { return p.GetCap(BufferSize) }

// GetCap returns an empty Buffer with a capacity of at least n.
func (p *BufferPool) GetCap(n int) *Buffer {
	k := max(bits.Len(uint(n-1)), minClassBits) // 1<<k >= n
	if k > MaxClassBits {
		return &Buffer{B: make([]byte, 0, n)}
	}
	if v := p.classes[k-minClassBits].Get(); v != nil {
		return v.(*Buffer)
	}
	return &Buffer{B: make([]byte, 0, 1<<k)}
}

// Grow returns buf, or a Buffer from the pool holding buf's bytes if buf
// has no room for n more; then buf goes back to the pool.
func (p *BufferPool) Grow(buf *Buffer, n int) *Buffer {
	if !buf.Shared && cap(buf.B)-len(buf.B) >= n {
		return buf
	}
	nb := p.GetCap(max(len(buf.B)+n, 2*cap(buf.B)))
	nb.B = append(nb.B, buf.B...)
	p.Put(buf)
	return nb
}

// Put gives buf back; it must not be used afterwards. Only a Buffer
// whose capacity is a class size is kept, so that every Buffer the pool
// lends has exactly its class's capacity: an input Buffer sized to a
// packet (InputSize) or one that grew by append is left to the GC.
func (p *BufferPool) Put(buf *Buffer) {
	if buf.Shared {
		return // other connections may still be writing it
	}
	c := cap(buf.B)
	k := bits.Len(uint(c)) - 1 // 1<<k <= cap
	if k < minClassBits || k > MaxClassBits || c != 1<<k {
		return
	}
	buf.B = buf.B[:0]
	p.classes[k-minClassBits].Put(buf)
}

// maxPooledInput: an input Buffer larger than this is not given back to
// the pool but left to the GC. The input budget bounds what connections
// hold; buffers parked in a sync.Pool would be outside it, and under an
// attack that sheds large holders they pile up there by the hundred MiB.
const maxPooledInput = 64 << 10

// PutInput gives back an input Buffer: to the pool when it is small.
func (p *BufferPool) PutInput(buf *Buffer) {
	if cap(buf.B) <= maxPooledInput {
		p.Put(buf)
	}
}

// GetInput returns an empty Buffer of capacity n exactly: from the pool
// when n is a class size, made otherwise (InputSize gives a packet's
// exact length).
func (p *BufferPool) GetInput(n int) *Buffer {
	if k := bits.Len(uint(n - 1)); k >= minClassBits && k <= MaxClassBits && n == 1<<k {
		return p.GetCap(n)
	}
	return &Buffer{B: make([]byte, 0, n)}
}

// firstRoom is the least room a first input Buffer leaves for what
// follows its packet's start (before rounding up to a pool class).
const firstRoom = 1 << 10

// SmallPacket: a packet of at most this many bytes gets an input Buffer of
// its pool class rather than its exact length (at most twice as much,
// from the pool, which lends those again without allocating).
const SmallPacket = 16 << 10

// InputSize returns the capacity to give a connection's input Buffer that
// holds n bytes of an unfinished packet in cur bytes of capacity (0: no
// Buffer yet) and needs room for more. When the protocol knows the
// packet's length (want, from protocols.PacketSizer) that is exactly the
// size (the pool class for a packet of at most SmallPacket bytes): one
// Buffer, never larger than the packet, and no copy as the rest arrives.
// Without it the first Buffer has firstRoom to spare and then doubles, to
// at least n+step, rounded up to a pool class, so that a packet spanning
// many reads is copied a few times only.
// It is never larger than limit (MaxPackageSize); a packet that needs
// more fails with ErrPackageTooLarge.
//
// A 10 MB HTTP body, say, is read into one Buffer of exactly its head and
// body, never into the next power of two.
func InputSize(n, cur, want, limit, step int) (int, error) {
	if n >= limit {
		return 0, fmt.Errorf("connections: %d bytes buffered without a complete packet: %w",
			n, protocols.ErrPackageTooLarge)
	}
	var size int
	switch {
	case want > n && want <= SmallPacket:
		size = max(1<<bits.Len(uint(want-1)), BufferSize)
	case want > n:
		size = want
	case cur == 0:
		size = n + firstRoom
		if k := bits.Len(uint(size - 1)); k <= MaxClassBits {
			size = max(1<<k, BufferSize)
		}
	default:
		size = max(2*cur, n+step)
		if k := bits.Len(uint(size - 1)); k <= MaxClassBits {
			size = max(1<<k, BufferSize)
		}
	}
	return min(size, limit), nil
}
