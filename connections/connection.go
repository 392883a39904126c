package connections

import "github.com/goes-project/goes/connections/internal/core"

// The public types of the package are declared in
// connections/internal/core, so that the core and the engines, in
// packages of their own, can use them; here they are aliases. Their full
// documentation, with the callback contracts, is there:
// go doc github.com/goes-project/goes/connections/internal/core Connection
// (and Handler, Config, Stats, Info, AcceptShare).

// Connection is one client of a listener: a TCP, Unix or TLS stream, or,
// for UDP, one received datagram whose Send answers its sender. It is a
// protocols.Conn with ID, Send, SendBytes, Close, Destroy, LocalAddr,
// RemoteAddr, Transport, Protocol, PauseRecv, ResumeRecv, BytesRead,
// BytesWritten, SendBufferLen, CreatedAt, Context and SetContext, all
// safe for concurrent use; Send never blocks on the network. The full
// doc of each method: go doc
// github.com/goes-project/goes/connections/internal/core Connection.
type Connection = core.Connection

// Handler holds the event callbacks of a listener (OnConnect, OnMessage,
// OnClose, OnError, OnBufferFull, OnBufferDrain); nil callbacks are
// skipped. They run on the connection's goroutine (EngineStd), on its
// event loop (EngineEpoll) or on the callback pool
// (Config.CallbackGoroutines); those of one connection never run
// concurrently; none may block; a panic is recovered and reported to
// OnError as ErrPanic. The full contract, callback by callback: go doc
// github.com/goes-project/goes/connections/internal/core Handler.
type Handler = core.Handler

// StateReleaser is an optional interface of a protocols.Protocol: when a
// stream connection holds no partial packet, ReleaseState lets the
// protocol give its per-connection state back to a pool (on the
// connection's dispatcher, with its send lock held: it must not call Send
// or Close). Full doc: go doc
// github.com/goes-project/goes/connections/internal/core StateReleaser.
type StateReleaser = core.StateReleaser

// Errors reported to OnError or returned by Send.
var (
	// ErrSendBufferFull: the send buffer is at MaxSendBufferSize; the data
	// was dropped (counted in Stats.SendBufferFull and logged). Answers
	// sent by OnMessage to the packet it handles never get it.
	ErrSendBufferFull = core.ErrSendBufferFull
	// ErrClosed: the connection is closed or closing; the data was dropped.
	ErrClosed = core.ErrClosed
	// ErrPanic wraps a panic recovered from a user callback; the connection is closed.
	ErrPanic = core.ErrPanic
	// ErrServerClosed is returned by Serve after Drain, Shutdown or Close.
	ErrServerClosed = core.ErrServerClosed
)

// Errors of the engines.
var (
	// ErrEngineUnsupported: Config.Engine names an engine that cannot serve
	// this listener on this platform.
	ErrEngineUnsupported = core.ErrEngineUnsupported
	// ErrIncompleteDatagram: a datagram ended inside a packet.
	ErrIncompleteDatagram = core.ErrIncompleteDatagram
	// ErrProtocolMisbehaved: a protocol reported a packet longer than the
	// bytes it was given.
	ErrProtocolMisbehaved = core.ErrProtocolMisbehaved
)
