package connections

import "context"

// drainWaiter is a connection WaitDrained can wait on: the connections
// of this package have the method.
type drainWaiter interface {
	WaitDrained(ctx context.Context) error
}

// WaitDrained blocks until c can take more output, for a producer that
// writes faster than c's peer reads: it returns nil at once unless c's
// send buffer has reached MaxSendBufferSize (Send returned
// ErrSendBufferFull, or OnBufferFull ran) and not yet drained, and
// otherwise once it has drained, when OnBufferDrain runs. It returns
// ErrClosed when c is closing or closed, and ctx's error when ctx is done
// first.
//
//	for _, piece := range pieces {
//		for {
//			err := c.SendBytes(piece, false)
//			if !errors.Is(err, connections.ErrSendBufferFull) {
//				break // sent, or another error
//			}
//			if err := connections.WaitDrained(ctx, c); err != nil {
//				return err
//			}
//		}
//	}
//
// It must not be called from c's own callbacks: they run where c's output
// is written (on the event-loop engine, the loop's goroutine), so the
// buffer could not drain while they wait. Call it from a goroutine of the
// producer's own. For a Client it waits on its current connection, or on
// its queue while it connects; a datagram connection has no send buffer
// and never waits. Safe for concurrent use.
func WaitDrained(ctx context.Context, c Connection) error {
	if w, ok := c.(drainWaiter); ok {
		return w.WaitDrained(ctx)
	}
	return nil
}
