package core

import "net"

// Engine is an I/O engine of stream connections: it accepts from the
// listeners Serve gives it and runs their connections. A Runtime has the
// standard engine (connections/internal/std: a goroutine per connection,
// every platform, every listener) and the event-loop engines of its
// platform (connections/internal/epoll on Linux), made by connections'
// engineTable and given with SetEngines; Serve picks one per listener,
// once (pickEngine). A new engine is one package (its engine type, its
// connection type embedding Conn and implementing Ops) and one more entry
// in connections' engine table (ENGINES.md). Every method is safe for
// concurrent use.
type Engine interface {
	// Name is the engine's Config.Engine value.
	Name() string
	// Usable reports whether the Engine can serve ln here.
	Usable(ln net.Listener) bool
	// Serve accepts from ln until Drain, Shutdown or Close (then it
	// returns ErrServerClosed) or a fatal accept error; ln is closed when
	// it returns. It registers ln with Runtime.Track so that Drain closes
	// it, and it has counted every connection it accepted (Runtime.Open)
	// once Drain has closed ln.
	Serve(ln net.Listener) error
	// AppendConns appends the engine's open stream connections to dst.
	AppendConns(dst []Connection) []Connection
	// AddStats adds the engine's own traffic counters to st.
	AddStats(st *Stats)
	// Wake makes the Engine look at the server's draining and closed
	// state, so that idle goroutines that wait for events end when their
	// work is done.
	Wake()
	// Wait blocks until the engine's goroutines are gone; Close calls it
	// once every connection is destroyed.
	Wait()
}

// FallbackEngine is the engine every Runtime has, the standard one: it
// serves what no other engine can (TLS, a listener without a descriptor,
// EngineAuto's last choice) and adopts a connection dialled elsewhere (a
// Client's).
type FallbackEngine interface {
	Engine
	// Adopt makes nc one of the engine's connections and starts serving
	// it (OnConnect runs on the connection's goroutine); nc is closed
	// instead when the server is closing.
	Adopt(nc net.Conn)
}

// pickEngine returns the engine that serves ln, or nil if none can.
// EngineAuto prefers the platform's event loops, except for a TLS
// listener that is not a TLSListener (whose record layer only the
// standard engine, through its Accept, can run).
func (s *Runtime) pickEngine(ln net.Listener) Engine {
	if s.Cfg.Engine == EngineAuto {
		if _, ok := ln.(TLSListener); ok || s.Cfg.Transport != "tls" {
			for _, e := range s.engines {
				if e != Engine(s.Std) && e.Usable(ln) {
					return e
				}
			}
		}
		return s.Std
	}
	for _, e := range s.engines {
		if e.Name() == s.Cfg.Engine {
			if e.Usable(ln) {
				return e
			}
			return nil
		}
	}
	return nil
}
