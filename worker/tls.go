package worker

import (
	"crypto/tls"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/ticketkeys"
	"github.com/goes-project/goes/ipc"
)

// tlsSummaryEvery is how often a worker logs, at info, how many TLS
// handshakes failed since it last said (each is logged at debug).
const tlsSummaryEvery = time.Minute

// TLSCounts are a TLS listener's handshakes since the worker started:
// completed (OK, Resumed of them by a session ticket) and failed (the
// connection closed before its handshake completed: a bad or foreign
// client, a timeout, a scanner).
type TLSCounts struct {
	OK, Resumed, Failed uint64
	// Open are the connections the standard engine serves (Accept's)
	// whose handshake completed and that are open now; an event-loop
	// engine counts its own (connections.Stats.TLSConnections).
	Open int64
	// Duration is the completed handshakes' durations, from the accept
	// (the handshakes an event-loop engine ran: it tells their time).
	Duration *ipc.Histogram
}

// handshakeDurations is a TLS listener's handshake duration histogram
// (ipc.TLSHandshakeDurationBuckets), atomic counters as durations' are.
type handshakeDurations struct {
	counts [len(ipc.TLSHandshakeDurationBuckets) + 1]atomic.Uint64 // then +Inf
	sum    atomic.Int64                                            // nanoseconds
	any    atomic.Bool
}

func (h *handshakeDurations) observe(d time.Duration) {
	i := 0
	for i < len(ipc.TLSHandshakeDurationBuckets) && d.Seconds() > ipc.TLSHandshakeDurationBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	h.any.Store(true)
}

// histogram is a snapshot, nil before the first handshake timed.
func (h *handshakeDurations) histogram() *ipc.Histogram {
	if !h.any.Load() {
		return nil
	}
	out := &ipc.Histogram{Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.SumSeconds = time.Duration(h.sum.Load()).Seconds()
	return out
}

// TLSLimits are a TLS listener's limits where an event-loop engine
// serves it (connections.TLSServing's HandshakeTimeout and
// MaxHandshakes): zero is the default, MaxHandshakes -1 no bound.
type TLSLimits struct {
	HandshakeTimeout time.Duration
	MaxHandshakes    int
}

// tlsListener serves TLS over a listener, counting handshakes: each
// connection's ClientHello gets its own copy of the configuration
// (GetConfigForClient) whose VerifyConnection marks the connection's
// handshake done; a connection closed before that is a failure.
type tlsListener struct {
	net.Listener
	conf                *tls.Config
	lim                 TLSLimits
	ok, resumed, failed atomic.Uint64
	open                atomic.Int64 // Accept's connections past their handshake, open
	durations           handshakeDurations
	log                 zerolog.Logger
	stop                chan struct{}
	stopOnce            sync.Once
	// The last summary (summary): when, and failed then.
	sumMu     sync.Mutex
	sumAt     time.Time
	sumFailed uint64
}

// newTLSListener serves TLS over ln with conf (a copy) and keys (the
// master's ticket keys; nil: crypto/tls's own, this worker's only).
func newTLSListener(ln net.Listener, conf *tls.Config, keys ticketkeys.Set, log zerolog.Logger) *tlsListener {
	t := &tlsListener{Listener: ln, conf: conf.Clone(), log: log, stop: make(chan struct{}), sumAt: time.Now()}
	user := t.conf.GetConfigForClient
	base := t.conf
	t.conf.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base
		if user != nil {
			uc, err := user(hi)
			if err != nil {
				return nil, err
			}
			if uc != nil {
				c = uc
			}
		}
		hc, ok := hi.Conn.(*handshakeConn)
		if !ok {
			return c, nil
		}
		cc := c.Clone() // this connection's, with the keys of now
		cc.GetConfigForClient = nil
		verify := c.VerifyConnection
		cc.VerifyConnection = func(cs tls.ConnectionState) error {
			if verify != nil {
				if err := verify(cs); err != nil {
					return err
				}
			}
			if hc.state.CompareAndSwap(hsNew, hsUp) {
				t.ok.Add(1)
				t.open.Add(1)
				if cs.DidResume {
					t.resumed.Add(1)
				}
			}
			return nil
		}
		return cc, nil
	}
	t.setKeys(keys)
	go t.summarise()
	return t
}

func (t *tlsListener) setKeys(s ticketkeys.Set) {
	if len(s) > 0 {
		t.conf.SetSessionTicketKeys(s)
	}
}

func (t *tlsListener) counts() TLSCounts {
	return TLSCounts{OK: t.ok.Load(), Resumed: t.resumed.Load(), Failed: t.failed.Load(), Open: t.open.Load(), Duration: t.durations.histogram()}
}

// TLS is connections.TLSListener's: an event-loop engine serves the
// listener under TLS itself, with t's configuration, and tells each
// handshake's result to handshakeDone. Accept serves the other engines.
func (t *tlsListener) TLS() (net.Listener, connections.TLSServing) {
	sv := connections.TLSServing{Config: t.conf, Done: t.handshakeDone,
		HandshakeTimeout: t.lim.HandshakeTimeout, MaxHandshakes: t.lim.MaxHandshakes}
	if sv.MaxHandshakes < 0 {
		sv.MaxHandshakes = math.MaxInt32 // no bound
	}
	return t.Listener, sv
}

// handshakeDone counts a handshake the engine ran.
func (t *tlsListener) handshakeDone(st *tls.ConnectionState, err error, took time.Duration) {
	if err != nil {
		t.failed.Add(1)
		t.log.Debug().Err(err).Msg("TLS handshake failed")
		return
	}
	t.ok.Add(1)
	if st != nil && st.DidResume {
		t.resumed.Add(1)
	}
	t.durations.observe(took)
}

var _ connections.TLSListener = (*tlsListener)(nil)

func (t *tlsListener) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&handshakeConn{Conn: c, l: t}, t.conf), nil
}

func (t *tlsListener) Close() error {
	t.stopOnce.Do(func() {
		close(t.stop)
		t.summary() // the failures since the last summary are not left unsaid
	})
	return t.Listener.Close()
}

// summarise logs the failed handshakes of each tlsSummaryEvery, at info,
// when there were some, until the listener closes (Close logs the last
// period's).
func (t *tlsListener) summarise() {
	tick := time.NewTicker(tlsSummaryEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.summary()
	}
}

// summary logs, at info, the handshakes that failed since the last
// summary, if any. Safe for concurrent use.
func (t *tlsListener) summary() {
	t.sumMu.Lock()
	defer t.sumMu.Unlock()
	now := time.Now()
	if n := t.failed.Load(); n != t.sumFailed {
		t.log.Info().Uint64("failed", n-t.sumFailed).Uint64("failed_total", n).Dur("period_ms", now.Sub(t.sumAt)).Msg("TLS handshakes failed")
		t.sumFailed = n
	}
	t.sumAt = now
}

// handshakeConn is a TLS connection's socket, which counts a failed
// handshake when it closes before the handshake completed, and an open
// TLS connection from its handshake to its close.
type handshakeConn struct {
	net.Conn
	l      *tlsListener
	state  atomic.Int32 // hsNew, then hsUp or hsFailed, then hsClosed after hsUp
	closed atomic.Bool
}

// The states of a handshakeConn.
const (
	hsNew    = iota // handshake in progress
	hsUp            // handshake completed, counted open
	hsFailed        // closed before its handshake completed
	hsClosed        // closed after its handshake completed
)

func (c *handshakeConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		switch {
		case c.state.CompareAndSwap(hsNew, hsFailed):
			// A handshake ending now is not counted.
			c.l.failed.Add(1)
			c.l.log.Debug().Str("remote", c.RemoteAddr().String()).Msg("TLS connection closed before its handshake completed")
		case c.state.CompareAndSwap(hsUp, hsClosed):
			c.l.open.Add(-1)
		}
	}
	return c.Conn.Close()
}
