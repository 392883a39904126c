package connections

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/goes-project/goes/connections/internal/core"
)

// ErrPipeUnsupported: Pipe was given a connection that is not a stream
// (a UDP datagram) or a connection of another package.
var ErrPipeUnsupported = errors.New("connections: pipe needs stream connections of this package")

// Pipe forwards every message src receives to dst, with backpressure, the
// way a proxy does: each message goes through dst's protocol (unchanged
// when dst has none, so raw bytes stay raw), src stops reading (PauseRecv)
// while dst's send buffer is full and resumes once it has drained
// (OnBufferDrain), and when either side closes the other is closed after
// what it has queued is written; a message held back from a full dst is
// written before dst is closed. Nothing src receives is dropped while both
// stay open.
//
// The messages of src no longer reach OnMessage; OnBufferDrain and OnClose
// still run for both sides, after the pipe's own handling. For a
// two-way proxy call Pipe in both directions. A later Pipe from the same
// src replaces the earlier one. src and dst may be connections accepted
// by a Server (either engine) or Clients, of any servers. Pipe returns
// ErrClosed when either side is already closing and ErrPipeUnsupported for
// datagrams.
//
// Pipe is safe for concurrent use; call it before src receives what it
// must forward (in src's OnConnect, or before a Client's Connect).
func Pipe(src, dst Connection) error {
	s, ok1 := endOf(src)
	d, ok2 := endOf(dst)
	if !ok1 || !ok2 {
		return ErrPipeUnsupported
	}
	if src == dst {
		return errors.New("connections: pipe from a connection to itself")
	}
	l := &pipeLink{src: s, dst: d}
	sn, _ := s.links().node(src, true)
	sn.mu.Lock()
	if sn.dead {
		sn.mu.Unlock()
		return ErrClosed
	}
	old := sn.out
	sn.out = l
	sn.mu.Unlock()
	if old != nil {
		old.stop()
	}
	dn, _ := d.links().node(dst, true)
	dn.mu.Lock()
	ok := !dn.dead
	if ok {
		dn.in = append(dn.in, l)
	}
	dn.mu.Unlock()
	if !ok || s.gone() || d.gone() {
		// A side is closing; its OnClose may have run before the link was
		// in place. Undo the link and settle that side's other links now
		// (its OnClose then finds nothing to do).
		l.stop()
		if s.gone() {
			s.links().closed(src)
		}
		if d.gone() {
			d.links().closed(dst)
		}
		return ErrClosed
	}
	return nil
}

// pipeEnd is a connection Pipe can use: a stream connection of an
// engine (its core.Conn) or a Client.
type pipeEnd struct {
	Connection // the connection itself: the key of its pipeTable
	c          *core.Conn
	cl         *Client
}

// endOf returns c as a pipeEnd; false for a datagram or a connection of
// another package.
func endOf(c Connection) (pipeEnd, bool) {
	switch t := c.(type) {
	case *Client:
		return pipeEnd{Connection: c, cl: t}, true
	case interface{ CoreConn() *core.Conn }:
		return pipeEnd{Connection: c, c: t.CoreConn()}, true
	}
	return pipeEnd{}, false
}

// sendFull reports whether the send buffer reached its limit and has not
// drained since (OnBufferDrain is still to come).
func (e pipeEnd) sendFull() bool {
	if e.cl != nil {
		return e.cl.sendFull()
	}
	return e.c.SendFull()
}

// gone reports whether the connection is closing or closed for good.
func (e pipeEnd) gone() bool {
	if e.cl != nil {
		return e.cl.gone()
	}
	return e.c.Gone()
}

// links is the table that holds the connection's pipe links.
func (e pipeEnd) links() *pipeTable {
	if e.cl != nil {
		return &e.cl.pipes
	}
	return e.c.RT.Pipes.(*pipeTable)
}

// pipeTable holds the pipe links of the connections of one Server (or of
// one Client). The zero value is empty; an empty table costs OnMessage,
// OnBufferDrain and OnClose one atomic load.
type pipeTable struct {
	n atomic.Int64 // nodes in m
	m sync.Map     // Connection → *pipeNode
}

// pipeNode is one connection's links.
type pipeNode struct {
	mu   sync.Mutex
	dead bool        // the connection's OnClose ran
	out  *pipeLink   // the connection is the link's src
	in   []*pipeLink // the connection is these links' dst
}

// node returns c's node, creating it when create is set; ok is false when
// there is none (never with create).
func (t *pipeTable) node(c Connection, create bool) (*pipeNode, bool) {
	if v, ok := t.m.Load(c); ok {
		return v.(*pipeNode), true
	}
	if !create {
		return nil, false
	}
	v, loaded := t.m.LoadOrStore(c, &pipeNode{})
	if !loaded {
		t.n.Add(1)
	}
	return v.(*pipeNode), true
}

// wrap returns h with the pipe hooks of the table's connections in front
// of OnMessage, OnBufferDrain and OnClose.
func (t *pipeTable) wrap(h Handler) Handler {
	onMessage, onDrain, onClose := h.OnMessage, h.OnBufferDrain, h.OnClose
	h.OnMessage = func(c Connection, data []byte) {
		if t.n.Load() != 0 {
			if l := t.out(c); l != nil {
				l.forward(data)
				return
			}
		}
		if onMessage != nil {
			onMessage(c, data)
		}
	}
	h.OnBufferDrain = func(c Connection) {
		if t.n.Load() != 0 {
			t.drained(c)
		}
		if onDrain != nil {
			onDrain(c)
		}
	}
	h.OnClose = func(c Connection) {
		if t.n.Load() != 0 {
			t.closed(c)
		}
		if onClose != nil {
			onClose(c)
		}
	}
	return h
}

// out returns the link c is the source of, or nil.
func (t *pipeTable) out(c Connection) *pipeLink {
	n, ok := t.node(c, false)
	if !ok {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out
}

// drained passes c's drain to the links c is the destination of.
func (t *pipeTable) drained(c Connection) {
	n, ok := t.node(c, false)
	if !ok {
		return
	}
	n.mu.Lock()
	in := slices.Clone(n.in)
	n.mu.Unlock()
	for _, l := range in {
		l.drained()
	}
}

// closed ends c's links: the other side of each is closed.
func (t *pipeTable) closed(c Connection) {
	v, ok := t.m.LoadAndDelete(c)
	if !ok {
		return
	}
	t.n.Add(-1)
	n := v.(*pipeNode)
	n.mu.Lock()
	n.dead = true
	out, in := n.out, n.in
	n.out, n.in = nil, nil
	n.mu.Unlock()
	if out != nil {
		out.srcClosed()
	}
	for _, l := range in {
		l.dstClosed()
	}
}

// pipeLink forwards src's messages to dst.
//
// Lock order: pipeLink.mu, then the connections' own locks (src.PauseRecv
// and ResumeRecv and dst's sends run with it held), then pipeNode.mu.
// Connections never call into a link with their locks held.
type pipeLink struct {
	src, dst pipeEnd

	mu      sync.Mutex
	held    [][]byte // messages dst had no room for, oldest first
	paused  bool     // the link paused src
	srcGone bool     // src closed: close dst once held is written
	done    bool     // the link is over

	pauses atomic.Uint64 // times the link paused src
}

// forward sends one message of src to dst; it runs on src's dispatcher,
// so forwards never overlap.
func (l *pipeLink) forward(data []byte) {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return
	}
	if len(l.held) > 0 || l.dst.sendFull() {
		l.held = append(l.held, slices.Clone(data))
		l.mu.Unlock()
		l.pause()
		return
	}
	l.mu.Unlock()
	// held is empty and only forward adds to it, so sending without the
	// lock keeps the order.
	err := l.dst.SendBytes(data, false)
	if errors.Is(err, ErrSendBufferFull) {
		// Another sender filled dst since the check.
		l.mu.Lock()
		l.held = append(l.held, slices.Clone(data))
		l.mu.Unlock()
		l.pause()
		return
	}
	if l.dst.sendFull() {
		l.pause()
	}
}

// pause stops src until dst drains.
func (l *pipeLink) pause() {
	l.mu.Lock()
	if !l.paused && !l.done {
		l.paused = true
		l.pauses.Add(1)
		l.src.PauseRecv()
	}
	l.mu.Unlock()
	if !l.dst.sendFull() {
		l.drained() // dst drained before src was paused
	}
}

// drained writes what was held back and resumes src once dst has room.
func (l *pipeLink) drained() {
	l.mu.Lock()
	for len(l.held) > 0 && !l.done && !l.dst.sendFull() {
		if err := l.dst.SendBytes(l.held[0], false); errors.Is(err, ErrSendBufferFull) {
			break
		}
		l.held[0] = nil
		l.held = l.held[1:]
	}
	closeDst := false
	if len(l.held) == 0 && !l.done {
		switch {
		case l.srcGone:
			l.done = true
			closeDst = true
		case l.paused && !l.dst.sendFull():
			l.paused = false
			l.src.ResumeRecv()
		}
	}
	l.mu.Unlock()
	if closeDst {
		l.dst.Close()
		l.unlinkDst()
	}
}

// srcClosed closes dst once what was held back is written.
func (l *pipeLink) srcClosed() {
	l.mu.Lock()
	l.srcGone = true
	now := len(l.held) == 0 && !l.done
	if now {
		l.done = true
	}
	l.mu.Unlock()
	if now {
		l.dst.Close()
		l.unlinkDst()
		return
	}
	if !l.dst.sendFull() {
		l.drained()
	}
}

// dstClosed closes src: nothing it receives can go anywhere.
func (l *pipeLink) dstClosed() {
	l.mu.Lock()
	was := l.done
	l.done = true
	l.held = nil
	l.mu.Unlock()
	l.unlinkSrc()
	if !was {
		l.src.Close()
	}
}

// stop ends the link without closing either side (Pipe replaced it or
// could not finish); src is resumed if the link paused it.
func (l *pipeLink) stop() {
	l.mu.Lock()
	l.done = true
	l.held = nil
	if l.paused {
		l.paused = false
		l.src.ResumeRecv()
	}
	l.mu.Unlock()
	l.unlinkSrc()
	l.unlinkDst()
}

// unlinkSrc removes l from its source's node.
func (l *pipeLink) unlinkSrc() {
	if n, ok := l.src.links().node(l.src.Connection, false); ok {
		n.mu.Lock()
		if n.out == l {
			n.out = nil
		}
		n.mu.Unlock()
	}
}

// unlinkDst removes l from its destination's node.
func (l *pipeLink) unlinkDst() {
	if n, ok := l.dst.links().node(l.dst.Connection, false); ok {
		n.mu.Lock()
		n.in = slices.DeleteFunc(n.in, func(x *pipeLink) bool { return x == l })
		n.mu.Unlock()
	}
}
