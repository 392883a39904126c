package worker

import (
	"crypto/tls"
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

// tlsListener serves TLS over a listener, counting handshakes: each
// connection's ClientHello gets its own copy of the configuration
// (GetConfigForClient) whose VerifyConnection marks the connection's
// handshake done; a connection closed before that is a failure.
type tlsListener struct {
	net.Listener
	conf                *tls.Config
	ok, resumed, failed atomic.Uint64
	durations           handshakeDurations
	log                 zerolog.Logger
	stop                chan struct{}
	stopOnce            sync.Once
}

// newTLSListener serves TLS over ln with conf (a copy) and keys (the
// master's ticket keys; nil: crypto/tls's own, this worker's only).
func newTLSListener(ln net.Listener, conf *tls.Config, keys ticketkeys.Set, log zerolog.Logger) *tlsListener {
	t := &tlsListener{Listener: ln, conf: conf.Clone(), log: log, stop: make(chan struct{})}
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
			if hc.done.CompareAndSwap(false, true) {
				t.ok.Add(1)
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
	return TLSCounts{OK: t.ok.Load(), Resumed: t.resumed.Load(), Failed: t.failed.Load(), Duration: t.durations.histogram()}
}

// TLS is connections.TLSListener's: an event-loop engine serves the
// listener under TLS itself, with t's configuration, and tells each
// handshake's result to handshakeDone. Accept serves the other engines.
func (t *tlsListener) TLS() (net.Listener, connections.TLSServing) {
	return t.Listener, connections.TLSServing{Config: t.conf, Done: t.handshakeDone}
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
	t.stopOnce.Do(func() { close(t.stop) })
	return t.Listener.Close()
}

// summarise logs the failed handshakes of each tlsSummaryEvery, at info,
// when there were some.
func (t *tlsListener) summarise() {
	tick := time.NewTicker(tlsSummaryEvery)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		if n := t.failed.Load(); n != last {
			t.log.Info().Uint64("failed", n-last).Uint64("failed_total", n).Dur("period_ms", tlsSummaryEvery).Msg("TLS handshakes failed")
			last = n
		}
	}
}

// handshakeConn is a TLS connection's socket, which counts a failed
// handshake when it closes before the handshake completed.
type handshakeConn struct {
	net.Conn
	l      *tlsListener
	done   atomic.Bool // the handshake completed
	closed atomic.Bool
}

func (c *handshakeConn) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.done.CompareAndSwap(false, true) {
		// done is set, so that a handshake ending now is not counted.
		c.l.failed.Add(1)
		c.l.log.Debug().Str("remote", c.RemoteAddr().String()).Msg("TLS connection closed before its handshake completed")
	}
	return c.Conn.Close()
}
