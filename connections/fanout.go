package connections

import (
	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/protocols"
)

// Fanout sends one message to many connections at once: a chat group, the
// connections of one user, a broadcast. Where the connections' protocol is
// a protocols.SharedEncoder (text, frame, a server's WebSocket) the message
// is encoded once per encoding class and the same bytes are queued on
// every member, without a copy per member when nothing else is queued on
// it; and the members of each event loop are handed to it in batches (one
// lock and at most one wake-up per batch), not one by one.
//
//	var f connections.Fanout
//	f.Begin(data, false)
//	for _, c := range members {
//		f.Add(c)
//	}
//	sent := f.End()
//
// Add behaves as c.SendBytes(data, raw) for each member (the same limits,
// OnBufferFull, OnError, errors), and connections it cannot share with
// (another engine's, a client's, UDP) get exactly that. The members are
// written once End has handed them over: call End, also after an error.
// A Fanout may be used again after End; it is not safe for concurrent use.
type Fanout struct {
	data   []byte
	raw    bool
	frames []fanFrame
	kicks  core.KickBatch
	sent   int
}

// fanFrame is the message encoded for one class of connections, queued as
// is on each of them.
type fanFrame struct {
	proto protocols.Protocol
	key   uint32
	buf   *core.Buffer // shared; nil when there is nothing to write
	err   error
}

// fanBatch is how many members of one loop Add hands over at once: the
// loop starts writing to the first while the rest are added.
const fanBatch = 256

// fanTarget is implemented by the connections a Fanout queues on itself
// (the engines' stream connections, through core.Conn).
type fanTarget interface{ CoreConn() *core.Conn }

// Begin starts sending data (encoded by each connection's protocol, or as
// is when raw). Data must not change until End returns; the members'
// queues hold copies of it.
func (f *Fanout) Begin(data []byte, raw bool) {
	f.data, f.raw, f.sent = data, raw, 0
	clear(f.frames)
	f.frames = f.frames[:0]
}

// Add queues the message on c; its error is SendBytes'.
func (f *Fanout) Add(c Connection) error {
	t, ok := c.(fanTarget)
	if !ok {
		return f.count(c.SendBytes(f.data, f.raw))
	}
	b := t.CoreConn()
	kick, err := b.Enqueue(nil, "", false, (*framer)(f))
	if kick {
		f.kicks.Add(b, fanBatch)
	}
	return f.count(err)
}

func (f *Fanout) count(err error) error {
	if err == nil {
		f.sent++
	}
	return err
}

// End hands the members still held to their loops and returns how many
// connections took the message since Begin.
func (f *Fanout) End() int {
	f.kicks.Flush()
	clear(f.frames)
	f.frames = f.frames[:0]
	return f.sent
}

// framer is a Fanout as core.Conn.Enqueue sees it (core.Framer): its
// methods stay off Fanout's public method set.
type framer Fanout

// Message is the message of Begin and whether it is sent as is.
func (f *framer) Message() ([]byte, bool) { return f.data, f.raw }

// FrameLocked returns the message as c's protocol encodes it for c,
// encoded once per class of connections, or nil when c encodes it its own
// way. Raw, it is a copy of the data, made once. c.Mu is
// held: a protocol's state for c changes under it.
func (f *framer) FrameLocked(c *core.Conn) (*core.Buffer, error) {
	proto := c.Protocol()
	if f.raw {
		proto = nil
	}
	var key uint32
	if proto != nil {
		se, ok := proto.(protocols.SharedEncoder)
		if !ok {
			return nil, nil
		}
		if key, ok = se.EncodeKey(c.Self(), f.data); !ok {
			return nil, nil
		}
	}
	for i := range f.frames {
		if fr := &f.frames[i]; fr.proto == proto && fr.key == key {
			return fr.buf, fr.err
		}
	}
	var b []byte
	var err error
	if proto == nil {
		b = append([]byte(nil), f.data...)
	} else {
		b, err = proto.Encode(c.Self(), make([]byte, 0, len(f.data)+core.EncodeSlack), f.data)
	}
	var buf *core.Buffer // nil: nothing to write; c's own path queues nothing
	if len(b) > 0 {
		buf = &core.Buffer{B: b, Shared: true}
	}
	f.frames = append(f.frames, fanFrame{proto: proto, key: key, buf: buf, err: err})
	return buf, err
}
