package core

// KickBatch gathers the connections a Fanout queued on, by KickQueue, and
// hands each queue its connections in batches. Connections whose engine
// has no shared queue are kicked on their own. Owned by the Fanout's
// goroutine.
type KickBatch struct{ queues []queueKicks }

type queueKicks struct {
	q  KickQueue
	cs []Ops
}

// Add has c flushed: with the batch of its queue, handed over once it
// holds limit connections or at flush; at once by its engine when that
// Has no shared queue.
func (k *KickBatch) Add(c *Conn, limit int) {
	q, claimed := c.ops.BatchKick()
	if q == nil {
		c.ops.Kick()
		return
	}
	if !claimed {
		return // in its queue already: the engine takes the flush with the rest
	}
	var qk *queueKicks
	for i := range k.queues {
		if k.queues[i].q == q {
			qk = &k.queues[i]
			break
		}
	}
	if qk == nil {
		n := len(k.queues)
		if n < cap(k.queues) {
			k.queues = k.queues[:n+1] // reuse the batch slice of an earlier queue
		} else {
			k.queues = append(k.queues, queueKicks{})
		}
		qk = &k.queues[n]
		qk.q = q
	}
	qk.cs = append(qk.cs, c.ops)
	if len(qk.cs) >= limit {
		qk.q.PostKicks(qk.cs)
		clear(qk.cs)
		qk.cs = qk.cs[:0]
	}
}

// Flush hands over what Add holds.
func (k *KickBatch) Flush() {
	for i := range k.queues {
		qk := &k.queues[i]
		if len(qk.cs) > 0 {
			qk.q.PostKicks(qk.cs)
		}
		clear(qk.cs)
		qk.cs = qk.cs[:0]
		qk.q = nil
	}
	k.queues = k.queues[:0]
}
