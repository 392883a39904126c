package connections

import "context"

// The send path of a Client: messages sent before its connection is
// ready wait in the Client's queue (pbuf, pmsgs), bounded by
// MaxSendBufferSize, and flushQueue hands them to the connection, in
// order, once it is.

// pending is one queued message: its length in pbuf and whether it is raw.
type pending struct {
	n   int
	raw bool
}

// wakeQueueWaitersLocked releases the goroutines waiting in waitDrained
// for the queue to clear. mu is held.
func (cl *Client) wakeQueueWaitersLocked() {
	if cl.pdrain != nil {
		close(cl.pdrain)
		cl.pdrain = nil
	}
}

// WaitDrained is the function WaitDrained for a Client: it waits on the
// Client's connection once it is ready, on its queue before.
func (cl *Client) WaitDrained(ctx context.Context) error {
	for {
		cl.mu.Lock()
		switch {
		case cl.st == clientClosed || cl.closeReq || cl.destroy:
			cl.mu.Unlock()
			return ErrClosed
		case cl.ready:
			in := cl.cur
			cl.mu.Unlock()
			return in.WaitDrained(ctx)
		case !cl.pfull:
			cl.mu.Unlock()
			return nil
		}
		if cl.pdrain == nil {
			cl.pdrain = make(chan struct{})
		}
		ch := cl.pdrain
		cl.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flushQueue sends what was queued before in was ready, then lets sends
// through; it runs on in's dispatcher, so they are written when it ends.
func (cl *Client) flushQueue(in clientConn) {
	for {
		cl.mu.Lock()
		if cl.cur != in {
			cl.mu.Unlock()
			return
		}
		if len(cl.pmsgs) == 0 {
			cl.ready = true
			cl.flushing = false
			owed := cl.pfull
			cl.pfull = false
			cl.wakeQueueWaitersLocked()
			closing := cl.closeReq
			cl.mu.Unlock()
			switch {
			case closing:
				in.Close()
			case owed && !in.SendFull():
				// The queue was full and is now in the connection's
				// buffer with room to spare: the drain is due now.
				cl.user.OnBufferDrain(cl)
			}
			return
		}
		buf, msgs := cl.pbuf, cl.pmsgs
		cl.pbuf, cl.pmsgs = nil, nil
		cl.flushing = true
		cl.mu.Unlock()
		off := 0
		for _, m := range msgs {
			in.SendMsg(buf[off:off+m.n], "", m.raw)
			off += m.n
		}
	}
}

// Send encodes data with the Client's protocol and queues it, as for a
// server connection; before the connection is ready it is queued on the
// Client. Safe for concurrent use; never blocks.
func (cl *Client) Send(data string, raw bool) error { return cl.send(nil, data, raw) }

// SendBytes is Send for a byte slice; data may be reused once it returns.
func (cl *Client) SendBytes(data []byte, raw bool) error { return cl.send(data, "", raw) }

// WriteRaw queues b as is. Safe for concurrent use.
func (cl *Client) WriteRaw(b []byte) error { return cl.send(b, "", true) }

func (cl *Client) send(b []byte, s string, raw bool) error {
	cl.mu.Lock()
	switch {
	case cl.st == clientClosed || cl.closeReq || cl.destroy:
		cl.mu.Unlock()
		return ErrClosed
	case cl.ready:
		in := cl.cur
		cl.mu.Unlock()
		return in.SendMsg(b, s, raw)
	}
	limit := cl.cfg.MaxSendBufferSize
	if len(cl.pbuf) >= limit {
		cl.mu.Unlock()
		cl.srv.rt.NoteDrop(0)
		cl.onError(ErrSendBufferFull)
		return ErrSendBufferFull
	}
	n := len(cl.pbuf)
	if b != nil {
		cl.pbuf = append(cl.pbuf, b...)
	} else {
		cl.pbuf = append(cl.pbuf, s...)
	}
	cl.pmsgs = append(cl.pmsgs, pending{n: len(cl.pbuf) - n, raw: raw})
	full := !cl.pfull && len(cl.pbuf) >= limit
	if full {
		cl.pfull = true
	}
	cl.mu.Unlock()
	if full {
		cl.onBufferFull()
	}
	return nil
}

// sendFull reports whether the queue or the connection's buffer reached
// its limit and has not drained.
func (cl *Client) sendFull() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.pfull || cl.cur != nil && cl.cur.SendFull()
}
