//go:build linux

package epoll

import (
	"crypto/tls"
	"errors"
	"io"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/tlsrec"
	"github.com/goes-project/goes/timer"
)

// TLS on the event loops: the record layer between a TLS connection's
// socket and its protocol (connections/internal/tlsrec, crypto/tls
// underneath). The loop reads the socket as for any connection; until
// the handshake is done the bytes go to the session (tlsHello), the
// ClientHello is checked on the loop, and the handshake runs on the
// engine's handshake pool; afterwards they are decrypted (tlsPump) into
// the same path as a plain connection's input. Output is sealed as flush
// takes it from the send queue (tlsSeal); what crypto/tls writes by
// itself (handshake flights, alerts, close_notify) is written by
// tlsWriteCtl. A plain connection pays nothing for this: its listener has
// no tls, and its epConn no field (a TLS connection's state is allocated
// beside it: tlsEpConn).
//
// kTLS would replace this file's record work: once a handshake is done,
// its keys would move to the socket and the connection would be a plain
// one from then on (see tlsrec's package doc for why it is not built).

// epTLSListener is how a TLS listener is served: its settings and the
// engine's handshake pool.
type epTLSListener struct {
	sv      core.TLSServing
	conf    *tlsrec.Config // sv.Config as sessions serve it
	timeout time.Duration
	pool    *tlsrec.Pool
}

// epTLS is a TLS connection's state, loop-owned except where noted.
// The session is inside it, its first fields next to up and ctlWait: a
// fan-out touches them all for each member, whose state is cold by then
// (one object, in fewer cache lines, than two).
//
// Its flags come first, packed. It is allocated with its connection
// (newEpConn's tlsEpConn: one object of the 768-byte class, TestEpTLSSize).
type epTLS struct {
	up bool // the loop has seen the handshake done
	// ctlWait: output of crypto/tls's own (tlsWriteCtl) waits for
	// EPOLLOUT.
	ctlWait bool
	started bool // the handshake was handed to the pool
	// partial: the client has sent part of a record, timer bounds it.
	partial bool
	told    atomic.Bool // Done was called
	sess    tlsrec.Session
	start   int64       // the accept's time, Unix nanoseconds
	timer   timer.Timer // the handshake timeout, then a partial record's
}

// tlsPoolFor returns the engine's handshake pool, made by the first TLS
// listener (its MaxHandshakes decides).
func (e *epollEngine) tlsPoolFor(sv core.TLSServing) *tlsrec.Pool {
	e.tlsOnce.Do(func() {
		n := sv.MaxHandshakes
		if n <= 0 {
			n = core.DefaultMaxTLSHandshakes
		}
		e.tlsPool = tlsrec.NewPool(0, n)
	})
	return e.tlsPool
}

// tlsState returns c's TLS state, nil for a plain connection (and for a
// TLS connection whose socket is released).
//
// The state is found from c's address, not looked up: a TLS connection
// is always a tlsEpConn (newEpConn), its state beside it in one object,
// and a fan-out to many TLS connections asks for each member's (a table
// by descriptor cost a cache miss per member, a map two or three).
func (l *loop) tlsState(c *epConn) *epTLS {
	if c.ln == nil || c.ln.tls == nil || c.fd < 0 {
		return nil
	}
	return &(*tlsEpConn)(unsafe.Add(unsafe.Pointer(c), -int(unsafe.Offsetof(tlsEpConn{}.epConn)))).tls
}

// tlsAccept starts the TLS session of c, just accepted from a TLS
// listener, in t (newEpConn's), and its handshake timeout.
func (l *loop) tlsAccept(c *epConn, t *epTLS) {
	lt := c.ln.tls
	t.start = time.Now().UnixNano()
	t.sess.Init(lt.conf, c) // c's addresses made only if crypto/tls asks
	l.rt.Wheel.Schedule(&t.timer, lt.timeout, func() {
		t.tell(c, nil, errHandshakeTimeout)
		t.sess.Close() // ends a handshake waiting in the pool
		c.Destroy()
	})
}

var (
	errHandshakeTimeout = errors.New("connections: TLS handshake timeout")
	errNotTLS           = errors.New("connections: not a TLS ClientHello")
	errHandshakesFull   = errors.New("connections: too many TLS handshakes in progress")
	errClosedEarly      = errors.New("connections: closed before its TLS handshake completed")
)

// tell reports the handshake's result to the listener's Done, once. Safe
// for concurrent use.
func (t *epTLS) tell(c *epConn, st *tls.ConnectionState, err error) {
	if !t.told.CompareAndSwap(false, true) {
		return
	}
	if done := c.ln.tls.sv.Done; done != nil {
		done(st, err, time.Since(time.Unix(0, t.start)))
	}
}

// tlsRead reads what c's socket holds (readable, for a TLS connection).
func (l *loop) tlsRead(c *epConn, t *epTLS) {
	if c.Has(core.FSockClosed) {
		return
	}
	if t.up && (c.ReadStopped() || c.busy) {
		l.rearm(c)
		return
	}
	n, errno := l.sys.Read(c.fd, l.rbuf)
	switch {
	case n > 0:
		c.Received(n)
		switch {
		case c.Has(core.FClosing):
			// Closing: the input is dropped, as a plain connection's.
			if u := int(c.lingered) + (n+16<<10-1)>>14; u < core.LingerBytes>>14 {
				c.lingered = uint8(u)
			} else {
				c.eof = true
				l.rearm(c)
			}
		case !t.up:
			l.tlsHello(c, t, l.rbuf[:n])
		default:
			t.sess.Open(l.rbuf[:n])
			l.tlsPump(c, t)
		}
	case errno == unix.EAGAIN || errno == unix.EINTR:
	case errno == 0:
		if !t.up {
			c.Destroy() // gone before its handshake completed
			return
		}
		c.eof = true
		c.InputEnded()
		l.rearm(c)
	default:
		c.Destroy()
	}
}

// tlsHello hands the bytes of a connection whose handshake is not done to
// its session, and the handshake to the pool once the ClientHello is
// complete.
func (l *loop) tlsHello(c *epConn, t *epTLS, b []byte) {
	switch t.sess.Input(b) {
	case tlsrec.HelloBad:
		t.tell(c, nil, errNotTLS)
		c.Destroy()
	case tlsrec.HelloReady:
		if t.started {
			return
		}
		t.started = true
		lt := c.ln.tls
		wake := func() { l.post(c, actFlush) }
		done := func(err error) {
			t.tell(c, t.sess.TakeState(), err)
			l.post(c, actTLSUp)
		}
		if !lt.pool.Start(&t.sess, time.Unix(0, t.start).Add(lt.timeout), wake, done) {
			t.tell(c, nil, errHandshakesFull)
			c.Destroy()
		}
	}
}

// tlsUp runs on the loop once c's handshake has ended.
func (l *loop) tlsUp(c *epConn) {
	t := l.tlsState(c)
	if t == nil || t.up || c.fd < 0 {
		return
	}
	if !t.sess.Established() { // the handshake failed (or the session was closed since)
		l.tlsWriteCtl(c, t) // the alert, if any
		c.Destroy()
		return
	}
	t.timer.Stop()
	t.up = true
	l.tlsOpen.Add(1)
	l.flush(c) // the last of the handshake, and what OnConnect queued
	t.sess.Open(nil)
	l.tlsPump(c, t) // what came after the client's Finished
}

// tlsPump decrypts what c's session holds and hands the plaintext on as
// readable does a plain connection's bytes, until the session has no
// more, the connection stops reading or it is closed.
func (l *loop) tlsPump(c *epConn, t *epTLS) {
	s := l.rt
	for {
		if c.fd < 0 || c.Has(core.FSockClosed) {
			return
		}
		if c.ReadStopped() || c.busy {
			t.sess.Release() // the rest waits for resume
			l.rearm(c)
			return
		}
		closing := c.Has(core.FClosing)
		var dst []byte
		if c.in != nil && !closing {
			if cap(c.in.B)-len(c.in.B) < minReadRoom && !l.growInput(c) {
				t.sess.Release()
				return
			}
			dst = c.in.B[len(c.in.B):cap(c.in.B)]
		} else {
			if l.pbuf == nil {
				l.pbuf = make([]byte, loopPlainBuf)
			}
			dst = l.pbuf
		}
		n, err := t.sess.Read(dst)
		if n > 0 {
			buf := dst[:n]
			if c.in != nil && !closing {
				c.in.B = c.in.B[:len(c.in.B)+n]
				buf = c.in.B
			}
			switch {
			case closing:
				l.dropInput(c)
			case l.pool != nil:
				if c.in == nil {
					c.in = s.Bufs.GetCap(len(buf))
					c.in.B = append(c.in.B, buf...)
				}
				l.schedule(c, pendInput)
			default:
				l.consume(c, buf)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, tlsrec.ErrWouldBlock):
			l.tlsPartial(c, t)
			if t.sess.HasPending() && c.wbuf == nil {
				l.tlsWriteCtl(c, t) // a KeyUpdate's answer
				l.rearm(c)
			}
			return
		case err == io.EOF:
			// close_notify: the peer has finished sending.
			c.eof = true
			c.InputEnded()
			l.rearm(c)
			return
		default:
			s.Log.Debug().Uint64("conn", c.ID()).Err(err).Msg("TLS record error, connection closed")
			l.tlsWriteCtl(c, t) // the alert
			c.Destroy()
			return
		}
	}
}

// tlsPartial bounds a record the client has sent part of: its plaintext
// is not the protocol's yet, so the protocol's rules (BodyTimeout and
// BodyMinRate on a partial packet) do not see it, and crypto/tls holds up
// to 17 KiB for it. A record still partial BodyTimeout after its first
// bytes closes the connection (counted as body_timeout); off with
// BodyTimeout.
func (l *loop) tlsPartial(c *epConn, t *epTLS) {
	mid := t.sess.MidRecord()
	switch d := l.rt.Cfg.BodyTimeout; {
	case mid == t.partial || d <= 0:
	case mid:
		t.partial = true
		l.rt.Wheel.Schedule(&t.timer, d, func() {
			if !c.Has(core.FSockClosed) {
				l.rt.CutPartialRecord()
				c.Destroy()
			}
		})
	default:
		t.partial = false
		t.timer.Stop()
	}
}

// loopPlainBuf is the size of a loop's plaintext buffer: a record's
// inner plaintext (with its content type and padding), which tlsrec
// then decrypts straight into it.
const loopPlainBuf = 16<<10 + 256

// tlsFlush is flush for a TLS connection: the queued output sealed,
// once the handshake is done, and crypto/tls's own output.
func (l *loop) tlsFlush(c *epConn, t *epTLS) {
	if c.wbuf == nil && c.fd >= 0 {
		if t.up {
			for buf := c.TakeOut(); buf != nil; {
				buf = l.write(c, l.tlsSeal(c, t, buf), 0)
			}
		}
		if c.wbuf == nil {
			l.tlsWriteCtl(c, t)
		}
	}
	l.rearm(c)
}

// tlsWritable is writable for a TLS connection.
func (l *loop) tlsWritable(c *epConn, t *epTLS) {
	if c.wbuf != nil {
		for buf := l.write(c, c.wbuf, int(c.woff)); buf != nil; {
			buf = l.write(c, l.tlsSeal(c, t, buf), 0)
		}
	}
	if c.wbuf == nil {
		t.ctlWait = false
		l.tlsWriteCtl(c, t)
	}
	l.rearm(c)
}

// tlsSeal returns a buffer of buf's bytes sealed into records (after
// crypto/tls's own output waiting), in buf's place: buf goes back to the
// pool. A failure closes the connection; the buffer is then empty.
func (l *loop) tlsSeal(c *epConn, t *epTLS, buf *core.Buffer) *core.Buffer {
	s := l.rt
	ct := s.Bufs.GetCap(len(buf.B) + len(buf.B)>>6 + 256)
	var err error
	ct.B, err = t.sess.Seal(ct.B[:0], buf.B)
	s.Bufs.Put(buf)
	if err != nil {
		s.Log.Debug().Uint64("conn", c.ID()).Err(err).Msg("TLS seal failed, connection closed")
		ct.B = ct.B[:0]
		c.Destroy()
	}
	return ct
}

// tlsWriteCtl writes what crypto/tls wrote by itself (Pending); what the
// socket does not take waits for EPOLLOUT. Only when no sealed output
// is half written (c.wbuf), so that records never interleave.
func (l *loop) tlsWriteCtl(c *epConn, t *epTLS) {
	if c.fd < 0 || c.wbuf != nil || !t.sess.HasPending() {
		return
	}
	b := t.sess.Pending(l.cbuf[:0])
	n, errno := l.sys.Write(c.fd, b)
	if n < 0 {
		n = 0
	}
	if cap(b) <= 64<<10 {
		l.cbuf = b[:0]
	}
	c.WroteSome(n)
	switch {
	case n == len(b):
	case errno == 0 || errno == unix.EAGAIN || errno == unix.EINTR:
		t.sess.Unwritten(b[n:])
		t.ctlWait = true
	default:
		c.Destroy()
	}
}

// tlsCloseNotify writes close_notify before c's sending side is shut
// (LingerLocked), best effort: nothing is half written then.
func (l *loop) tlsCloseNotify(c *epConn) {
	t := l.tlsState(c)
	if t == nil || !t.up {
		return
	}
	t.sess.CloseNotify()
	if c.fd < 0 || c.wbuf != nil {
		return
	}
	// Not tlsWriteCtl: c.mu is held, a failure must not Destroy.
	b := t.sess.Pending(l.cbuf[:0])
	if n, _ := l.sys.Write(c.fd, b); n > 0 {
		c.WroteSome(n)
	}
}

// tlsRelease ends c's session as its socket is released (finish).
func (l *loop) tlsRelease(c *epConn) {
	t := l.tlsState(c)
	if t == nil {
		return
	}
	t.timer.Stop()
	if t.up {
		l.tlsOpen.Add(-1)
	} else {
		t.tell(c, nil, errClosedEarly)
	}
	t.sess.Close()
}

// tlsResume decrypts what a TLS connection's session kept while it did
// not read (resume, a pool task's end).
func (l *loop) tlsResume(c *epConn) {
	if t := l.tlsState(c); t != nil && t.up && t.sess.Buffered() {
		t.sess.Open(nil)
		l.tlsPump(c, t)
	}
}
