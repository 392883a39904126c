package core

import "net"

// Ops is what the engine-independent part of a stream connection (Conn)
// asks of its engine: each engine's connection type implements it. mu,
// the f* flags (F*) and the buffers named below are Conn's (conn.go).
type Ops interface {
	// Kick writes what is queued; send calls it, without mu, when no
	// dispatcher will flush for it.
	Kick()
	// BatchKick is Kick for a Fanout, which flushes many connections at
	// once: it returns the queue of flushes the connection shares with
	// others (its event loop's) and whether it claimed the connection's
	// place in it (false: it is queued already, its flush will come). A
	// nil queue: the engine has none, the Fanout calls Kick. Without mu.
	BatchKick() (q KickQueue, claimed bool)
	// CloseSocketLocked starts closing the socket; mu is held, fSockClosed
	// is already set and the send buffer released. The engine runs OnClose
	// once the socket is gone.
	CloseSocketLocked()
	// Resumed is called, without mu, after ResumeRecv cleared fPaused or
	// the output drained below the low watermark (fBackpressure cleared).
	Resumed()
	// Drained runs OnBufferDrain (as a dispatcher) where the engine runs
	// callbacks; it is called without mu from the engine's write path.
	Drained()
	// FlushDeadline bounds how long a closing connection waits for a peer
	// that does not read; mu is held.
	FlushDeadline()
	// LingerLocked shuts down the sending side of the socket and makes
	// sure the connection is destroyed after lingerTimeout; false when the
	// engine cannot do that here (then it is closed at once). mu is held
	// and fLinger set: the engine reads and drops input until EOF.
	LingerLocked() bool
	// ShedInput lets go of the connection's unfinished input as soon as
	// the engine can, after another goroutine shed it (inputBudget); it
	// is called without mu, after Close.
	ShedInput()
	// Local and Remote are the socket's addresses (Connection.LocalAddr
	// and RemoteAddr).
	Local() net.Addr
	Remote() net.Addr
	// EngineName is the engine's Config.Engine value (Info.Engine).
	EngineName() string
}

// KickQueue is a queue of flushes that an engine shares between many
// connections (an event loop's): a Fanout hands it the members it queued
// on in batches, one lock of the queue and at most one wake-up per batch
// instead of per connection. It is the engine contract's batching half;
// Ops.BatchKick is the other.
type KickQueue interface {
	// PostKicks queues cs, every one claimed by its BatchKick, for a
	// flush. Safe for concurrent use; it keeps no reference to cs.
	PostKicks(cs []Ops)
}
