package connections

import (
	"math/bits"
	"sync"
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
// connection owns none.
type buffer struct{ b []byte }

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
	if cap(buf.b)-len(buf.b) >= n {
		return buf
	}
	nb := p.getCap(max(len(buf.b)+n, 2*cap(buf.b)))
	nb.b = append(nb.b, buf.b...)
	p.put(buf)
	return nb
}

// put gives buf back; it must not be used afterwards. A buffer goes to
// the class its capacity fills: that class's get can count on it.
func (p *bufferPool) put(buf *buffer) {
	k := bits.Len(uint(cap(buf.b))) - 1 // 1<<k <= cap
	if k < minClassBits || k > maxClassBits {
		return
	}
	buf.b = buf.b[:0]
	p.classes[k-minClassBits].Put(buf)
}
