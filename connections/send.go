package connections

import (
	"context"
	"math"
)

// The send path of a stream connection: Send queues on base.out under
// base.mu, the engine's writer takes the queue with takeOut (fWriting is
// its ownership) and ends each write with writeDone, and the send-buffer
// limit fires OnBufferFull and OnBufferDrain.
//
// Backpressure. When the queued output reaches MaxSendBufferSize (the
// high watermark), the connection stops reading (fBackpressure): the
// dispatch in progress ends after the packet being delivered, the engine
// reads nothing more, and pipelined requests wait in the kernel's socket
// buffer, where TCP flow control slows the peer. Once a write ends with
// less than half the limit queued (the low watermark), reading resumes
// (engineOps.Resumed), delivering first what was read and held back. What
// a dispatcher sends while it delivers read packets (fReplying) is queued
// past the limit (one MaxSendBufferSize more than the queue held when it
// first went over, see replyRoomLocked): the answers to a request that
// was read are not dropped, and since reading stops, the queue exceeds
// the limit by at most the answers of one packet. Other sends (from timers,
// other goroutines, OnBufferDrain, fan-out) fail with ErrSendBufferFull
// at the limit, counted in Stats.SendBufferFull and logged (noteDrop). A
// peer that reads nothing is cut by SendTimeout; while reading is paused
// for backpressure the read timeouts do not run (timersExpired).

func (c *base) Send(data string, raw bool) error { return c.send(nil, data, raw) }

func (c *base) SendBytes(data []byte, raw bool) error { return c.send(data, "", raw) }

func (c *base) WriteRaw(b []byte) error { return c.send(b, "", true) }

// encodeSlack is the room send makes for a protocol's framing around a
// message, beyond its length.
const encodeSlack = 256

func (c *base) queuedLocked() int {
	n := int(c.inflight)
	if c.out != nil {
		n += len(c.out.B)
	}
	return n
}

func (c *base) send(b []byte, str string, raw bool) error {
	kick, err := c.enqueue(b, str, raw, nil)
	if kick {
		c.ops.Kick()
	}
	return err
}

// enqueue queues a message: b or str encoded with the protocol (as is
// when raw), or fan's message, encoded once for all connections of c's
// class and queued without a copy when nothing else is (Fanout). It fires
// OnBufferFull and OnError, and reports whether the caller must kick the
// engine to write (no dispatcher will flush for it).
func (c *base) enqueue(b []byte, str string, raw bool, fan *Fanout) (kick bool, err error) {
	s := c.s
	c.mu.Lock()
	if c.has(fClosing | fSockClosed) {
		c.mu.Unlock()
		return false, ErrClosed
	}
	limit := s.cfg.MaxSendBufferSize
	if q := c.queuedLocked(); q >= limit && !c.replyRoomLocked(q, limit, fan) {
		c.mu.Unlock()
		s.noteDrop(c.id)
		c.onError(ErrSendBufferFull)
		return false, ErrSendBufferFull
	}
	proto := s.cfg.Protocol
	var frame *buffer
	if fan != nil {
		frame, err = fan.frameLocked(c) // nil, nil: c encodes it its own way
		b, raw = fan.data, fan.raw
	}
	switch {
	case err != nil:
	case frame != nil && c.out == nil:
		c.out = frame // shared, as is
	case frame != nil:
		c.outRoom(len(frame.B))
		c.out.B = append(c.out.B, frame.B...)
	case raw || proto == nil:
		// Room for the message and its framing, from the pool: a buffer
		// that grows by append inside Encode would be left to the GC.
		c.outRoom(len(b) + len(str))
		if b != nil {
			c.out.B = append(c.out.B, b...)
		} else {
			c.out.B = append(c.out.B, str...)
		}
	case b != nil:
		c.outRoom(len(b) + encodeSlack)
		c.out.B, err = proto.Encode(c.conn(), c.out.B, b)
	default:
		c.outRoom(len(str) + encodeSlack)
		c.out.B, err = proto.Encode(c.conn(), c.out.B, stringBytes(str))
	}
	if c.out != nil && len(c.out.B) == 0 {
		c.putOutLocked()
	}
	if c.has(fCloseAfter) {
		c.setFlag(fClosing)
	}
	full := c.queuedLocked() >= limit
	nowFull := full && !c.has(fFull)
	if nowFull {
		c.setFlag(fFull)
	}
	if full && !c.has(fBackpressure) {
		c.setFlag(fBackpressure)
	}
	deferred := c.dispatching > 0
	c.mu.Unlock()
	if err != nil {
		s.errs.Add(1)
		s.log.Debug().Uint64("conn", c.id).Err(err).Msg("send dropped: the protocol cannot encode it")
		c.onError(err)
		return false, err
	}
	if nowFull {
		if h := s.cfg.Handler.OnBufferFull; h != nil {
			if perr := guard(func() { h(c.conn()) }); perr != nil {
				s.log.Error().Uint64("conn", c.id).Err(perr).Msg("OnBufferFull panicked")
			}
		}
	}
	return !deferred, nil
}

// replyRoomLocked reports whether a send that finds q bytes queued, at
// or over limit, is queued all the same: it is made while c's dispatcher
// delivers read packets (the answer to a request that was read) and is
// not a fan-out, and the queue is below overBase plus the limit. A
// dispatch may so queue one MaxSendBufferSize more than it found when
// it first went over, however large the send that took it over: enough
// for any answer made of several sends, and a bound for a handler that
// sends until ErrSendBufferFull (or another goroutine's sends while the
// dispatcher runs, which cannot be told from its own). mu is held.
func (c *base) replyRoomLocked(q, limit int, fan *Fanout) bool {
	if fan != nil || !c.has(fReplying) {
		return false
	}
	if c.overBase == 0 {
		c.overBase = int32(min(q, math.MaxInt32-limit))
	}
	return q < int(c.overBase)+limit
}

// outRoom makes c.out a buffer of c's own with room for n more bytes: a
// pool buffer, or a copy of the shared frame queued alone. mu is held.
func (c *base) outRoom(n int) {
	switch {
	case c.out == nil:
		c.out = c.s.bufs.GetCap(n)
	case c.out.Shared:
		nb := c.s.bufs.GetCap(len(c.out.B) + n)
		nb.B = append(nb.B, c.out.B...)
		c.putOutLocked()
		c.out = nb
	default:
		c.out = c.s.bufs.Grow(c.out, n)
	}
}

// putOutLocked drops the queued output. mu is held.
func (c *base) putOutLocked() {
	c.s.bufs.Put(c.out)
	c.out = nil
}

// queueRawLocked queues b as is, past the send-buffer limit: a last
// answer before the connection closes (a timeout's). mu is held.
func (c *base) queueRawLocked(b []byte) {
	c.outRoom(len(b))
	c.out.B = append(c.out.B, b...)
}

// sendLast queues b as is, past the send-buffer limit, unless c is
// closing: the answer to input that closes c (a protocol error's reply,
// the input budget's overload reply). The caller closes c next, which
// has it written.
func (c *base) sendLast(b []byte) {
	c.mu.Lock()
	if !c.has(fClosing | fSockClosed) {
		c.queueRawLocked(b)
	}
	c.mu.Unlock()
}

// takeOut hands the queued bytes to the engine's writer, or returns nil
// when there is nothing to write, a write is in progress, a dispatcher
// will flush later or the socket is closed. A closing connection whose
// buffer is empty is closed or starts lingering here.
func (c *base) takeOut() *buffer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.takeOutLocked()
}

// takeOutLocked is takeOut with mu held.
func (c *base) takeOutLocked() *buffer {
	if c.has(fCloseAfter) {
		c.setFlag(fClosing)
	}
	f := c.flags.Load()
	if f&(fWriting|fSockClosed) != 0 || c.dispatching > 0 {
		return nil
	}
	if c.out == nil {
		if f&(fClosing|fLinger) == fClosing {
			c.closeOrLingerLocked()
		}
		return nil
	}
	buf := c.out
	c.out = nil
	c.setFlag(fWriting)
	c.inflight = int32(len(buf.B))
	return buf
}

// wroteSome accounts n bytes written.
func (c *base) wroteSome(n int) {
	if n > 0 {
		c.bytesOut.Add(uint64(n))
		c.ctr.bytesOut.Add(uint64(n))
		if tm := c.tm; tm != nil && c.s.beatNs > 0 {
			tm.lastOut.Store(c.s.clock())
		}
	}
}

// writeDone ends the write of buf (taken with takeOut) after n more bytes
// were written; err closes the connection. It runs OnBufferDrain when a
// full buffer has drained. The caller then calls takeOut again (through
// its flush) to write what was queued meanwhile.
func (c *base) writeDone(buf *buffer, n int, err error) { c.writeDoneNext(buf, n, err, false) }

// writeDoneNext is writeDone that, when next is set, also takes what was
// queued meanwhile, as takeOut would (under the same lock, in the common
// case).
func (c *base) writeDoneNext(buf *buffer, n int, err error, next bool) *buffer {
	c.wroteSome(n)
	c.outDone()
	c.s.bufs.Put(buf)
	c.mu.Lock()
	c.clearFlag(fWriting)
	c.inflight = 0
	if err != nil {
		c.closeLocked()
		c.mu.Unlock()
		c.s.log.Debug().Uint64("conn", c.id).Err(err).Msg("write failed, connection closed")
		return nil
	}
	// Reading resumes below the low watermark.
	resume := c.has(fBackpressure) && (c.out == nil || len(c.out.B) < c.s.cfg.MaxSendBufferSize/2)
	if resume {
		c.clearFlag(fBackpressure)
		c.restartReadRulesLocked()
	}
	drained := c.out == nil && c.has(fFull) && !c.has(fSockClosed)
	if drained {
		c.clearFlag(fFull)
		c.wakeDrainWaitersLocked()
	} else if next && !resume {
		nb := c.takeOutLocked()
		c.mu.Unlock()
		return nb
	}
	c.mu.Unlock()
	if resume {
		c.ops.Resumed()
	}
	if drained {
		c.ops.Drained()
	}
	if next {
		return c.takeOut()
	}
	return nil
}

// WaitDrained is the function WaitDrained for a stream connection; the
// method lets packages that this one imports (protocols/http) find it.
func (c *base) WaitDrained(ctx context.Context) error {
	c.mu.Lock()
	for {
		if c.has(fClosing | fSockClosed) {
			c.mu.Unlock()
			return ErrClosed
		}
		if !c.has(fFull) {
			c.mu.Unlock()
			return nil
		}
		if c.drainCh == nil {
			c.drainCh = make(chan struct{})
		}
		ch := c.drainCh
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
}

// wakeDrainWaitersLocked releases the goroutines in WaitDrained. mu is
// held.
func (c *base) wakeDrainWaitersLocked() {
	if c.drainCh != nil {
		close(c.drainCh)
		c.drainCh = nil
	}
}
