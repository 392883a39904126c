package connections

import (
	"context"
	"net"

	"github.com/goes-project/goes/connections/internal/core"
)

// Server runs the connections of listeners that share one Config.
// Its methods are safe for concurrent use.
type Server struct {
	// rt is the server's state as the core and the engines see it
	// (connections/internal/core); the engines are made with it.
	rt *core.Runtime
}

// NewServer returns a server for cfg.
func NewServer(cfg Config) *Server {
	pipes := new(pipeTable)
	cfg.Handler = pipes.wrap(cfg.Handler)
	rt := core.NewRuntime(cfg)
	rt.Pipes = pipes
	rt.SetEngines(engineTable(rt))
	return &Server{rt: rt}
}

// Serve accepts connections from ln until Drain, Shutdown or Close, and
// returns ErrServerClosed then, or the accept error that ended it; ln is
// closed then. Called after Drain, it closes ln and returns ErrServerClosed
// at once.
// Temporary accept errors (EMFILE) back off from 5 ms to 1 s. The engine
// is chosen by Config.Engine; with the default, TCP and Unix listeners are
// served by event loops on Linux and everything else by a goroutine per
// connection. Serve may be called for several listeners at once.
func (s *Server) Serve(ln net.Listener) error { return s.rt.Serve(ln) }

// Drain stops accepting: listeners and packet conns passed to Serve and
// ServePacket are closed, and every connection reports Draining, so
// keep-alive protocols tell their peers to go. Open connections stay.
// When Drain returns, every connection accepted before the listeners
// closed is counted in Stats().Connections and listed: none is accepted
// afterwards, and Done is closed once they are all gone.
func (s *Server) Drain() { s.rt.Drain() }

// Done is closed once Drain (or Shutdown, or Close) has run and every
// connection is gone. Safe for concurrent use.
func (s *Server) Done() <-chan struct{} { return s.rt.Done() }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.rt.Draining.Load() }

// Shutdown drains and waits until every connection has closed or ctx is
// done; then it closes what is left (dropping unsent data) and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	select {
	case <-s.Done():
		s.Close()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops accepting and destroys every connection at once, then waits
// for their OnClose callbacks and for the engine's goroutines to end.
func (s *Server) Close() error { return s.rt.Close() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats { return s.rt.Stats() }

// LoopLag returns the event-loop lag of the server: its loops' passes by
// duration (LagHistogram); empty on the standard engine, which has no
// loops.
func (s *Server) LoopLag() LagHistogram { return s.rt.LoopLag() }

// Connections returns a snapshot of the open stream connections.
func (s *Server) Connections() []Info { return s.rt.Connections() }

// Each calls fn for every open stream connection (a snapshot: connections
// may close meanwhile). fn runs on the caller's goroutine.
func (s *Server) Each(fn func(Connection)) {
	for _, c := range s.rt.All() {
		fn(c)
	}
}
