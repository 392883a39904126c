package core

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

// Runtime is what the core and the engines use of a connections.Server:
// its Config, counters, locks, buffer pool, input budget, timers, accept
// balancing and listener set, and its engines. connections.Server holds
// one (never exported on it) and hands it to each engine it makes; the
// Server's methods are the Runtime's (Serve, Drain, Close, Stats, ...).
// Its exported fields are set by NewRuntime and SetEngines and then
// change only as their comments say. Its methods are safe for concurrent
// use.
type Runtime struct {
	Cfg Config
	Log zerolog.Logger

	seq      atomic.Uint32
	Draining atomic.Bool
	Closed   atomic.Bool
	Accepted atomic.Uint64
	Ctr      Counters // the standard engine's and UDP's
	Errs     atomic.Uint64
	Open     atomic.Int64
	BadInput atomic.Uint64 // part of errs, as are panics and bufFull
	Panics   atomic.Uint64
	BufFull  atomic.Uint64
	WG       sync.WaitGroup // the standard engine's connection and writer goroutines (a Client's too)
	doneCh   chan struct{}  // closed when the last connection is gone after Drain
	doneOnce sync.Once
	// AcceptWG counts the standard engine's accept loops: Drain waits for
	// them so that a connection accepted as the listener closed is counted
	// before Drain counts the open connections.
	AcceptWG   sync.WaitGroup
	StopAccept chan struct{} // closed by Drain: ends accept back-offs
	Mu         sync.Mutex
	settled    bool // under mu: Drain has closed the listeners and every hand-off is done
	listeners  map[closer]struct{}
	Bufs       BufferPool

	// Std is the standard engine; engines are std and the platform's
	// event-loop engines (engineTable). Both are set by NewServer and
	// never change.
	Std        FallbackEngine
	engines    []Engine
	releaser   StateReleaser // cfg.Protocol's, if it has one
	StallAfter time.Duration // event-loop watchdog period (tests shorten it)

	// Connection timers (timers.go); timed is false when there are none.
	Timed          bool
	idleNs, beatNs int64
	firstTimer     time.Duration // when a new connection's timer first fires
	expire         func()        // expireTimers: the func of every connection's timer node
	epoch          time.Time     // the zero of clock
	Wheel          *timer.Wheel
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

	// Pipes is connections' table of Pipe links of the server's
	// connections (a *pipeTable there), set once by connections.NewServer.
	Pipes any

	// The input memory budget (budget.go) and cfg.Protocol's optional
	// interfaces it uses.
	Budget   *InputBudget
	sizer    protocols.PacketSizer
	overload protocols.OverloadReplier

	// Bal balances accepts with the other processes of cfg.AcceptShare
	// (balance.go); nil without.
	Bal *Balancer
	// AcceptPauses counts the accept pauses of bal (Stats.AcceptPauses).
	AcceptPauses atomic.Uint64
}

// closer is what the server closes on Drain: a listener or a packet conn.
type closer interface{ Close() error }

// NewRuntime returns the runtime of a server for cfg (its zero fields
// take their defaults); SetEngines gives it its engines before it
// serves.
func NewRuntime(cfg Config) *Runtime {
	cfg = cfg.WithDefaults()
	releaser, _ := cfg.Protocol.(StateReleaser)
	s := &Runtime{
		releaser:   releaser,
		Cfg:        cfg,
		Log:        cfg.Logger,
		doneCh:     make(chan struct{}),
		StopAccept: make(chan struct{}),
		listeners:  make(map[closer]struct{}),
		epoch:      time.Now(),
	}
	s.sizer, _ = cfg.Protocol.(protocols.PacketSizer)
	s.overload, _ = cfg.Protocol.(protocols.OverloadReplier)
	s.Budget = newInputBudget(s, cfg.MaxInputMemory)
	s.Bal = NewBalancer(&cfg)
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
		s.Timed = true
		s.firstTimer = time.Duration(s.checkNs)
		s.expire = s.expireTimers
	}
	s.Wheel = cfg.Wheel
	if s.Wheel == nil {
		s.Wheel = timer.New(timer.Options{Logger: cfg.Logger})
		s.ownWheel = true
	}
	return s
}

// SetEngines gives the runtime its engines: std, the standard one, which
// is also in all, and all of them, in the order EngineAuto prefers them
// after std (connections' engineTable). Called once, before Serve.
func (s *Runtime) SetEngines(std FallbackEngine, all []Engine) {
	s.Std, s.engines = std, all
}

// Serve accepts connections from ln until Drain, Shutdown or Close, and
// returns ErrServerClosed then, or the accept error that ended it; ln is
// closed then. Called after Drain, it closes ln and returns ErrServerClosed
// at once.
// Temporary accept errors (EMFILE) back off from 5 ms to 1 s. The engine
// is chosen by Config.Engine; with the default, TCP and Unix listeners are
// served by event loops on Linux and everything else by a goroutine per
// connection. Serve may be called for several listeners at once.
func (s *Runtime) Serve(ln net.Listener) error {
	s.StartWheel() // closing connections' deadlines run on it
	e := s.pickEngine(ln)
	if e == nil {
		return fmt.Errorf("connections: engine %q for %T: %w", s.Cfg.Engine, ln, ErrEngineUnsupported)
	}
	if s.Bal != nil && !s.Draining.Load() {
		s.Bal.Join(s.Open.Load())
	}
	return e.Serve(ln)
}

// Track registers a listener or packet conn for Drain to close; once the
// server drains it closes l instead and returns false. accepts is true for
// an accept loop that Drain must wait for (the standard engine's): the
// caller then calls s.AcceptWG.Done when it returns. An engine whose
// listener's Close waits for the accepts in progress passes false.
func (s *Runtime) Track(l closer, accepts bool) bool {
	s.Mu.Lock()
	if s.Draining.Load() {
		s.Mu.Unlock()
		l.Close()
		return false
	}
	defer s.Mu.Unlock()
	s.listeners[l] = struct{}{}
	if accepts {
		s.AcceptWG.Add(1)
	}
	return true
}

// Untrack forgets l once its Serve or ServePacket returns.
func (s *Runtime) Untrack(l closer) {
	s.Mu.Lock()
	delete(s.listeners, l)
	s.Mu.Unlock()
}

// ConnGone counts a connection out once its OnClose has run.
func (s *Runtime) ConnGone() {
	s.Mu.Lock()
	n := s.Open.Add(-1)
	settled := s.settled
	s.Mu.Unlock()
	if n == 0 && settled {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
}

// PacketSize asks the protocol how long the packet at the start of buf
// will be (protocols.PacketSizer); 0 when it cannot tell.
func (s *Runtime) PacketSize(c Connection, buf []byte) int {
	if s.sizer == nil {
		return 0
	}
	return s.sizer.PacketSize(c, buf)
}

// NextID returns a new connection id: Config.IDBase | a sequence number.
func (s *Runtime) NextID() uint64 { return s.Cfg.IDBase | uint64(s.seq.Add(1)) }

// Drain stops accepting: listeners and packet conns passed to Serve and
// ServePacket are closed, and every connection reports Draining, so
// keep-alive protocols tell their peers to go. Open connections stay.
// When Drain returns, every connection accepted before the listeners
// closed is counted in Stats().Connections and listed: none is accepted
// afterwards, and Done is closed once they are all gone.
func (s *Runtime) Drain() {
	s.Mu.Lock()
	if !s.Draining.Load() {
		s.Draining.Store(true)
		close(s.StopAccept)
		if s.Bal != nil {
			s.Bal.Leave()
		}
	}
	ls := make([]closer, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.Mu.Unlock()
	// Closing an event-loop listener waits for the accepts in progress
	// to register their connections; the standard engine's accept loops
	// hand theirs over before they return.
	for _, l := range ls {
		l.Close()
	}
	s.AcceptWG.Wait()
	s.Mu.Lock()
	s.settled = true
	n := s.Open.Load()
	s.Mu.Unlock()
	if n == 0 {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
	s.wakeEngines()
}

// Done is closed once Drain (or Shutdown, or Close) has run and every
// connection is gone. Safe for concurrent use.
func (s *Runtime) Done() <-chan struct{} { return s.doneCh }

// Close stops accepting and destroys every connection at once, then waits
// for their OnClose callbacks and for the engine's goroutines to end.
func (s *Runtime) Close() error {
	s.Drain()
	s.Mu.Lock()
	s.Closed.Store(true)
	s.Mu.Unlock()
	for _, c := range s.All() {
		c.Destroy()
	}
	s.wakeEngines()
	for i := len(s.engines) - 1; i >= 0; i-- {
		s.engines[i].Wait() // the event-loop engines, then the standard one
	}
	s.StopWheel()
	return nil
}

// wakeEngines makes every engine look at the server's state.
func (s *Runtime) wakeEngines() {
	for _, e := range s.engines {
		e.Wake()
	}
}

// All returns a snapshot of the open stream connections of every engine.
func (s *Runtime) All() []Connection {
	var cs []Connection
	for _, e := range s.engines {
		cs = e.AppendConns(cs)
	}
	return cs
}

// Stats returns the server's counters.
func (s *Runtime) Stats() Stats {
	st := Stats{
		Connections: s.Open.Load(),
		Accepted:    s.Accepted.Load(),
		Errors:      s.Errs.Load(),

		BadInput:       s.BadInput.Load(),
		Panics:         s.Panics.Load(),
		SendBufferFull: s.BufFull.Load(),
		Closed:         s.closedCounts(),
	}
	st.InputShed = s.Budget.shed.Load()
	st.AcceptPauses = s.AcceptPauses.Load()
	if s.Cfg.AccessLogDropped != nil {
		st.AccessLogDropped = s.Cfg.AccessLogDropped()
	}
	st.InputHeld = s.Budget.held.Load()
	s.Ctr.AddTo(&st)
	for _, e := range s.engines {
		e.AddStats(&st)
	}
	return st
}

// Counters count traffic. Each event loop has its own, so that loops on
// different cores do not write to one cache line for every request.
type Counters struct {
	Requests     atomic.Uint64
	BytesIn      atomic.Uint64
	BytesOut     atomic.Uint64
	Writes       atomic.Uint64
	IOUringSends atomic.Uint64
	_            [24]byte // keep the next counters off this cache line
}

// AddTo adds the counts to st.
func (c *Counters) AddTo(st *Stats) {
	st.Requests += c.Requests.Load()
	st.BytesIn += c.BytesIn.Load()
	st.BytesOut += c.BytesOut.Load()
	st.Writes += c.Writes.Load()
	st.IOUringSends += c.IOUringSends.Load()
}

// Connections returns a snapshot of the open stream connections.
func (s *Runtime) Connections() []Info {
	cs := s.All()
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.(interface{ ConnInfo() Info }).ConnInfo())
	}
	return out
}

// Engines returns the engines SetEngines gave.
func (s *Runtime) Engines() []Engine { return s.engines }
