package connections

import "context"

// The send path of a stream connection: Send queues on base.out under
// base.mu, the engine's writer takes the queue with takeOut (fWriting is
// its ownership) and ends each write with writeDone, and the send-buffer
// limit fires OnBufferFull and OnBufferDrain.

func (c *base) Send(data string, raw bool) error { return c.send(nil, data, raw) }

func (c *base) SendBytes(data []byte, raw bool) error { return c.send(data, "", raw) }

func (c *base) WriteRaw(b []byte) error { return c.send(b, "", true) }

// encodeSlack is the room send makes for a protocol's framing around a
// message, beyond its length.
const encodeSlack = 256

func (c *base) queuedLocked() int {
	n := int(c.inflight)
	if c.out != nil {
		n += len(c.out.b)
	}
	return n
}

func (c *base) send(b []byte, str string, raw bool) error {
	s := c.s
	c.mu.Lock()
	if c.has(fClosing | fSockClosed) {
		c.mu.Unlock()
		return ErrClosed
	}
	limit := s.cfg.MaxSendBufferSize
	if c.queuedLocked() >= limit {
		c.mu.Unlock()
		s.errs.Add(1)
		s.bufFull.Add(1)
		c.onError(ErrSendBufferFull)
		return ErrSendBufferFull
	}
	// Room for the message and its framing, from the pool: a buffer that
	// grows by append inside Encode would be left to the GC.
	n := len(b) + len(str) + encodeSlack
	if c.out == nil {
		c.out = c.s.bufs.getCap(n)
	} else {
		c.out = c.s.bufs.grow(c.out, n)
	}
	var err error
	proto := s.cfg.Protocol
	switch {
	case raw || proto == nil:
		if b != nil {
			c.out.b = append(c.out.b, b...)
		} else {
			c.out.b = append(c.out.b, str...)
		}
	case b != nil:
		c.out.b, err = proto.Encode(c.conn(), c.out.b, b)
	default:
		c.out.b, err = proto.Encode(c.conn(), c.out.b, stringBytes(str))
	}
	if len(c.out.b) == 0 {
		c.s.bufs.put(c.out)
		c.out = nil
	}
	if c.closeAfter.Load() {
		c.setFlag(fClosing)
	}
	nowFull := !c.has(fFull) && c.queuedLocked() >= limit
	if nowFull {
		c.setFlag(fFull)
	}
	deferred := c.dispatching > 0
	c.mu.Unlock()
	if err != nil {
		s.errs.Add(1)
		s.log.Debug().Uint64("conn", c.id).Err(err).Msg("send dropped: the protocol cannot encode it")
		c.onError(err)
		return err
	}
	if nowFull {
		if h := s.cfg.Handler.OnBufferFull; h != nil {
			if perr := guard(func() { h(c.conn()) }); perr != nil {
				s.log.Error().Uint64("conn", c.id).Err(perr).Msg("OnBufferFull panicked")
			}
		}
	}
	if !deferred {
		c.ops.kick()
	}
	return nil
}

// queueRawLocked queues b as is, past the send-buffer limit: a last
// answer before the connection closes (a timeout's). mu is held.
func (c *base) queueRawLocked(b []byte) {
	if c.out == nil {
		c.out = c.s.bufs.getCap(len(b))
	} else {
		c.out = c.s.bufs.grow(c.out, len(b))
	}
	c.out.b = append(c.out.b, b...)
}

// takeOut hands the queued bytes to the engine's writer, or returns nil
// when there is nothing to write, a write is in progress, a dispatcher
// will flush later or the socket is closed. A closing connection whose
// buffer is empty is closed or starts lingering here.
func (c *base) takeOut() *buffer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeAfter.Load() {
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
	c.inflight = int32(len(buf.b))
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
func (c *base) writeDone(buf *buffer, n int, err error) {
	c.wroteSome(n)
	c.outDone()
	c.s.bufs.put(buf)
	c.mu.Lock()
	c.clearFlag(fWriting)
	c.inflight = 0
	if err != nil {
		c.closeLocked()
		c.mu.Unlock()
		c.s.log.Debug().Uint64("conn", c.id).Err(err).Msg("write failed, connection closed")
		return
	}
	drained := c.out == nil && c.has(fFull) && !c.has(fSockClosed)
	if drained {
		c.clearFlag(fFull)
		c.wakeDrainWaitersLocked()
	}
	c.mu.Unlock()
	if drained {
		c.ops.drained()
	}
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
