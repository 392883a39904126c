package core

import (
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

// The public types of package connections, declared here so that the
// core and the engines, in packages of their own, can use them;
// connections declares them as aliases (type Connection =
// core.Connection) and its constants and errors with the same values.
// This is their full documentation.

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
	// session). Safe for concurrent use. On a stream connection the first
	// non-nil value allocates 32 bytes, which connections that never call
	// it do not carry.
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

// Defaults applied to zero Config fields.
const (
	DefaultMaxPackageSize    = 10 << 20 // 10 MiB, as workerman
	DefaultMaxSendBufferSize = 1 << 20  // 1 MiB, as workerman
	DefaultReadBufferSize    = 4 << 10
)

// Defaults of the read and send timeouts (see the package doc's Timeouts
// section), applied to zero Config fields; nginx's are the yardstick.
const (
	// DefaultHeaderTimeout bounds a request head, from its first byte (from
	// the accept for a connection's first request); nginx's
	// client_header_timeout is 60 s, Apache's mod_reqtimeout 20 to 40 s.
	DefaultHeaderTimeout = 30 * time.Second
	// DefaultBodyTimeout bounds the silence inside a partly received
	// packet (nginx's client_body_timeout).
	DefaultBodyTimeout = 60 * time.Second
	// DefaultBodyMinRate is the least rate, in bytes per second, at which
	// a partly received packet must keep arriving, measured over each
	// BodyTimeout (Apache's MinRate is 500).
	DefaultBodyMinRate = 1 << 10
	// DefaultKeepAliveTimeout bounds the wait for the next request of a
	// keep-alive connection (nginx's keepalive_timeout).
	DefaultKeepAliveTimeout = 75 * time.Second
	// DefaultSendTimeout bounds how long queued output may wait for a
	// peer that takes none of it (nginx's send_timeout).
	DefaultSendTimeout = 60 * time.Second
)

// Engines, the values of Config.Engine.
const (
	// EngineAuto picks EngineEpoll where it can serve the listener (TCP
	// and Unix listeners on Linux, and TLSListeners over them; not
	// another TLS listener) and EngineStd elsewhere.
	EngineAuto = ""
	// EngineEpoll serves connections on event loops over epoll: one loop
	// per core (Config.Loops), non-blocking sockets, buffers borrowed only
	// while a connection has bytes to process or send. Linux only; it
	// serves *net.TCPListener and *net.UnixListener, and TLS over them
	// when the listener is a TLSListener.
	EngineEpoll = "epoll"
	// EngineStd serves every connection with its own reading goroutine.
	// It serves any net.Listener (TLS included) on every platform.
	EngineStd = "std"
)

// Config describes one listener's connections. The zero value serves raw
// bytes with the defaults above.
type Config struct {
	// Protocol frames the bytes; nil delivers every read as one message
	// and sends data unchanged.
	Protocol protocols.Protocol
	// Transport names the transport in Connection.Transport and in logs:
	// "tcp" (default), "udp", "unix" or "tls".
	Transport string
	// MaxPackageSize caps one packet (default DefaultMaxPackageSize).
	MaxPackageSize int
	// MaxSendBufferSize caps the bytes queued per connection (default
	// DefaultMaxSendBufferSize). At the limit the connection is not read
	// until a write leaves less than half of it queued (backpressure:
	// pipelined requests wait in the socket and TCP slows the peer);
	// what OnMessage sends for the packet it handles is queued past the
	// limit (by at most one more MaxSendBufferSize), so that no answer to
	// a request that was read is lost; other sends fail with
	// ErrSendBufferFull. A peer that reads nothing is cut by SendTimeout.
	MaxSendBufferSize int
	// ReadBufferSize is the size of one read of EngineStd, which keeps
	// such a buffer per connection (default DefaultReadBufferSize).
	// EngineEpoll reads into one 64 KiB buffer per loop and lends a
	// connection a buffer, grown by at least this much at a time, only
	// while a packet spans reads.
	ReadBufferSize int
	// IDBase is or-ed into every connection id: the worker's route in
	// bits 32..63 (see Connection.ID).
	IDBase uint64
	// Handler holds the callbacks.
	Handler Handler
	// Logger receives lifecycle and per-connection events.
	Logger zerolog.Logger

	// Engine selects the I/O engine of stream listeners: EngineAuto (the
	// default), EngineEpoll or EngineStd. Serve fails with
	// ErrEngineUnsupported when EngineEpoll is asked for a listener or
	// platform it cannot serve. Datagrams (ServePacket) always use a
	// reading goroutine per packet conn.
	Engine string
	// Loops is the number of event loops of EngineEpoll (default
	// GOMAXPROCS). Every loop accepts from every listener of the server.
	Loops int
	// CallbackGoroutines, when > 0, makes EngineEpoll run the callbacks
	// (OnConnect, OnMessage, OnBufferDrain, OnClose) on a pool of at most
	// that many goroutines instead of on the event loop. By default
	// callbacks run on the loop that serves the connection, which is the
	// fastest way but means a callback that blocks (a database query, a
	// sleep, a lock held elsewhere) stalls every connection of that loop:
	// with the default, hand blocking work to your own goroutine and Send
	// from there (Send is safe from any goroutine), or set this field.
	// With the pool, the callbacks of one connection still never run
	// concurrently and reading pauses while its task runs. EngineStd
	// always runs callbacks on the connection's own goroutine.
	CallbackGoroutines int
	// NoIOUring turns off EngineEpoll's io_uring send path. By default
	// each event loop has an io_uring ring and writes what other
	// goroutines queued for many connections at once (a fan-out: a
	// group's members, a broadcast) as batches of up to 256 sends, one
	// io_uring_enter each, instead of one write(2) per connection
	// (bench/README.md, "io_uring"). Where io_uring is not allowed
	// (kernel.io_uring_disabled, a seccomp filter) the loops write with
	// write(2), as they do with this set.
	NoIOUring bool

	// IdleTimeout, when > 0, closes a stream connection that has received
	// nothing for this long, as Close does (what is queued is written
	// first). A connection whose reading is paused (PauseRecv) or whose
	// callback is running is not idle, unless it is paused with output
	// of which nothing could be written for IdleTimeout (a stream or a
	// download to a peer that stopped reading): that one is destroyed
	// IdleTimeout after its output stopped moving (as SendTimeout does
	// for every connection, when that is shorter). (A peer that reads
	// only a small part of the socket's send buffer per IdleTimeout may
	// look stalled too: the kernel reports room to write only once a good
	// part of it is free.) Traffic does not reschedule anything: a read
	// costs one clock read and one atomic store, and the connection's
	// timer, which lives in the connection, is re-armed at most once per
	// period. Off by default.
	IdleTimeout time.Duration
	// Heartbeat, when > 0 and HeartbeatData is not empty, sends
	// HeartbeatData as is (not through the protocol: give it the wire
	// form, a ping frame, a "\n") on a stream connection that has neither
	// received nor sent anything for this long, and again every Heartbeat
	// while it stays silent. Nothing is sent while output is queued. A
	// peer that answers heartbeats keeps IdleTimeout from closing it.
	Heartbeat     time.Duration
	HeartbeatData []byte
	// MaxInputMemory caps the memory the server's stream connections hold
	// together for input that is not yet a whole packet: their input
	// buffers while a packet is partly read (a request body, a frame, a
	// line), and what their protocols hold besides (WebSocket fragments,
	// through protocols.InputHolder). A worker serves one listener with
	// one Server, so this is a per-worker budget. When it is spent, the
	// connections holding the most are shed: closed after their
	// protocol's reply (protocols.OverloadReplier: HTTP answers 503), their
	// input dropped, counted in Stats.InputShed and logged once per
	// interval. Connections that send whole packets, however many, cost
	// the budget nothing. A packet larger than the budget is always
	// refused, so keep it above MaxPackageSize (several times: it is
	// shared). Default DefaultMaxInputMemory (64 MiB); a negative value
	// removes the cap.
	MaxInputMemory int

	// Wheel runs the connections' timers (the timeouts, Heartbeat, and the
	// bounded waits of closing connections for slow peers); it must be
	// running (Start) while the server serves: pass the worker's wheel.
	// When nil, the Server makes its own, runs it from the first Serve on
	// and stops it in Close.
	Wheel *timer.Wheel

	// Read and send timeouts of stream connections, on by default: a zero
	// field takes its Default value, a negative one turns the rule off.
	// The package doc's Timeouts section has the rules and the phases
	// they apply to; a Client applies none of them.

	// HeaderTimeout bounds a request head (PhaseHead: an HTTP request's,
	// a WebSocket opening handshake), from its first byte, or from the
	// accept for a connection's first request (default
	// DefaultHeaderTimeout, 30 s). Past it HTTP answers 408 and closes.
	HeaderTimeout time.Duration
	// BodyTimeout closes a connection whose partly received packet (an
	// HTTP body, a WebSocket frame, a text line: PhaseBody) has received
	// nothing for this long (default DefaultBodyTimeout, 60 s); HTTP
	// answers 408 first.
	BodyTimeout time.Duration
	// BodyMinRate, in bytes per second, closes a connection whose partly
	// received packet brings less than BodyMinRate × BodyTimeout bytes in
	// a BodyTimeout, measured window after window from the start of the
	// body, so that a byte now and then is not progress (default
	// DefaultBodyMinRate, 1 KiB/s). It applies only with BodyTimeout.
	BodyMinRate int
	// KeepAliveTimeout closes a connection that has waited this long
	// between two requests (PhaseIdle: HTTP keep-alive) (default
	// DefaultKeepAliveTimeout, 75 s). It is silent: no answer is sent.
	KeepAliveTimeout time.Duration
	// SendTimeout destroys a connection whose queued output has waited
	// this long for a peer that takes none of it (default
	// DefaultSendTimeout, 60 s): a peer that stops reading, whatever the
	// protocol and phase. Every write that moves output starts the wait
	// again. (The kernel reports room to write only once a good part of
	// the socket's send buffer is free, so a peer that reads only a
	// little per SendTimeout may look stalled too.)
	SendTimeout time.Duration

	// AcceptShare, when set, balances the connections of the server's
	// stream listeners with the other processes that accept from the same
	// listening socket and publish in the same share, each in its own
	// slot (AcceptSlot, given by whoever made the share). The server takes
	// new connections only while it holds at most its share: the mean of
	// the share's accepting processes times 1+AcceptMargin, plus a slack of
	// 16. Above it, it stops accepting (its event loops take the listener
	// out of their epoll sets; the standard engine stops calling Accept)
	// for 10 ms, then looks again; the connections stay in the one accept
	// queue for the others. A process that finds that nobody accepted
	// anything during its pause (the others are stopped, hung or gone)
	// accepts at once, so the queue is never left unserved; the process
	// with the fewest connections is never above its share. The check
	// costs a few atomic loads per accept. goes' master makes one share
	// per stream listener with more than one worker.
	AcceptShare *AcceptShare
	// AcceptSlot is the server's slot in AcceptShare.
	AcceptSlot int
	// AcceptMargin is how far above the mean, as a fraction of it, a
	// process of an AcceptShare may go before it stops accepting (default
	// DefaultAcceptMargin, 0.1); a negative value turns balancing off.
	AcceptMargin float64
	// AccessLogDropped, when set, reports the count of the server's access
	// log entries dropped so far (Stats.AccessLogDropped).
	AccessLogDropped func() uint64
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c *Config) WithDefaults() Config {
	cfg := *c
	if cfg.Transport == "" {
		cfg.Transport = "tcp"
	}
	if cfg.MaxPackageSize <= 0 {
		cfg.MaxPackageSize = DefaultMaxPackageSize
	}
	if cfg.MaxSendBufferSize <= 0 {
		cfg.MaxSendBufferSize = DefaultMaxSendBufferSize
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = DefaultReadBufferSize
	}
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	cfg.HeaderTimeout = orDefault(cfg.HeaderTimeout, DefaultHeaderTimeout)
	cfg.BodyTimeout = orDefault(cfg.BodyTimeout, DefaultBodyTimeout)
	cfg.KeepAliveTimeout = orDefault(cfg.KeepAliveTimeout, DefaultKeepAliveTimeout)
	cfg.SendTimeout = orDefault(cfg.SendTimeout, DefaultSendTimeout)
	if cfg.BodyMinRate == 0 {
		cfg.BodyMinRate = DefaultBodyMinRate
	}
	switch {
	case cfg.MaxInputMemory == 0:
		cfg.MaxInputMemory = DefaultMaxInputMemory
	case cfg.MaxInputMemory < 0:
		cfg.MaxInputMemory = math.MaxInt
	}
	return cfg
}

// orDefault is d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Stats are a server's counters. Every field is read atomically.
type Stats struct {
	Connections  int64  // open now
	Accepted     uint64 // since start
	Requests     uint64 // messages delivered to OnMessage
	BytesIn      uint64
	BytesOut     uint64
	Errors       uint64 // protocol errors, dropped sends, panics
	Writes       uint64 // writes to stream sockets: pipelined answers share one
	IOUringSends uint64 // of Writes, those sent in io_uring batches (Config.NoIOUring)

	// BadInput, Panics and SendBufferFull are parts of Errors: input the
	// protocol refused (a connection closed, a datagram dropped), panics
	// recovered from callbacks, sends dropped at MaxSendBufferSize.
	BadInput, Panics, SendBufferFull uint64

	// Closed counts the connections closed by a timeout rule since
	// start, by reason: the Closed... constants (ClosedHeaderTimeout,
	// ...). Reasons that never fired are absent; nil when none did.
	Closed map[string]uint64

	// InputShed counts the connections shed because MaxInputMemory was
	// spent; InputHeld is the memory held for unfinished input now.
	InputShed uint64
	// AcceptPauses counts the times the server stopped accepting for a
	// moment, above its share of an AcceptShare (Config.AcceptMargin).
	AcceptPauses uint64
	// AccessLogDropped counts the access log entries dropped because the
	// log's queue was full (Config.AccessLogDropped).
	AccessLogDropped uint64

	// LoopBusy is the time the server's event loops have spent handling
	// events rather than waiting for them, summed over the loops (two
	// clock reads per loop pass); 0 on the standard engine, which has no
	// loops.
	LoopBusy  time.Duration
	InputHeld int64
	// TLSConnections are the TLS connections open now whose handshake
	// has completed, on the event loops (0 on the standard engine, which
	// does not see handshakes: a TLS listener of its own counts them).
	TLSConnections int64
}

// Info describes one open connection, for listings.
type Info struct {
	ID         uint64
	Transport  string
	Protocol   string
	LocalAddr  string
	RemoteAddr string
	BytesIn    uint64
	BytesOut   uint64
	SendBuffer int
	CreatedAt  time.Time
	State      string // "established", "paused", "closing"
	Engine     string // EngineEpoll or EngineStd
}

// Errors of the engines.
var (
	// ErrEngineUnsupported: Config.Engine names an engine that cannot serve
	// this listener on this platform.
	ErrEngineUnsupported = errors.New("connections: engine cannot serve this listener here")
	// ErrIncompleteDatagram: a datagram ended inside a packet.
	ErrIncompleteDatagram = errors.New("connections: incomplete packet in datagram")
	// ErrProtocolMisbehaved: a protocol reported a packet longer than the
	// bytes it was given.
	ErrProtocolMisbehaved = errors.New("connections: protocol reported more bytes than buffered")
)

// StateReleaser is an optional interface of a protocols.Protocol. When a
// stream connection has delivered every packet it received and holds no
// partial one, the runtime calls ReleaseState, on the connection's
// dispatcher and with its send lock held (as Encode: it must not call
// Send or Close), so that the protocol can give per-connection state back
// to a pool while the connection idles and take it again in its next
// Input. It is not called while the state is nil. An idle connection then
// costs only the runtime's few hundred bytes.
type StateReleaser interface {
	ReleaseState(c protocols.Conn)
}

// Reasons a connection is closed by a timeout rule: the keys of
// Stats.Closed (and of a worker's closed counts in status).
const (
	ClosedHeaderTimeout    = "header_timeout"    // HeaderTimeout: a head not complete in time
	ClosedBodyTimeout      = "body_timeout"      // BodyTimeout: a partial packet without progress
	ClosedBodyMinRate      = "body_min_rate"     // BodyMinRate: a partial packet arriving too slowly
	ClosedKeepAliveTimeout = "keepalive_timeout" // KeepAliveTimeout: no next request
	ClosedSendTimeout      = "send_timeout"      // SendTimeout: a peer that takes no output
	ClosedIdleTimeout      = "idle_timeout"      // IdleTimeout: nothing received
)

// DefaultMaxInputMemory is the default of Config.MaxInputMemory: 64 MiB
// per Server, that is per worker process.
//
// nginx keeps at most client_body_buffer_size (16 KiB) of a request body
// in memory and writes the rest to a temporary file; HAProxy holds two
// tune.bufsize buffers (16 KiB each) per connection, about 125 MiB per
// process at the maxconn of 4000 many configs set. goes hands OnMessage a
// whole packet, so its budget must hold several of the largest packets at
// once: 64 MiB is six 10 MiB packets (DefaultMaxPackageSize) arriving at
// the same time, or 4096 connections with a 16 KiB partial packet each,
// HAProxy's figure for its default buffers. Uploads larger than what a
// handler wants to hold go to it in pieces instead (http.Protocol's
// StreamBody), which this budget does not count.
const DefaultMaxInputMemory = 64 << 20

// ErrInputBudget is the error of a connection shed because its server's
// budget for unfinished input (Config.MaxInputMemory) is spent and it held
// the most. It wraps protocols.ErrOverloaded.
var ErrInputBudget = fmt.Errorf("connections: connection shed: %w", protocols.ErrOverloaded)

// DefaultAcceptMargin is Config.AcceptMargin's default: a process takes
// new connections while it holds at most 10 % (plus a slack of 16) more
// than the mean of the processes that share its listener.
const DefaultAcceptMargin = 0.1
