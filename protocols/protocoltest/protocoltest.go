// Package protocoltest helps test protocols.Protocol implementations
// without sockets: a Conn that records what the protocol writes, and Feed,
// which delivers reads the way the connection runtime does. Socket-level
// behaviour is tested with the real runtime in connections/ and examples/.
package protocoltest

import (
	"errors"
	"fmt"

	"github.com/goes-project/goes/protocols"
)

// Conn is an in-memory protocols.Conn. Not safe for concurrent use.
type Conn struct {
	Max        int    // MaxPackageSize; 0 means 1 MiB
	Drain      bool   // returned by Draining
	Raw        []byte // what WriteRaw queued
	CloseAfter bool   // set by CloseAfterFlush
	state      any
}

var _ protocols.Conn = (*Conn)(nil)

// State returns the protocol state.
func (c *Conn) State() any { return c.state }

// SetState stores the protocol state.
func (c *Conn) SetState(v any) { c.state = v }

// MaxPackageSize returns c.Max, or 1 MiB when it is zero.
func (c *Conn) MaxPackageSize() int {
	if c.Max == 0 {
		return 1 << 20
	}
	return c.Max
}

// WriteRaw appends b to c.Raw.
func (c *Conn) WriteRaw(b []byte) error { c.Raw = append(c.Raw, b...); return nil }

// CloseAfterFlush sets c.CloseAfter.
func (c *Conn) CloseAfterFlush() { c.CloseAfter = true }

// Draining returns c.Drain.
func (c *Conn) Draining() bool { return c.Drain }

// Feed delivers reads to p one after another as the runtime does: after
// each read, Input until it needs more, Decode of every packet. It returns
// the decoded messages (copied) and the first error.
func Feed(p protocols.Protocol, c protocols.Conn, reads ...[]byte) ([][]byte, error) {
	var buf []byte
	var msgs [][]byte
	for _, r := range reads {
		buf = append(buf, r...)
		for len(buf) > 0 {
			n, err := p.Input(c, buf)
			if err != nil {
				return msgs, err
			}
			if n == 0 {
				break
			}
			if n < 0 || n > len(buf) {
				return msgs, fmt.Errorf("protocoltest: Input returned %d with %d buffered", n, len(buf))
			}
			m, err := p.Decode(c, buf[:n])
			buf = buf[n:]
			if errors.Is(err, protocols.ErrSkip) {
				continue
			}
			if err != nil {
				return msgs, err
			}
			msgs = append(msgs, append([]byte(nil), m...))
		}
	}
	return msgs, nil
}
