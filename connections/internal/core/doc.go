// Package core is the engine-neutral core of package connections, the
// part every I/O engine uses, in a package of its own so that each engine
// is a package of its own too (issue 19, connections/ENGINES.md). It
// holds the public types of connections (Connection, Handler, Config,
// Stats, Info, AcceptShare, ...: connections declares them as aliases;
// their full documentation is here), the Runtime (the state of a
// connections.Server that the engines use), Conn (the engine-independent
// part of a stream connection: dispatch, the send queue, backpressure,
// the input budget, the timers, the close sequence), the engine contract
// (Engine, FallbackEngine, Ops, KickQueue), the buffer pool, the pool of
// callback tasks and the watchdog.
//
// Only connections and its engines (connections/internal/std,
// connections/internal/epoll) import it; it imports no engine.
package core
