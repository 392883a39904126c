package connections

import (
	"errors"
	"net"
	"time"

	"github.com/goes-project/goes/protocols"
)

// Connection is one client of a listener: a TCP, Unix or TLS stream, or,
// for UDP, one received datagram whose Send answers its sender.
type Connection interface {
	protocols.Conn

	// ID is unique among the connections of all workers of a master,
	// across restarts and reloads, and across the masters sharing a
	// cluster: the high 32 bits are the route of the worker process
	// (Config.IDBase, drawn by its master for every worker start), the low
	// 32 a sequence. Safe for concurrent use.
	ID() uint64

	// Send encodes data with the listener's protocol (or, when raw is true,
	// takes it as is) and queues it on the send buffer. It never blocks on
	// the network. When the buffer is already full (MaxSendBufferSize)
	// the data is dropped, OnError is called with ErrSendBufferFull and
	// that error is returned; but what OnMessage sends while it handles a
	// packet is an answer to input that was read, and is queued past the
	// limit, while the connection stops being read until its output
	// drains (see Config.MaxSendBufferSize). Safe for concurrent use.
	Send(data string, raw bool) error

	// SendBytes is Send for a byte slice; data may be reused once it
	// returns. Safe for concurrent use.
	SendBytes(data []byte, raw bool) error

	// Close closes the connection once what was queued has been written.
	// OnClose runs once the connection is gone. Safe for concurrent use;
	// calling it more than once is harmless.
	Close() error

	// Destroy closes the connection at once, dropping anything queued.
	// Safe for concurrent use.
	Destroy()

	// LocalAddr is the listener's address. Safe for concurrent use.
	LocalAddr() net.Addr
	// RemoteAddr is the peer's address. Safe for concurrent use.
	RemoteAddr() net.Addr
	// Transport is "tcp", "udp", "unix" or "tls". Safe for concurrent use.
	Transport() string
	// Protocol is the listener's protocol, nil for raw bytes. Safe for concurrent use.
	Protocol() protocols.Protocol

	// PauseRecv stops reading from the connection (the peer's writes then
	// back up in the kernel). Safe for concurrent use.
	PauseRecv()
	// ResumeRecv undoes PauseRecv. Safe for concurrent use.
	ResumeRecv()

	// BytesRead is the number of bytes received so far. Safe for concurrent use.
	BytesRead() uint64
	// BytesWritten is the number of bytes written to the socket so far. Safe
	// for concurrent use.
	BytesWritten() uint64
	// SendBufferLen is the number of bytes queued and not yet written.
	// Safe for concurrent use.
	SendBufferLen() int
	// CreatedAt is when the connection was accepted. Safe for concurrent use.
	CreatedAt() time.Time

	// Context returns the value stored with SetContext. Safe for concurrent
	// use; the value itself is the user's to protect.
	Context() any
	// SetContext stores a user value with the connection (a user id, a
	// session). Safe for concurrent use.
	SetContext(v any)
}

// Errors reported to OnError or returned by Send.
var (
	// ErrSendBufferFull: the send buffer is at MaxSendBufferSize; the data
	// was dropped (counted in Stats.SendBufferFull and logged). Answers
	// sent by OnMessage to the packet it handles never get it.
	ErrSendBufferFull = errors.New("connections: send buffer full, data dropped")
	// ErrClosed: the connection is closed or closing; the data was dropped.
	ErrClosed = errors.New("connections: connection closed")
	// ErrPanic wraps a panic recovered from a user callback; the connection is closed.
	ErrPanic = errors.New("connections: panic in callback")
	// ErrServerClosed is returned by Serve after Drain, Shutdown or Close.
	ErrServerClosed = errors.New("connections: server closed")
)

// Handler holds the event callbacks of a listener. Nil callbacks are skipped.
//
// Where they run: with EngineStd, on the connection's own reading
// goroutine; with EngineEpoll, on the event loop that serves the
// connection, or on the callback pool when Config.CallbackGoroutines > 0;
// for UDP, on the packet conn's reading goroutine. The callbacks of one
// connection never run concurrently with each other; those of different
// connections may, so state shared between connections needs a lock.
// None may block: a callback that waits (a query, a sleep, a lock held
// elsewhere) stalls every connection of its event loop; hand such work to
// a goroutine of your own and Send from there (Send is safe from any
// goroutine). A panic is recovered and reported to OnError as ErrPanic.
type Handler struct {
	// OnConnect runs once a stream connection is accepted (not for UDP),
	// before its first OnMessage, on the connection's loop (see above).
	OnConnect func(c Connection)
	// OnMessage runs for every decoded message, on the connection's loop.
	// data is valid only until it returns.
	OnMessage func(c Connection, data []byte)
	// OnClose runs once a stream connection is gone (not for UDP), last of
	// its callbacks, on the connection's loop.
	OnClose func(c Connection)
	// OnError runs when a send is dropped, input is malformed, a callback
	// panics or a write fails: on the connection's loop, or on the
	// goroutine whose Send failed. It must not block.
	OnError func(c Connection, err error)
	// OnBufferFull runs when the send buffer reaches MaxSendBufferSize, on
	// the goroutine that sent. It must not block.
	OnBufferFull func(c Connection)
	// OnBufferDrain runs when a full send buffer has been written out, on
	// the connection's loop.
	OnBufferDrain func(c Connection)
}
