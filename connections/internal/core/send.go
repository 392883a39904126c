package core

import (
	"context"
	"math"
)

// The send path of a stream connection: Send queues on Conn.out under
// Conn.Mu, the engine's writer takes the queue with takeOut (FWriting is
// its ownership) and ends each write with writeDone, and the send-buffer
// limit fires OnBufferFull and OnBufferDrain.
//
// Backpressure. When the queued output reaches MaxSendBufferSize (the
// high watermark), the connection stops reading (FBackpressure): the
// Dispatch in progress ends after the packet being delivered, the engine
// reads nothing more, and pipelined requests wait in the kernel's socket
// buffer, where TCP flow control slows the peer. Once a write ends with
// less than half the limit queued (the low watermark), reading resumes
// (Ops.Resumed), delivering first what was read and held back. What
// a dispatcher sends while it delivers read packets (FReplying) is queued
// past the limit (one MaxSendBufferSize more than the queue held when it
// first went over, see replyRoomLocked): the answers to a request that
// was read are not dropped, and since reading stops, the queue exceeds
// the limit by at most the answers of one packet. Other sends (from timers,
// other goroutines, OnBufferDrain, fan-out) fail with ErrSendBufferFull
// at the limit, counted in Stats.SendBufferFull and logged (noteDrop). A
// peer that reads nothing is cut by SendTimeout; while reading is paused
// for backpressure the read timeouts do not run (timersExpired).

func (c *Conn) Send(data string, raw bool) error { return c.SendMsg(nil, data, raw) }

func (c *Conn) SendBytes(data []byte, raw bool) error { return c.SendMsg(data, "", raw) }

func (c *Conn) WriteRaw(b []byte) error { return c.SendMsg(b, "", true) }

// EncodeSlack is the room send makes for a protocol's framing around a
// message, beyond its length.
const EncodeSlack = 256

func (c *Conn) queuedLocked() int {
	n := int(c.inflight)
	if c.out != nil {
		n += len(c.out.B)
	}
	return n
}

// SendMsg is Send and SendBytes (b, or str when b is nil) and a Client's
// send: it queues the message and kicks the engine when no dispatcher
// will flush.
func (c *Conn) SendMsg(b []byte, str string, raw bool) error {
	kick, err := c.Enqueue(b, str, raw, nil)
	if kick {
		c.ops.Kick()
	}
	return err
}

// Framer is a message sent to many connections (connections.Fanout),
// encoded once per class of connections.
type Framer interface {
	// FrameLocked returns the message as c's protocol encodes it for c,
	// shared by every connection of c's class, or nil when c encodes it
	// its own way (from Message). c.Mu is held.
	FrameLocked(c *Conn) (*Buffer, error)
	// Message is the message and whether it is sent as is.
	Message() (data []byte, raw bool)
}

// Enqueue queues a message: b or str encoded with the protocol (as is
// when raw), or fan's message, encoded once for all connections of c's
// class and queued without a copy when nothing else is (Fanout). It fires
// OnBufferFull and OnError, and reports whether the caller must kick the
// engine to write (no dispatcher will flush for it).
func (c *Conn) Enqueue(b []byte, str string, raw bool, fan Framer) (kick bool, err error) {
	s := c.RT
	c.Mu.Lock()
	if c.Has(FClosing | FSockClosed) {
		c.Mu.Unlock()
		return false, ErrClosed
	}
	limit := s.Cfg.MaxSendBufferSize
	if q := c.queuedLocked(); q >= limit && !c.replyRoomLocked(q, limit, fan) {
		c.Mu.Unlock()
		s.NoteDrop(c.id)
		c.onError(ErrSendBufferFull)
		return false, ErrSendBufferFull
	}
	proto := s.Cfg.Protocol
	var frame *Buffer
	if fan != nil {
		frame, err = fan.FrameLocked(c) // nil, nil: c encodes it its own way
		b, raw = fan.Message()
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
		c.outRoom(len(b) + EncodeSlack)
		c.out.B, err = proto.Encode(c.Self(), c.out.B, b)
	default:
		c.outRoom(len(str) + EncodeSlack)
		c.out.B, err = proto.Encode(c.Self(), c.out.B, StringBytes(str))
	}
	if c.out != nil && len(c.out.B) == 0 {
		c.putOutLocked()
	}
	if c.Has(FCloseAfter) {
		c.SetFlag(FClosing)
	}
	full := c.queuedLocked() >= limit
	nowFull := full && !c.Has(FFull)
	if nowFull {
		c.SetFlag(FFull)
	}
	if full && !c.Has(FBackpressure) {
		c.SetFlag(FBackpressure)
	}
	deferred := c.dispatching > 0
	c.Mu.Unlock()
	if err != nil {
		s.Errs.Add(1)
		s.Log.Debug().Uint64("conn", c.id).Err(err).Msg("send dropped: the protocol cannot encode it")
		c.onError(err)
		return false, err
	}
	if nowFull {
		if h := s.Cfg.Handler.OnBufferFull; h != nil {
			if perr := Guard(func() { h(c.Self()) }); perr != nil {
				s.Log.Error().Uint64("conn", c.id).Err(perr).Msg("OnBufferFull panicked")
			}
		}
	}
	return !deferred, nil
}

// replyRoomLocked reports whether a send that finds q bytes queued, at
// or over limit, is queued all the same: it is made while c's dispatcher
// delivers read packets (the answer to a request that was read) and is
// not a fan-out, and the queue is below overBase plus the limit. A
// Dispatch may so queue one MaxSendBufferSize more than it found when
// it first went over, however large the send that took it over: enough
// for any answer made of several sends, and a bound for a handler that
// sends until ErrSendBufferFull (or another goroutine's sends while the
// dispatcher runs, which cannot be told from its own). mu is held.
func (c *Conn) replyRoomLocked(q, limit int, fan Framer) bool {
	if fan != nil || !c.Has(FReplying) {
		return false
	}
	if c.overBase == 0 {
		c.overBase = int32(min(q, math.MaxInt32-limit))
	}
	return q < int(c.overBase)+limit
}

// outRoom makes c.out a buffer of c's own with room for n more bytes: a
// pool buffer, or a copy of the shared frame queued alone. mu is held.
func (c *Conn) outRoom(n int) {
	switch {
	case c.out == nil:
		c.out = c.RT.Bufs.GetCap(n)
	case c.out.Shared:
		nb := c.RT.Bufs.GetCap(len(c.out.B) + n)
		nb.B = append(nb.B, c.out.B...)
		c.putOutLocked()
		c.out = nb
	default:
		c.out = c.RT.Bufs.Grow(c.out, n)
	}
}

// putOutLocked drops the queued output. mu is held.
func (c *Conn) putOutLocked() {
	c.RT.Bufs.Put(c.out)
	c.out = nil
}

// queueRawLocked queues b as is, past the send-buffer limit: a last
// answer before the connection closes (a timeout's). mu is held.
func (c *Conn) queueRawLocked(b []byte) {
	c.outRoom(len(b))
	c.out.B = append(c.out.B, b...)
}

// sendLast queues b as is, past the send-buffer limit, unless c is
// closing: the answer to input that closes c (a protocol error's reply,
// the input budget's overload reply). The caller closes c next, which
// Has it written.
func (c *Conn) sendLast(b []byte) {
	c.Mu.Lock()
	if !c.Has(FClosing | FSockClosed) {
		c.queueRawLocked(b)
	}
	c.Mu.Unlock()
}

// TakeOut hands the queued bytes to the engine's writer, or returns nil
// when there is nothing to write, a write is in progress, a dispatcher
// will flush later or the socket is closed. A closing connection whose
// buffer is empty is closed or starts lingering here.
func (c *Conn) TakeOut() *Buffer {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.takeOutLocked()
}

// takeOutLocked is takeOut with mu held.
func (c *Conn) takeOutLocked() *Buffer {
	if c.Has(FCloseAfter) {
		c.SetFlag(FClosing)
	}
	f := c.flags.Load()
	if f&(FWriting|FSockClosed) != 0 || c.dispatching > 0 {
		return nil
	}
	if c.out == nil {
		if f&(FClosing|FLinger) == FClosing {
			c.closeOrLingerLocked()
		}
		return nil
	}
	buf := c.out
	c.out = nil
	c.SetFlag(FWriting)
	c.inflight = int32(len(buf.B))
	return buf
}

// WroteSome accounts n bytes written.
func (c *Conn) WroteSome(n int) {
	if n > 0 {
		c.bytesOut.Add(uint64(n))
		c.ctr.BytesOut.Add(uint64(n))
		if c.Has(FTimers) && c.RT.beatNs > 0 {
			c.timersAt().lastOut.Store(c.RT.Clock())
		}
	}
}

// WriteDone ends the write of buf (taken with takeOut) after n more bytes
// were written; err closes the connection. It runs OnBufferDrain when a
// full buffer has drained. The caller then calls takeOut again (through
// its flush) to write what was queued meanwhile.
func (c *Conn) WriteDone(buf *Buffer, n int, err error) { c.WriteDoneNext(buf, n, err, false) }

// WriteDoneNext is writeDone that, when next is set, also takes what was
// queued meanwhile, as takeOut would (under the same lock, in the common
// case).
func (c *Conn) WriteDoneNext(buf *Buffer, n int, err error, next bool) *Buffer {
	c.WroteSome(n)
	c.outDone()
	c.RT.Bufs.Put(buf)
	c.Mu.Lock()
	c.ClearFlag(FWriting)
	c.inflight = 0
	if err != nil {
		c.CloseLocked()
		c.Mu.Unlock()
		c.RT.Log.Debug().Uint64("conn", c.id).Err(err).Msg("write failed, connection closed")
		return nil
	}
	// Reading resumes below the low watermark.
	resume := c.Has(FBackpressure) && (c.out == nil || len(c.out.B) < c.RT.Cfg.MaxSendBufferSize/2)
	if resume {
		c.ClearFlag(FBackpressure)
		c.restartReadRulesLocked()
	}
	drained := c.out == nil && c.Has(FFull) && !c.Has(FSockClosed)
	if drained {
		c.ClearFlag(FFull)
		c.wakeDrainWaitersLocked()
	} else if next && !resume {
		nb := c.takeOutLocked()
		c.Mu.Unlock()
		return nb
	}
	c.Mu.Unlock()
	if resume {
		c.ops.Resumed()
	}
	if drained {
		c.ops.Drained()
	}
	if next {
		return c.TakeOut()
	}
	return nil
}

// WaitDrained is the function WaitDrained for a stream connection; the
// method lets packages that this one imports (protocols/http) find it.
func (c *Conn) WaitDrained(ctx context.Context) error {
	c.Mu.Lock()
	for {
		if c.Has(FClosing | FSockClosed) {
			c.Mu.Unlock()
			return ErrClosed
		}
		if !c.Has(FFull) {
			c.Mu.Unlock()
			return nil
		}
		m := c.moreLocked()
		if m.drainCh == nil {
			m.drainCh = make(chan struct{})
		}
		ch := m.drainCh
		c.Mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.Mu.Lock()
	}
}

// wakeDrainWaitersLocked releases the goroutines in WaitDrained. mu is
// held.
func (c *Conn) wakeDrainWaitersLocked() {
	if m := c.more; m != nil && m.drainCh != nil {
		close(m.drainCh)
		m.drainCh = nil
	}
}

// SendFull reports whether c's send buffer reached MaxSendBufferSize and
// has not drained since (OnBufferDrain is still to come).
func (c *Conn) SendFull() bool { return c.Has(FFull) }

// Gone reports whether c is closing or closed for good.
func (c *Conn) Gone() bool { return c.Has(FClosing | FSockClosed) }
