// Package protocols defines the one interface every application protocol of
// goes implements, in the spirit of workerman's input/decode/encode.
//
// The runtime keeps the bytes received on a connection and not yet consumed
// in a buffer. After every read it calls Input on that buffer until Input
// reports that it needs more; each complete packet is passed to Decode and
// the result to the user's OnMessage. Send passes the user's message to
// Encode, which appends the wire form to the connection's send buffer.
//
// A Protocol value is shared by every connection of a listener and is called
// from many goroutines at once; state that belongs to one connection lives in
// that connection's state slot (Conn.State / Conn.SetState). The runtime calls
// Input and Decode of one connection from one goroutine at a time, and Encode
// with the connection's send lock held (from any goroutine that calls Send).
//
// A protocol may implement optional interfaces, which the runtime and the
// worker look for instead of asking for a protocol by name:
// ClientHandshaker (outgoing connections open with a handshake, as
// WebSocket's do), GoingAwayer (peers are told goodbye when a drain
// times out), Phaser (where a connection stands in its exchange, for
// the runtime's read timeouts), PacketSizer (the length of a packet still arriving) and
// OverloadReplier (what a peer is told when the worker sheds it); a
// connection may implement InputHolder, through which a protocol that
// keeps unfinished input of its own (WebSocket fragments) has it counted.
// The connection runtime knows protocols through this package only, never
// through a concrete one.
package protocols

import (
	"errors"
	"strconv"
)

// Protocol frames, decodes and encodes the packets of one application protocol.
type Protocol interface {
	// Name is the short lowercase name of the protocol ("text", "http", ...),
	// as it appears in listen URIs and in status output.
	Name() string

	// Input inspects buf, the bytes received and not yet consumed, and
	// returns n > 0 when buf[:n] is one complete packet, 0 when more bytes
	// are needed, or an error when the input can never become a valid
	// packet. A packet longer than c.MaxPackageSize() must be reported as
	// an error (ErrPackageTooLarge or a *ReplyError wrapping it) as soon as
	// that is known, not after it has been buffered. An error closes this
	// connection only.
	Input(c Conn, buf []byte) (n int, err error)

	// Decode turns one packet (as delimited by Input) into the message
	// given to OnMessage. The message may alias packet and is valid only
	// until OnMessage returns. Returning ErrSkip consumes the packet without
	// calling OnMessage (handshakes, control frames); any other error closes
	// the connection.
	Decode(c Conn, packet []byte) (msg []byte, err error)

	// Encode appends the wire form of msg to dst and returns the extended
	// buffer. It is called with the connection's send lock held and must not
	// call the connection's Send or Close; it may call CloseAfterFlush.
	Encode(c Conn, dst, msg []byte) ([]byte, error)
}

// SharedEncoder is implemented by a Protocol whose wire form of a message
// is the same on many connections (a server's WebSocket frame, a text
// line), so that a message sent to many at once (connections.Fanout: a
// group, a user's connections, a broadcast) is encoded once and the same
// bytes are queued on all of them, without a copy each.
type SharedEncoder interface {
	// EncodeKey returns the class of c's encoding of msg: Encode appends
	// the same bytes for msg on every connection of this protocol with the
	// same key, and changes nothing of c that the next Encode depends on.
	// ok is false when c's encoding is its own (a compressor that keeps
	// its context, a client's mask) or c cannot take msg now; then Encode
	// is called on c, and reports why. It is called with the connection's
	// send lock held, like Encode.
	EncodeKey(c Conn, msg []byte) (key uint32, ok bool)
}

// Conn is what a protocol sees of a connection. Connections of every engine
// and transport implement it; connections.Connection embeds it.
type Conn interface {
	// State returns the value stored with SetState, or nil. It is meant
	// for the protocol. Safe for concurrent use (Encode runs on whatever
	// goroutine calls Send); the state's own fields are the protocol's to
	// guard.
	State() any
	// SetState stores per-connection protocol state. Storing a pointer
	// does not allocate. Safe for concurrent use.
	SetState(v any)
	// MaxPackageSize is the largest packet this connection accepts, in bytes.
	// Safe for concurrent use.
	MaxPackageSize() int
	// WriteRaw queues b on the send buffer as is, bypassing Encode
	// (handshake answers, pongs, error replies). Safe for concurrent use.
	WriteRaw(b []byte) error
	// CloseAfterFlush asks the runtime to close the connection once
	// everything queued so far has been written. Safe for concurrent use,
	// and callable from Encode.
	CloseAfterFlush()
	// Draining reports whether the worker is draining (graceful stop or
	// reload): protocols with keep-alive should tell the peer to go away
	// after the current exchange (HTTP: Connection: close). Safe for
	// concurrent use.
	Draining() bool
}

// ErrSkip is returned by Decode for a packet that carries no message for
// the application (a handshake, a ping). It is not an error.
var ErrSkip = errors.New("protocols: packet consumed, no message")

// ErrPackageTooLarge is the error a protocol returns from Input when a
// packet exceeds the connection's MaxPackageSize.
var ErrPackageTooLarge = errors.New("protocols: package too large")

// ReplyError is an Input or Decode error that carries bytes for the peer:
// the runtime queues Reply, flushes it and then closes the connection
// (HTTP's 400/413/431 answers, WebSocket close frames).
type ReplyError struct {
	Err   error  // what went wrong, for the log line and OnError
	Reply []byte // written to the peer before the connection is closed
}

func (e *ReplyError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ReplyError) Unwrap() error { return e.Err }

// ClientHandshaker is an optional interface of a Protocol whose outgoing
// connections open with a handshake of their own before they carry
// messages, as the WebSocket client's does (websocket.Client). A
// connections.Client checks for it when it is made; it then calls
// StartClient on each of its connections once the transport is up (TCP
// connected, TLS done), on the connection's goroutine, before OnConnect.
//
// StartClient queues the opening request (with c.WriteRaw) and returns.
// The protocol calls opened once, from Decode on the connection's
// goroutine, when the peer's answer checks out, and before it returns the
// first message. Until then the runtime holds back what the application
// sends and delivers it, in order, from opened. A refused handshake is an
// error from Input or Decode, as for any bad input; an error from
// StartClient closes the connection and is reported to OnError.
type ClientHandshaker interface {
	StartClient(c Conn, opened func()) error
}

// GoingAwayer is an optional interface of a Protocol that tells its peers
// when the server goes away: a worker's drain (stop or reload) passed its
// timeout with the connection still open, and the connection is closed a
// moment later. WebSocket sends close code 1001 (going away).
//
// GoingAway queues the goodbye on c (WriteRaw, or a closing handshake);
// it does not close c. It is called once per connection, from the
// worker's goroutine rather than the connection's, so it must be safe for
// concurrent use with the connection's callbacks and must not block.
type GoingAwayer interface {
	GoingAway(c Conn)
}

// Phase is where a connection stands in its protocol's exchange, as the
// runtime's read timeouts see it (see Phaser and the timeouts section of
// package connections).
type Phase uint8

// Phases. A protocol without a Phaser has two: PhaseOpen while nothing
// partial is buffered and PhaseBody while a packet is partly received.
const (
	// PhaseOpen is between the packets of a long-lived exchange (a
	// WebSocket after the upgrade, a text or frame stream): the peer may
	// stay silent as long as it likes.
	PhaseOpen Phase = iota
	// PhaseHead: a request head is due or partly received (an HTTP
	// request, a WebSocket opening handshake). It must be complete within
	// the header timeout of the moment the phase began.
	PhaseHead
	// PhaseBody: a packet is partly received past its head (an HTTP body,
	// a WebSocket frame or fragmented message, a text line). It must make
	// progress: something within every body timeout, and at least the
	// minimum rate.
	PhaseBody
	// PhaseIdle is between the requests of a keep-alive exchange: the next
	// must begin within the keep-alive timeout. Before a connection has
	// delivered its first packet, PhaseIdle counts as PhaseHead: the first
	// request is due within the header timeout of the accept.
	PhaseIdle
	// PhaseBusy: the application owes the peer an answer (an HTTP request
	// is being handled, a response streamed). Nothing bounds the wait on
	// the reading side; the runtime asks the protocol again, now and then,
	// since the answer changes the phase without any input (the send
	// timeout still bounds a peer that does not read).
	PhaseBusy
)

// String returns the phase's lowercase name ("head", "body", ...).
func (p Phase) String() string {
	switch p {
	case PhaseOpen:
		return "open"
	case PhaseHead:
		return "head"
	case PhaseBody:
		return "body"
	case PhaseIdle:
		return "idle"
	case PhaseBusy:
		return "busy"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Phaser is an optional interface of a Protocol whose connections go
// through phases with different read timeouts: HTTP's heads, bodies and
// keep-alive waits, WebSocket's opening handshake. The runtime asks
// Phase after every batch of input it has delivered, on the connection's
// dispatcher (where Input runs), and records the phase with the time of
// the read that brought it: traffic costs no timer operation. When the
// connection's state is nil (never set, or given back to a pool) the
// runtime does not ask: the connection is in PhaseIdle.
//
// Phase reports c's phase; partial says that bytes of an incomplete
// packet are left in the buffer (Input returned 0 for them). While the
// recorded phase is PhaseBusy the runtime's timer asks again (partial
// false), with c's send lock held and no Input or Decode of c running,
// so Phase must be safe against a concurrent Encode, as Input is.
//
// TimedOut is called when a rule closes c in phase p, with c's send lock
// held and no Input or Decode of c running (as for ReleaseState, it must
// not call Send or Close): it returns what to write to the peer before
// the connection is closed (HTTP's 408 response, a WebSocket close
// frame), or nil to close it silently. No input is delivered to c after
// TimedOut.
type Phaser interface {
	Phase(c Conn, partial bool) Phase
	TimedOut(c Conn, p Phase) []byte
}

// Memory of unfinished input. A worker bounds the memory its connections
// hold for input that is not yet a whole packet (a partial HTTP body, a
// frame or line still arriving, the fragments of a WebSocket message):
// when that budget is spent it sheds the connections holding the most
// (see connections.Config.MaxInputMemory). The interfaces below let a
// protocol take part.

// PacketSizer is an optional interface of a Protocol that knows how long a
// packet will be before all of it has arrived: HTTP once a request head
// with Content-Length is read, a length-prefixed frame once its header is.
// The runtime asks when Input has returned 0 for buf and the connection's
// buffer must grow, on the goroutine that calls Input, with buf as Input
// saw it (or with more bytes appended); it then grows the buffer to that
// length exactly instead of doubling it. PacketSize returns the whole
// packet's length, counted from buf[0], or 0 when it is not known (yet).
// It must not change the connection's state.
type PacketSizer interface {
	PacketSize(c Conn, buf []byte) int
}

// OverloadReplier is an optional interface of a Protocol that tells a peer
// why its connection is closed when the worker sheds it because its budget
// for unfinished input is spent (HTTP: 503 with Retry-After; WebSocket:
// close 1013, try again later). OverloadReply returns the bytes to send
// before the connection closes, or nil to send nothing (when a reply
// cannot be put in the stream now, as in the middle of a response).
//
// It is called once per connection, possibly from another connection's
// goroutine while c's callbacks run, so it must be safe for concurrent use
// with them, must not block and must not call Send or Close.
type OverloadReplier interface {
	OverloadReply(c Conn) []byte
}

// InputHolder is implemented by the connections of a runtime that bounds
// the memory of unfinished input (those of package connections do). A
// protocol that keeps such input outside the runtime's buffer, as
// WebSocket does with the fragments of a message, reports how much it
// holds (n bytes; 0 when it lets go), so that it counts against the
// worker's budget like a partial packet in the runtime's buffer. When the
// budget is spent and c holds the most, HoldInput sheds c (it queues the
// protocol's OverloadReply and closes c) and returns an error wrapping
// ErrOverloaded, which the protocol returns from Input or Decode. Call it
// from Input or Decode only (the connection's goroutine), and only when
// the amount changes: it takes a lock.
type InputHolder interface {
	HoldInput(n int) error
}

// ErrOverloaded is wrapped by the errors of a connection shed because its
// worker's budget for unfinished input is spent.
var ErrOverloaded = errors.New("protocols: input memory budget spent")
