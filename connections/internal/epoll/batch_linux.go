//go:build linux

package epoll

import "github.com/goes-project/goes/connections/internal/core"

// The io_uring send path (loop.ring, SendBatch): runQueue gathers
// the queued output of the connections other goroutines posted in one
// pass and sends it in batches, one io_uring_enter each; what a send does
// not finish (EAGAIN, a short write) waits for EPOLLOUT as after write,
// and what was queued meanwhile is written with write(2).

// gather takes c's queued output for the pass's batch, as flush would
// write it.
//
// A TLS connection's output is sealed into records here (tlsSeal: after
// what crypto/tls wrote by itself), so that a fan-out to TLS connections
// takes the batch too; before its handshake is done it is flushed as
// usual.
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
		buf = l.tlsSeal(c, t, buf) // empty if it failed: c is closing
	}
	full := l.ring.Add(c.fd, buf.B)
	l.opConns = append(l.opConns, c)
	l.opBufs = append(l.opBufs, buf)
	if full {
		l.sendGathered()
	}
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
		c, buf := l.opConns[i], l.opBufs[i]
		var next *core.Buffer
		if viaRing {
			wn, errno := l.ring.Result(i)
			next = l.wrote(c, buf, 0, wn, errno)
		} else {
			next = l.write(c, buf, 0)
		}
		var t *epTLS
		if c.ln.tls != nil {
			t = l.tlsState(c)
		}
		for next != nil && (t != nil || c.ln.tls == nil) { // never plaintext on a TLS socket
			if t != nil {
				next = l.tlsSeal(c, t, next)
			}
			next = l.write(c, next, 0)
		}
		if t != nil && c.wbuf == nil {
			l.tlsWriteCtl(c, t)
		}
		l.rearm(c)
	}
	l.ring.Reset()
	clear(l.opConns)
	clear(l.opBufs)
	l.opConns, l.opBufs = l.opConns[:0], l.opBufs[:0]
}
