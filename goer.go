// Package goes is a socket-server framework in the style of PHP's
// workerman: a few lines of Go give a master process that forks and
// supervises workers sharing the listening sockets, a control channel and
// the command-line verbs start, stop, restart, reload, status and
// connections, with TCP, UDP, Unix and TLS transports and pluggable
// application protocols.
//
//	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
//	goer.OnMessage = func(c connections.Connection, data []byte) {
//		c.Send("hello, goer", false)
//	}
//	goer.RunAll()
//
// RunAll reads the verb from the command line:
//
//	prog start [-d]          serve (foreground, or -d as a daemon)
//	prog stop [-g]           stop (-g: let connections finish)
//	prog restart [-d] [-g]
//	prog reload [-g]         upgrade to the binary on disk, no connection lost
//	prog status [-d] [--json]
//	prog connections [--json]
//
// with --run-dir DIR and --config FILE (see Config) on every verb. One
// program serves several listeners with goes.RunAll(web, admin, ...), one
// master for all of them; Run returns an error instead of exiting, and a
// Runner builds its Goers from the config file (as goes-master does).
//
// With a cluster (Goer.Cluster, or the config's cluster section) any
// worker reaches any connection, user or group, on this machine or others
// sharing a NATS: SendToConnection, SendToUser, SendToGroup, Broadcast,
// BindUser, JoinGroup, UserOnline, GroupCount, ConnectionCount (see
// ClusterConfig and package cluster).
//
// Outgoing connections (workerman's AsyncTcpConnection) come from
// Goer.NewAsyncConnection in a worker and NewClient anywhere. The
// protocol URIs (text://, frame://, ws://, wss://) are mapped here, one
// level above the connection runtime, whose connections.NewClient takes
// transport URIs (tcp://, tls://, unix://, udp://) and knows protocols
// only through package protocols' interfaces.
package goes

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/cluster"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/scheme"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

// Goer is one listener and the workers that serve it. Settings are plain
// fields whose zero value works; set them before RunAll.
//
// Callbacks run in the worker processes. The connection callbacks
// (OnConnect, OnMessage, OnClose, OnError, OnBufferFull, OnBufferDrain)
// of one connection never run concurrently with each other; those of
// different connections may. By default they run on the event loop that
// serves the connection (TCP and Unix listeners on Linux: a few loops per
// worker, each serving many connections), so they must not block: a
// callback that waits (a database query, a sleep, a lock held elsewhere)
// stalls every connection of its loop. Hand blocking work to a goroutine
// of your own and Send from there (Send is safe from any goroutine and
// never blocks), or set CallbackGoroutines to run the callbacks on a pool
// of goroutines instead. TLS connections run on the loops too (Linux;
// elsewhere on a goroutine each); the datagrams of a UDP listener
// are read and handled by one goroutine per worker, so a blocking
// OnMessage there holds up the worker's datagrams either way.
type Goer struct {
	// Name shows in status and logs (default: the listen address).
	Name string
	// Addr is where to listen: "host:port" for tcp, udp and tls, a path
	// for unix. NewGoer also accepts workerman-style URIs
	// ("http://127.0.0.1:8080", "udp://:9000", "unix:///run/app.sock").
	Addr string
	// Transport is "tcp" (default), "udp", "unix" or "tls".
	Transport string
	// Protocol frames the bytes; nil delivers raw reads and sends raw bytes.
	Protocol protocols.Protocol
	// Count is the number of worker processes (default: number of CPUs).
	Count int

	// MaxPackageSize caps one packet per connection (default 10 MiB).
	MaxPackageSize int
	// MaxSendBufferSize caps the bytes queued per connection before
	// OnBufferFull (default 1 MiB).
	MaxSendBufferSize int
	// IdleTimeout closes a connection that received nothing for this long
	// (default: never), whatever its protocol and phase.
	IdleTimeout time.Duration
	// Heartbeat, when > 0 and HeartbeatData is not empty, sends
	// HeartbeatData as is (the wire form: a WebSocket ping frame, a "\n")
	// on a connection that has neither received nor sent anything for
	// this long, and again every Heartbeat while it stays silent (default:
	// never). A peer that answers heartbeats keeps IdleTimeout from
	// closing it.
	Heartbeat time.Duration
	// HeartbeatData is what Heartbeat sends.
	HeartbeatData []byte
	// CallbackGoroutines, when > 0, runs the connection callbacks of TCP
	// and Unix listeners on a pool of at most that many goroutines per
	// worker instead of on the event loop, so that a callback that
	// blocks stalls only its own connection (whose reading pauses until
	// it returns) while the loop serves the others; the callbacks of one
	// connection still never overlap. Default 0: callbacks run on the
	// loop, the fastest way, and must not block (see Goer). Config file:
	// "callback_goroutines".
	CallbackGoroutines int
	// NoIOUring turns off the event loops' io_uring send path: by default
	// a loop sends what other goroutines queued for many connections at
	// once (SendToGroup, Broadcast, a Fanout) as batches of io_uring sends
	// where the kernel allows io_uring, and with write(2) elsewhere (see
	// connections.Config.NoIOUring). Config file: "no_io_uring".
	NoIOUring bool
	// StopTimeout bounds a graceful stop or reload drain (default 30 s).
	StopTimeout time.Duration

	// Read and send timeouts (issue 12): on by default, so that a
	// listener on the internet is safe as it is; zero means the default,
	// a negative value turns the rule off. The rules and the phases they
	// apply to are in package connections (Config and the Timeouts
	// section of its doc); config file keys in parentheses.

	// AccessLog, for an HTTP Goer (Protocol an *http.Protocol), is the
	// path of its access log: one JSON line per answered request with
	// time, remote, method, path, status, bytes_in, bytes_out,
	// duration_ms and worker, written by a goroutine of each worker off
	// the event loop (a bounded queue; lines that find it full are
	// dropped and counted, goes_access_log_dropped_total) and reopened
	// on USR1 ("access_log"; off when empty). It sets the Protocol's
	// AccessLog in each worker.
	AccessLog string

	// HeaderTimeout bounds a request head: an HTTP request's (answered
	// 408, then closed) or a WebSocket opening handshake, from its first
	// byte or, for a connection's first request, from the accept
	// (default 30 s; "header_timeout").
	HeaderTimeout time.Duration
	// BodyTimeout closes a connection whose partly received packet (an
	// HTTP body, a WebSocket frame, a text line) has received nothing for
	// this long; HTTP answers 408 first (default 60 s; "body_timeout").
	BodyTimeout time.Duration
	// BodyMinRate, in bytes per second, closes a connection whose partly
	// received packet brings less than that, measured over each
	// BodyTimeout: a byte now and then is not progress (default 1024;
	// "body_min_rate").
	BodyMinRate int
	// KeepAliveTimeout closes an HTTP connection idle this long between
	// two requests (default 75 s; "keepalive_timeout"). WebSocket (after
	// the upgrade), text, frame and raw connections have no idle limit
	// by default: see IdleTimeout.
	KeepAliveTimeout time.Duration
	// SendTimeout destroys a connection whose queued output has waited
	// this long for a peer that takes none of it, whatever the protocol
	// (default 60 s; "send_timeout").
	SendTimeout time.Duration

	// Memory of unfinished input (issue 12).

	// MaxInputMemory caps, per worker, the memory its connections hold
	// together for input that is not yet a whole packet: partial HTTP
	// bodies, frames and lines still arriving, WebSocket fragments.
	// When it is spent the connections holding the most are shed (HTTP
	// answers 503 first), counted (status: input_shed) and logged once
	// per interval, so that clients sending whole requests keep being
	// served. Default connections.DefaultMaxInputMemory (64 MiB); -1: no
	// cap. Config file: "max_input_memory" (bytes). Uploads larger than
	// what a handler should hold go to it in pieces instead
	// (http.Protocol.StreamBody), outside this budget.
	MaxInputMemory int
	// Version is the program's version, shown by --version and status
	// (with several Goers the first non-empty one counts; default "dev").
	Version string
	// Admin is the host:port of the master's admin HTTP endpoint:
	// Prometheus /metrics, /healthz, /readyz and /debug/pprof/ of the
	// master and of any worker (?worker=ID), for the whole program (with
	// several Goers the first non-empty one counts; default: none; the
	// config's "admin" overrides it). No authentication: use loopback.
	Admin string

	// Cluster gives this Goer's workers a cluster Node (SendToUser,
	// JoinGroup and the other cluster methods) even when the config has
	// no cluster section; the master then embeds NATS (see ClusterConfig).
	Cluster bool

	// CertFile and KeyFile are the PEM certificate and key for tls
	// (https, wss): the default certificate.
	CertFile, KeyFile string
	// Certificates are more certificates for tls, chosen by the client's
	// SNI (after CertFile's; the first is the default without a match).
	Certificates []CertFiles
	// MinTLSVersion is the lowest TLS version served (default
	// DefaultMinTLSVersion, 1.2; ParseTLSVersion).
	MinTLSVersion uint16
	// ClientCAFile, when set, is a PEM file of CAs: a client must present
	// a certificate they sign.
	ClientCAFile string
	// TLSConfig, when set, is used for tls instead of the fields above.
	TLSConfig *tls.Config
	// TLSHandshakeTimeout bounds a TLS handshake, from the accept (the
	// ClientHello's arrival included) to its end; past it the connection
	// is closed (default connections.DefaultTLSHandshakeTimeout, 10 s; it
	// cannot be turned off: "tls_handshake_timeout"). MaxTLSHandshakes
	// bounds, per worker, the handshakes in progress past their
	// ClientHello; a connection beyond it is closed at once (default
	// connections.DefaultMaxTLSHandshakes, 1,024; -1: no bound;
	// "max_tls_handshakes"). Both apply where the event loops serve TLS
	// (Linux); elsewhere HeaderTimeout bounds a handshake.
	TLSHandshakeTimeout time.Duration
	MaxTLSHandshakes    int

	// Worker recycling (workerman's max_request): a worker is replaced
	// under the same id, through the same drain as a reload, once it has
	// served about MaxRequests requests (messages, any protocol) or its
	// resident memory exceeds about MaxMemory bytes. Each worker draws its
	// limits within ±10% of these (worker.RecycleJitter), so the workers
	// of a listener do not recycle together; the replacement accepts
	// before the old worker drains. Default 0: never. Config file:
	// "max_requests", "max_memory"; status shows the recycles.
	MaxRequests uint64
	MaxMemory   uint64

	// AcceptMargin balances the connections of a stream listener's
	// workers, which share one accept queue: a worker takes new
	// connections only while it holds at most the workers' mean times
	// 1+AcceptMargin (plus 16); above that it stops accepting for 10 ms
	// and leaves the queue to the others (see connections.Config
	// .AcceptShare). Default 0: connections.DefaultAcceptMargin (0.1); a
	// negative value turns balancing off. It applies with Count > 1 under
	// RunAll. Config file: "accept_margin".
	AcceptMargin float64

	// OnWorkerStart runs in each worker before it accepts, on the
	// worker's main goroutine: no connection callback runs yet. It may
	// block (open a database, warm a cache), but the master counts a
	// worker that does not report ready within ready_timeout as failed.
	OnWorkerStart func(g *Goer)
	// OnConnect runs when a stream connection is accepted, on its event
	// loop (or the callback pool): it must not block (see Goer).
	OnConnect func(c connections.Connection)
	// OnMessage runs for every message; data is valid until it returns.
	// It runs on the connection's event loop (or the callback pool) and
	// must not block: see Goer and CallbackGoroutines.
	OnMessage func(c connections.Connection, data []byte)
	// OnClose runs when a stream connection is gone, on its event loop
	// (or the callback pool); it must not block.
	OnClose func(c connections.Connection)
	// OnError runs when a send is dropped, input is malformed or a
	// callback panics: on the connection's event loop, or on the
	// goroutine whose Send failed. It must not block.
	OnError func(c connections.Connection, err error)
	// OnBufferFull runs when a send buffer reaches MaxSendBufferSize, on
	// the goroutine that sent; it must not block.
	OnBufferFull func(c connections.Connection)
	// OnBufferDrain runs when a full send buffer has been written out, on
	// the connection's event loop (or the callback pool); it must not
	// block.
	OnBufferDrain func(c connections.Connection)
	// OnWorkerStop runs in each worker when it stops, on the worker's
	// main goroutine once its connections are closed (no connection
	// callback runs any more). It may block; the worker exits when it
	// returns.
	OnWorkerStop func(g *Goer)
	// OnWorkerReload runs in each worker of the old generation when a
	// reload starts draining it, on the worker's main goroutine while its
	// connections are still served: it runs concurrently with their
	// callbacks (share state with a lock) and must not block, since the
	// worker answers its master only after it.
	OnWorkerReload func(g *Goer)

	err      error          // from NewGoer's parsing, reported by validate
	workerID int            // set in a worker process
	wheel    *timer.Wheel   // the worker's timers; nil outside a worker
	node     *cluster.Node  // the worker's cluster Node; nil without a cluster
	idBase   uint64         // the worker's route, or-ed into connection ids
	log      zerolog.Logger // the worker's logger
}

// AddTimer runs fn after interval and, when persistent, every interval
// after that, on the worker's timer wheel (workerman's Timer::add). It
// returns the id for DelTimer. Call it in a worker: from OnWorkerStart or
// any callback; it panics in the master, where no timer runs. Safe for
// concurrent use.
func (g *Goer) AddTimer(interval time.Duration, fn func(), persistent bool) timer.ID {
	if g.wheel == nil {
		panic("goes: AddTimer outside a worker (call it from OnWorkerStart or a callback)")
	}
	return g.wheel.Add(interval, fn, persistent)
}

// DelTimer cancels the timer id and reports whether that prevented a call
// (see timer.Wheel.Del). Safe for concurrent use.
func (g *Goer) DelTimer(id timer.ID) bool {
	if g.wheel == nil {
		return false
	}
	return g.wheel.Del(id)
}

// Timers is the worker's timer wheel (nil outside a worker), for the
// Timer and Idle types of package timer.
func (g *Goer) Timers() *timer.Wheel { return g.wheel }

// WorkerID is the worker's index among this Goer's workers, 0..Count-1,
// stable across restarts of the worker (workerman's $worker->id). It is
// meaningful in the callbacks, which run in worker processes.
func (g *Goer) WorkerID() int { return g.workerID }

// Transports.
const (
	TransportTCP  = "tcp"
	TransportUDP  = "udp"
	TransportUnix = "unix"
	TransportTLS  = "tls"
)

// ErrBadAddress is returned for a listen address goes cannot use.
var ErrBadAddress = errors.New("goes: bad listen address")

// NewGoer returns a Goer listening on addr with protocol (nil for raw
// bytes) over transport ("" or "tcp", "udp", "unix", "tls"). addr may be
// a workerman-style URI whose scheme names a transport or protocol
// ("http://", "websocket://", "ws://", "text://", "frame://", "tcp://",
// "udp://", "unix://", "tls://", "ssl://": the table of internal/scheme);
// an explicit protocol or transport argument wins over the scheme. A bad
// address is reported by RunAll.
func NewGoer(addr string, protocol protocols.Protocol, transport string) *Goer {
	g := &Goer{Addr: addr, Protocol: protocol, Transport: transport}
	if name, rest, ok := strings.Cut(addr, "://"); ok {
		g.Addr = rest
		t, p, ok := scheme.Listen(name)
		if !ok {
			g.err = fmt.Errorf("%w: unknown scheme %q", ErrBadAddress, name)
		}
		if g.Transport == "" {
			g.Transport = t
		}
		if g.Protocol == nil {
			g.Protocol = p
		}
	}
	if g.Transport == "" {
		g.Transport = TransportTCP
	}
	return g
}

// validate reports a setting that cannot work.
func (g *Goer) validate() error {
	if g.err != nil {
		return g.err
	}
	switch g.Transport {
	case TransportTCP, TransportUDP, TransportUnix:
	case TransportTLS:
		if g.TLSConfig == nil && !g.hasCerts() {
			return fmt.Errorf("goes: %s: tls needs CertFile and KeyFile, Certificates or TLSConfig", g.Addr)
		}
		if err := g.tlsFiles().CheckLimits(); err != nil {
			return fmt.Errorf("goes: %s: %w", g.Addr, err)
		}
	default:
		return fmt.Errorf("%w: unknown transport %q", ErrBadAddress, g.Transport)
	}
	if name, _, ok := strings.Cut(g.Addr, "://"); ok {
		return fmt.Errorf("%w: %q has scheme %q (use NewGoer to parse URIs)", ErrBadAddress, g.Addr, name)
	}
	if g.Addr == "" {
		return fmt.Errorf("%w: empty", ErrBadAddress)
	}
	return nil
}

// name is the Goer's display name.
func (g *Goer) name() string {
	if g.Name != "" {
		return g.Name
	}
	return g.Transport + "://" + g.Addr
}

// connConfig is the connection runtime's view of the Goer. With a cluster
// Node, connections join it before OnConnect and leave it after OnClose.
func (g *Goer) connConfig() connections.Config {
	onConnect, onClose := g.OnConnect, g.OnClose
	if n := g.node; n != nil {
		onConnect = func(c connections.Connection) {
			n.Add(c) // fails only once the Node closes, as the worker stops
			if g.OnConnect != nil {
				g.OnConnect(c)
			}
		}
		onClose = func(c connections.Connection) {
			if g.OnClose != nil {
				g.OnClose(c)
			}
			n.Remove(c)
		}
	}
	return connections.Config{
		Protocol:           g.Protocol,
		Transport:          g.Transport,
		MaxPackageSize:     g.MaxPackageSize,
		MaxSendBufferSize:  g.MaxSendBufferSize,
		IdleTimeout:        g.IdleTimeout,
		Heartbeat:          g.Heartbeat,
		HeartbeatData:      g.HeartbeatData,
		CallbackGoroutines: g.CallbackGoroutines,
		NoIOUring:          g.NoIOUring,
		MaxInputMemory:     g.MaxInputMemory,
		Wheel:              g.wheel, // the worker's, set before connConfig
		// Read and send timeouts (zero: connections' defaults).
		HeaderTimeout:    g.HeaderTimeout,
		BodyTimeout:      g.BodyTimeout,
		BodyMinRate:      g.BodyMinRate,
		KeepAliveTimeout: g.KeepAliveTimeout,
		SendTimeout:      g.SendTimeout,
		AcceptMargin:     g.AcceptMargin,
		Handler: connections.Handler{
			OnConnect:     onConnect,
			OnMessage:     g.OnMessage,
			OnClose:       onClose,
			OnError:       g.OnError,
			OnBufferFull:  g.OnBufferFull,
			OnBufferDrain: g.OnBufferDrain,
		},
	}
}
