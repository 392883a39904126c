package connections

import "sync"

// Buffer sizes of a server's pool.
const (
	bufferSize    = 4 << 10  // a new buffer's capacity
	maxPooledSize = 64 << 10 // larger buffers are left to the GC
)

// buffer is a byte slice lent by a bufferPool: connections hold one only
// while they have unsent output or unprocessed input, so an idle
// connection owns none.
type buffer struct{ b []byte }

// bufferPool lends buffers. Safe for concurrent use; the zero value works.
type bufferPool struct{ p sync.Pool }

// get returns an empty buffer.
func (p *bufferPool) get() *buffer {
	if v := p.p.Get(); v != nil {
		return v.(*buffer)
	}
	return &buffer{b: make([]byte, 0, bufferSize)}
}

// put gives buf back; it must not be used afterwards.
func (p *bufferPool) put(buf *buffer) {
	if cap(buf.b) > maxPooledSize {
		return
	}
	buf.b = buf.b[:0]
	p.p.Put(buf)
}
