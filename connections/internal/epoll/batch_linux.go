//go:build linux

package epoll

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/prefetch"
)

// The io_uring send path (loop.ring, SendBatch): runQueue gathers
// the queued output of the connections other goroutines posted in one
// pass and sends it in batches, one io_uring_enter each; what a send does
// not finish (EAGAIN, a short write) waits for EPOLLOUT as after write,
// and what was queued meanwhile is written with write(2).

// gathered is one send of the pass's batch: its connection, its bytes
// and, for a TLS connection, its state.
type gathered struct {
	c   *epConn
	buf *core.Buffer
	t   *epTLS
}

// sealArena holds the records of the batch's TLS sends, sealed straight
// into it (sealGathered): one buffer for the batch instead of a pool
// buffer per connection, so that a fan-out to many TLS connections
// writes its records side by side, warm in the cache for the kernel's
// copy, and takes nothing from the pool. Loop-owned; made by the first
// TLS send of the loop.
type sealArena struct {
	b    []byte        // len(b) == sealArenaSize
	off  int           // bytes of b the batch uses
	bufs []core.Buffer // by batch index, the records of a send in b (Shared: never pooled)
}

const (
	sealArenaSize = 64 << 10
	// sealInArenaMax: queued output larger than this is sealed into a
	// pool buffer of its own (tlsSeal).
	sealInArenaMax = 4 << 10
)

// gather takes c's queued output for the pass's batch, as flush would
// write it.
//
// A TLS connection's output is sealed into records here (sealGathered:
// after what crypto/tls wrote by itself), so that a fan-out to TLS
// connections takes the batch too; before its handshake is done it is
// flushed as usual.
func (l *loop) gather(c *epConn) {
	var t *epTLS
	if c.ln.tls != nil {
		if t = l.tlsState(c); t == nil || !t.up {
			l.flush(c)
			return
		}
	}
	var buf *core.Buffer
	if c.wbuf == nil && c.fd >= 0 {
		buf = c.TakeOut()
	}
	if buf == nil {
		if t != nil && c.wbuf == nil {
			l.tlsWriteCtl(c, t)
		}
		l.rearm(c)
		return
	}
	if t != nil {
		buf = l.sealGathered(c, t, buf) // empty if it failed: c is closing
	}
	full := l.ring.Add(c.fd, buf.B)
	l.ops = append(l.ops, gathered{c: c, buf: buf, t: t})
	if full {
		l.sendGathered()
	}
}

// sealGathered returns buf, c's queued output, sealed into records for
// the batch: in the batch's arena when it is small (what was gathered is
// sent first when the arena has no room), else in a pool buffer
// (tlsSeal). buf goes back to the pool. A failure closes c; the records
// are then empty.
func (l *loop) sealGathered(c *epConn, t *epTLS, buf *core.Buffer) *core.Buffer {
	if len(buf.B) > sealInArenaMax {
		return l.tlsSeal(c, t, buf)
	}
	a := &l.seals
	if a.b == nil {
		a.b = make([]byte, sealArenaSize)
		a.bufs = make([]core.Buffer, RingEntries)
	}
	if a.off+len(buf.B)+len(buf.B)>>6+256 > len(a.b) {
		l.sendGathered() // empties the arena
	}
	rec, err := t.sess.Seal(a.b[a.off:a.off:len(a.b)], buf.B)
	l.rt.Bufs.Put(buf)
	if err != nil {
		l.rt.Log.Debug().Uint64("conn", c.ID()).Err(err).Msg("TLS seal failed, connection closed")
		rec = nil
		c.Destroy()
	}
	if len(rec) > 0 && &rec[0] != &a.b[a.off] {
		// crypto/tls's own output, waiting before the records, took
		// them past the arena's end: they have a buffer of their own.
		return &core.Buffer{B: rec}
	}
	a.off += len(rec)
	rb := &a.bufs[len(l.ops)]
	*rb = core.Buffer{B: rec, Shared: true}
	return rb
}

// sendGathered writes what gather took and finishes each write.
func (l *loop) sendGathered() {
	n := l.ring.Len()
	if n == 0 {
		return
	}
	viaRing, err := l.ring.Send()
	if viaRing {
		l.ctr.IOUringSends.Add(uint64(n))
	}
	if err != nil {
		// Those not sent have a result of 0 bytes: they wait for EPOLLOUT.
		l.rt.Log.Warn().Err(err).Msg("io_uring send failed: this event loop writes with write(2) from now on")
	}
	for i := 0; i < n; i++ {
		if j := i + pfConn; j < n {
			prefetch.Range(uintptr(unsafe.Pointer(l.ops[j].c)), unsafe.Sizeof(epConn{}))
		}
		op := &l.ops[i]
		c, buf, t := op.c, op.buf, op.t
		var wn int
		var errno unix.Errno
		if viaRing {
			wn, errno = l.ring.Result(i)
		} else {
			wn, errno = l.sys.Write(c.fd, buf.B)
		}
		if t != nil && buf.Shared && wn < len(buf.B) { // in the arena
			// The rest waits for EPOLLOUT in c.wbuf: in a buffer of c's
			// own, the arena is the next batch's.
			nb := l.rt.Bufs.GetCap(len(buf.B))
			nb.B = append(nb.B, buf.B...)
			buf = nb
		}
		next := l.wrote(c, buf, 0, wn, errno)
		for next != nil { // never plaintext on a TLS socket: t is set for every TLS send
			if t != nil {
				next = l.tlsSeal(c, t, next)
			}
			next = l.write(c, next, 0)
		}
		// A TLS connection's crypto/tls output waiting (Pending) went
		// out before its records: every Seal takes it first, and
		// nothing has read c's session since (only this pass's gather
		// touched c). So no tlsWriteCtl here, which would lock the
		// session of every member of a fan-out once more.
		l.rearm(c)
	}
	l.ring.Reset()
	clear(l.ops)
	l.ops = l.ops[:0]
	l.seals.off = 0
}

// Prefetch distances, in connections ahead of the one served: a
// connection's own memory is asked for pfConn ahead, and what its TLS
// session's seal reads outside it (tlsrec.Session.Prefetch, found through
// the connection: so later, once that is in the cache) pfTLS ahead.
const (
	pfConn = 8
	pfTLS  = 4
)

// pfTLS <= pfConn: runQueue calls prefetchAhead only while q[i+pfTLS]
// exists, past which q[i+pfConn] does not either.
var _ [pfConn - pfTLS]struct{}

// prefetchAhead asks for the memory of the connections q[i+pfConn] and
// (when the loop has TLS connections: tls) q[i+pfTLS]'s session to be
// loaded while q[i] is served. A fan-out queues every member of a group
// on its loop; by the time runQueue comes to one, its state is cold, and
// each load that misses stalls the loop for the memory's latency, one
// after the other, where prefetches a few members ahead overlap.
func (l *loop) prefetchAhead(q []*epConn, i int, tls bool) {
	if j := i + pfConn; j < len(q) {
		size := unsafe.Sizeof(epConn{})
		if tls {
			size = unsafe.Sizeof(tlsEpConn{}) - unsafe.Offsetof(tlsEpConn{}.epConn)
		}
		prefetch.Range(uintptr(unsafe.Pointer(q[j])), size)
	}
	if j := i + pfTLS; tls && j < len(q) {
		if t := l.tlsState(q[j]); t != nil && t.up {
			t.sess.Prefetch()
		}
	}
}
