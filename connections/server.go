package connections

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

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
	bal *core.Balancer
	// acceptPauses counts the accept pauses of bal (Stats.AcceptPauses).
	acceptPauses atomic.Uint64
}

// closer is what the server closes on Drain: a listener or a packet conn.
type closer interface{ Close() error }

// NewServer returns a server for cfg.
func NewServer(cfg Config) *Server {
	cfg = cfg.WithDefaults()
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
	s.bal = core.NewBalancer(&cfg)
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
		s.bal.Join(s.open.Load())
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
			s.bal.Leave()
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
