package connections

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/protocols"
)

// Defaults applied to zero Config fields.
const (
	DefaultMaxPackageSize    = 10 << 20 // 10 MiB, as workerman
	DefaultMaxSendBufferSize = 1 << 20  // 1 MiB, as workerman
	DefaultReadBufferSize    = 4 << 10
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
	// DefaultMaxSendBufferSize).
	MaxSendBufferSize int
	// ReadBufferSize is the size of one read (default DefaultReadBufferSize).
	ReadBufferSize int
	// IDBase is or-ed into every connection id: the worker id in bits
	// 48..63 and a boot epoch in bits 32..47.
	IDBase uint64
	// Handler holds the callbacks.
	Handler Handler
	// Logger receives lifecycle and per-connection events.
	Logger zerolog.Logger
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
	return cfg
}

// Stats are a server's counters. Every field is read atomically.
type Stats struct {
	Connections int64  // open now
	Accepted    uint64 // since start
	Requests    uint64 // messages delivered to OnMessage
	BytesIn     uint64
	BytesOut    uint64
	Errors      uint64 // protocol errors, dropped sends, panics
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
}

// Server runs the connections of listeners that share one Config.
// Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	log zerolog.Logger

	seq       atomic.Uint32
	draining  atomic.Bool
	closed    atomic.Bool
	accepted  atomic.Uint64
	requests  atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	errs      atomic.Uint64
	open      atomic.Int64
	wg        sync.WaitGroup // serve loops and connections
	doneCh    chan struct{}  // closed when the last connection is gone after Drain
	doneOnce  sync.Once
	mu        sync.Mutex
	listeners map[closer]struct{}
	conns     map[*conn]struct{}
}

// closer is what the server closes on Drain: a listener or a packet conn.
type closer interface{ Close() error }

// NewServer returns a server for cfg.
func NewServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		doneCh:    make(chan struct{}),
		listeners: make(map[closer]struct{}),
		conns:     make(map[*conn]struct{}),
	}
}

// Serve accepts connections from ln until Drain, Shutdown or Close, and
// returns ErrServerClosed then, or the accept error that ended it.
// Temporary accept errors (EMFILE) back off from 5 ms to 1 s.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		return ErrServerClosed
	}
	defer s.untrack(ln)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else if backoff *= 2; backoff > time.Second {
					backoff = time.Second
				}
				s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.startConn(nc)
	}
}

func (s *Server) track(l closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l closer) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.open.Add(1)
	s.accepted.Add(1)
	return true
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	n := s.open.Add(-1)
	s.mu.Unlock()
	if n == 0 && s.draining.Load() {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
}

func (s *Server) nextID() uint64 { return s.cfg.IDBase | uint64(s.seq.Add(1)) }

// Drain stops accepting: listeners and packet conns passed to Serve and
// ServePacket are closed, and every connection reports Draining, so
// keep-alive protocols tell their peers to go. Open connections stay.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining.Store(true)
	ls := make([]closer, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	n := s.open.Load()
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	if n == 0 {
		s.doneOnce.Do(func() { close(s.doneCh) })
	}
}

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
// for their OnClose callbacks.
func (s *Server) Close() error {
	s.Drain()
	s.mu.Lock()
	s.closed.Store(true)
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Destroy()
	}
	s.wg.Wait()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections: s.open.Load(),
		Accepted:    s.accepted.Load(),
		Requests:    s.requests.Load(),
		BytesIn:     s.bytesIn.Load(),
		BytesOut:    s.bytesOut.Load(),
		Errors:      s.errs.Load(),
	}
}

// Connections returns a snapshot of the open stream connections.
func (s *Server) Connections() []Info {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.info())
	}
	return out
}

// Each calls fn for every open stream connection (a snapshot: connections
// may close meanwhile). fn runs on the caller's goroutine.
func (s *Server) Each(fn func(Connection)) {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		fn(c)
	}
}
