package connections

import "net"

// engine is an I/O engine of stream connections: it accepts from the
// listeners Serve gives it and runs their connections. A Server has the
// standard engine (a goroutine per connection, every platform, every
// listener) and the event-loop engines of its platform (platformEngines:
// epoll on Linux), made by engineTable; Serve picks one per listener,
// once (pickEngine). A new engine is one more implementation (its files,
// its connection type embedding base and implementing core.Ops) and one
// more entry in platformEngines (ENGINES.md). Every method is safe for
// concurrent use.
type engine interface {
	// name is the engine's Config.Engine value.
	name() string
	// usable reports whether the engine can serve ln here.
	usable(ln net.Listener) bool
	// serve accepts from ln until Drain, Shutdown or Close (then it
	// returns ErrServerClosed) or a fatal accept error; ln is closed when
	// it returns. It registers ln with Server.track so that Drain closes
	// it, and it has counted every connection it accepted (Server.open)
	// once Drain has closed ln.
	serve(ln net.Listener) error
	// appendConns appends the engine's open stream connections to dst.
	appendConns(dst []Connection) []Connection
	// addStats adds the engine's own traffic counters to st.
	addStats(st *Stats)
	// wake makes the engine look at the server's draining and closed
	// state, so that idle goroutines that wait for events end when their
	// work is done.
	wake()
	// wait blocks until the engine's goroutines are gone; Close calls it
	// once every connection is destroyed.
	wait()
}

// fallbackEngine is the engine every Server has, the standard one: it
// serves what no other engine can (TLS, a listener without a descriptor,
// EngineAuto's last choice) and adopts a connection dialled elsewhere (a
// Client's).
type fallbackEngine interface {
	engine
	// adopt makes nc one of the engine's connections and starts serving
	// it (OnConnect runs on the connection's goroutine); nc is closed
	// instead when the server is closing.
	adopt(nc net.Conn)
}

// engineTable makes s's engines, the standard one first: it is the
// registration of every engine (the standard one here, the platform's in
// platformEngines), made anew for each Server, with no package-level
// state.
func engineTable(s *Server) (std fallbackEngine, all []engine) {
	std = newStdEngine(s)
	return std, append([]engine{std}, platformEngines(s)...)
}

// pickEngine returns the engine that serves ln, or nil if none can.
// EngineAuto prefers the platform's event loops, except for a TLS
// listener that is not a TLSListener (whose record layer only the
// standard engine, through its Accept, can run).
func (s *Server) pickEngine(ln net.Listener) engine {
	if s.cfg.Engine == EngineAuto {
		if _, ok := ln.(TLSListener); ok || s.cfg.Transport != "tls" {
			for _, e := range s.engines {
				if e != engine(s.std) && e.usable(ln) {
					return e
				}
			}
		}
		return s.std
	}
	for _, e := range s.engines {
		if e.name() == s.cfg.Engine {
			if e.usable(ln) {
				return e
			}
			return nil
		}
	}
	return nil
}
