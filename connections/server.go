package connections

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

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
	// when the listener is a TLSListener (epoll_tls_linux.go).
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

func (c *Config) withDefaults() Config {
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

// Server runs the connections of listeners that share one Config.
// Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	log zerolog.Logger

	seq      atomic.Uint32
	draining atomic.Bool
	closed   atomic.Bool
	accepted atomic.Uint64
	ctr      counters // the standard engine's and UDP's
	errs     atomic.Uint64
	open     atomic.Int64
	badInput atomic.Uint64 // part of errs, as are panics and bufFull
	panics   atomic.Uint64
	bufFull  atomic.Uint64
	wg       sync.WaitGroup // the standard engine's connection and writer goroutines (a Client's too)
	doneCh   chan struct{}  // closed when the last connection is gone after Drain
	doneOnce sync.Once
	// acceptWG counts the standard engine's accept loops: Drain waits for
	// them so that a connection accepted as the listener closed is counted
	// before Drain counts the open connections.
	acceptWG   sync.WaitGroup
	stopAccept chan struct{} // closed by Drain: ends accept back-offs
	mu         sync.Mutex
	settled    bool // under mu: Drain has closed the listeners and every hand-off is done
	listeners  map[closer]struct{}
	bufs       bufferPool

	// std is the standard engine; engines are std and the platform's
	// event-loop engines (engineTable). Both are set by NewServer and
	// never change.
	std        fallbackEngine
	engines    []engine
	releaser   StateReleaser // cfg.Protocol's, if it has one
	stallAfter time.Duration // event-loop watchdog period (tests shorten it)

	// Connection timers (timers.go); timed is false when there are none.
	timed          bool
	idleNs, beatNs int64
	firstTimer     time.Duration // when a new connection's timer first fires
	epoch          time.Time     // the zero of clock
	wheel          *timer.Wheel
	ownWheel       bool        // wheel is the server's: started on demand, stopped by Close
	wheelOn        atomic.Bool // the owned wheel runs; changes under mu

	// The timeouts, in nanoseconds (0: off), the body's minimum rate in
	// bytes per second, the period at which a connection's timer looks
	// when no deadline is nearer (the shortest rule), and the protocol's
	// Phaser, if it has one.
	headNs, bodyNs, keepNs, sendNs int64
	minRate                        int64
	checkNs                        int64
	phaser                         protocols.Phaser
	cuts                           [numCutReasons]cutCounter
	drops                          cutCounter // sends dropped at MaxSendBufferSize, for the log (noteDrop)
	bad                            cutCounter // connections closed for bad input, for the log (noteBadInput)

	pipes *pipeTable // Pipe's links of this server's connections

	// The input memory budget (budget.go) and cfg.Protocol's optional
	// interfaces it uses.
	budget   *inputBudget
	sizer    protocols.PacketSizer
	overload protocols.OverloadReplier

	// bal balances accepts with the other processes of cfg.AcceptShare
	// (balance.go); nil without.
	bal *balancer
	// acceptPauses counts the accept pauses of bal (Stats.AcceptPauses).
	acceptPauses atomic.Uint64
}

// closer is what the server closes on Drain: a listener or a packet conn.
type closer interface{ Close() error }

// NewServer returns a server for cfg.
func NewServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	pipes := new(pipeTable)
	cfg.Handler = pipes.wrap(cfg.Handler)
	releaser, _ := cfg.Protocol.(StateReleaser)
	s := &Server{
		releaser:   releaser,
		pipes:      pipes,
		cfg:        cfg,
		log:        cfg.Logger,
		doneCh:     make(chan struct{}),
		stopAccept: make(chan struct{}),
		listeners:  make(map[closer]struct{}),
		epoch:      time.Now(),
	}
	s.sizer, _ = cfg.Protocol.(protocols.PacketSizer)
	s.overload, _ = cfg.Protocol.(protocols.OverloadReplier)
	s.budget = newInputBudget(s, cfg.MaxInputMemory)
	s.bal = newBalancer(&cfg)
	s.std, s.engines = engineTable(s)
	if cfg.IdleTimeout > 0 {
		s.idleNs = int64(cfg.IdleTimeout)
	}
	if cfg.Heartbeat > 0 && len(cfg.HeartbeatData) > 0 {
		s.beatNs = int64(cfg.Heartbeat)
	}
	s.phaser, _ = cfg.Protocol.(protocols.Phaser)
	s.headNs = max(int64(cfg.HeaderTimeout), 0)
	s.bodyNs = max(int64(cfg.BodyTimeout), 0)
	s.keepNs = max(int64(cfg.KeepAliveTimeout), 0)
	s.sendNs = max(int64(cfg.SendTimeout), 0)
	if s.bodyNs > 0 {
		s.minRate = max(int64(cfg.BodyMinRate), 0)
	}
	for _, d := range []int64{s.idleNs, s.beatNs, s.headNs, s.bodyNs, s.keepNs, s.sendNs} {
		if d > 0 && (s.checkNs == 0 || d < s.checkNs) {
			s.checkNs = d
		}
	}
	if s.checkNs > 0 {
		s.timed = true
		s.firstTimer = time.Duration(s.checkNs)
	}
	s.wheel = cfg.Wheel
	if s.wheel == nil {
		s.wheel = timer.New(timer.Options{Logger: cfg.Logger})
		s.ownWheel = true
	}
	return s
}

// Serve accepts connections from ln until Drain, Shutdown or Close, and
// returns ErrServerClosed then, or the accept error that ended it; ln is
// closed then. Called after Drain, it closes ln and returns ErrServerClosed
// at once.
// Temporary accept errors (EMFILE) back off from 5 ms to 1 s. The engine
// is chosen by Config.Engine; with the default, TCP and Unix listeners are
// served by event loops on Linux and everything else by a goroutine per
// connection. Serve may be called for several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	s.startWheel() // closing connections' deadlines run on it
	e := s.pickEngine(ln)
	if e == nil {
		return fmt.Errorf("connections: engine %q for %T: %w", s.cfg.Engine, ln, ErrEngineUnsupported)
	}
	if s.bal != nil && !s.draining.Load() {
		s.bal.join(s.open.Load())
	}
	return e.serve(ln)
}

// track registers a listener or packet conn for Drain to close; once the
// server drains it closes l instead and returns false. accepts is true for
// an accept loop that Drain must wait for (the standard engine's): the
// caller then calls s.acceptWG.Done when it returns. An engine whose
// listener's Close waits for the accepts in progress passes false.
func (s *Server) track(l closer, accepts bool) bool {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		l.Close()
		return false
	}
	defer s.mu.Unlock()
	s.listeners[l] = struct{}{}
	if accepts {
		s.acceptWG.Add(1)
	}
	return true
}

func (s *Server) untrack(l closer) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

// connGone counts a connection out once its OnClose has run.
func (s *Server) connGone() {
	s.mu.Lock()
	n := s.open.Add(-1)
	settled := s.settled
	s.mu.Unlock()
	if n == 0 && settled {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
}

// packetSize asks the protocol how long the packet at the start of buf
// will be (protocols.PacketSizer); 0 when it cannot tell.
func (s *Server) packetSize(c Connection, buf []byte) int {
	if s.sizer == nil {
		return 0
	}
	return s.sizer.PacketSize(c, buf)
}

func (s *Server) nextID() uint64 { return s.cfg.IDBase | uint64(s.seq.Add(1)) }

// Drain stops accepting: listeners and packet conns passed to Serve and
// ServePacket are closed, and every connection reports Draining, so
// keep-alive protocols tell their peers to go. Open connections stay.
// When Drain returns, every connection accepted before the listeners
// closed is counted in Stats().Connections and listed: none is accepted
// afterwards, and Done is closed once they are all gone.
func (s *Server) Drain() {
	s.mu.Lock()
	if !s.draining.Load() {
		s.draining.Store(true)
		close(s.stopAccept)
		if s.bal != nil {
			s.bal.leave()
		}
	}
	ls := make([]closer, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	// Closing an event-loop listener waits for the accepts in progress
	// to register their connections; the standard engine's accept loops
	// hand theirs over before they return.
	for _, l := range ls {
		l.Close()
	}
	s.acceptWG.Wait()
	s.mu.Lock()
	s.settled = true
	n := s.open.Load()
	s.mu.Unlock()
	if n == 0 {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
	s.wakeEngines()
}

// Done is closed once Drain (or Shutdown, or Close) has run and every
// connection is gone. Safe for concurrent use.
func (s *Server) Done() <-chan struct{} { return s.doneCh }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// Shutdown drains and waits until every connection has closed or ctx is
// done; then it closes what is left (dropping unsent data) and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	select {
	case <-s.doneCh:
		s.Close()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops accepting and destroys every connection at once, then waits
// for their OnClose callbacks and for the engine's goroutines to end.
func (s *Server) Close() error {
	s.Drain()
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	for _, c := range s.all() {
		c.Destroy()
	}
	s.wakeEngines()
	for i := len(s.engines) - 1; i >= 0; i-- {
		s.engines[i].wait() // the event-loop engines, then the standard one
	}
	s.stopWheel()
	return nil
}

// wakeEngines makes every engine look at the server's state.
func (s *Server) wakeEngines() {
	for _, e := range s.engines {
		e.wake()
	}
}

// all returns a snapshot of the open stream connections of every engine.
func (s *Server) all() []Connection {
	var cs []Connection
	for _, e := range s.engines {
		cs = e.appendConns(cs)
	}
	return cs
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.open.Load(),
		Accepted:    s.accepted.Load(),
		Errors:      s.errs.Load(),

		BadInput:       s.badInput.Load(),
		Panics:         s.panics.Load(),
		SendBufferFull: s.bufFull.Load(),
		Closed:         s.closedCounts(),
	}
	st.InputShed = s.budget.shed.Load()
	st.AcceptPauses = s.acceptPauses.Load()
	if s.cfg.AccessLogDropped != nil {
		st.AccessLogDropped = s.cfg.AccessLogDropped()
	}
	st.InputHeld = s.budget.held.Load()
	s.ctr.addTo(&st)
	for _, e := range s.engines {
		e.addStats(&st)
	}
	return st
}

// counters count traffic. Each event loop has its own, so that loops on
// different cores do not write to one cache line for every request.
type counters struct {
	requests     atomic.Uint64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
	writes       atomic.Uint64
	ioUringSends atomic.Uint64
	_            [24]byte // keep the next counters off this cache line
}

func (c *counters) addTo(st *Stats) {
	st.Requests += c.requests.Load()
	st.BytesIn += c.bytesIn.Load()
	st.BytesOut += c.bytesOut.Load()
	st.Writes += c.writes.Load()
	st.IOUringSends += c.ioUringSends.Load()
}

// Connections returns a snapshot of the open stream connections.
func (s *Server) Connections() []Info {
	cs := s.all()
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.(interface{ info() Info }).info())
	}
	return out
}

// Each calls fn for every open stream connection (a snapshot: connections
// may close meanwhile). fn runs on the caller's goroutine.
func (s *Server) Each(fn func(Connection)) {
	for _, c := range s.all() {
		fn(c)
	}
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
