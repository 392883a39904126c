//go:build !linux

package connections

// kickBatch: without event loops every connection is kicked on its own.
type kickBatch struct{}

func (*kickBatch) add(c *base, _ int) { c.ops.kick() }
func (*kickBatch) flush()             {}
