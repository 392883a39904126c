//go:build linux

package connections

// kickBatch gathers the connections a Fanout queued on, by event loop, and
// hands each loop its connections in batches: one lock of its queue and at
// most one wake-up per batch instead of per connection. Loop-owned by the
// Fanout's goroutine.
type kickBatch struct{ loops []loopKicks }

type loopKicks struct {
	l  *loop
	cs []*epConn
}

// add has c flushed: with the batch of its loop, handed over once it holds
// limit connections or at flush; at once by its engine when that has no
// loops.
func (k *kickBatch) add(c *base, limit int) {
	ec, ok := c.ops.(*epConn)
	if !ok {
		c.ops.kick()
		return
	}
	if ec.acts.Or(actFlush|actQueued)&actQueued != 0 {
		return // in its loop's queue already: the loop takes the flush with the rest
	}
	var lk *loopKicks
	for i := range k.loops {
		if k.loops[i].l == ec.l {
			lk = &k.loops[i]
			break
		}
	}
	if lk == nil {
		n := len(k.loops)
		if n < cap(k.loops) {
			k.loops = k.loops[:n+1] // reuse the batch slice of an earlier loop
		} else {
			k.loops = append(k.loops, loopKicks{})
		}
		lk = &k.loops[n]
		lk.l = ec.l
	}
	lk.cs = append(lk.cs, ec)
	if len(lk.cs) >= limit {
		lk.l.postMany(lk.cs)
		clear(lk.cs)
		lk.cs = lk.cs[:0]
	}
}

// flush hands over what add holds.
func (k *kickBatch) flush() {
	for i := range k.loops {
		lk := &k.loops[i]
		if len(lk.cs) > 0 {
			lk.l.postMany(lk.cs)
		}
		clear(lk.cs)
		lk.cs = lk.cs[:0]
		lk.l = nil
	}
	k.loops = k.loops[:0]
}
