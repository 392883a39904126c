// Package connections is the connection runtime of a goes worker: it turns
// accepted sockets and datagrams into Connections, the bytes they receive
// into packets (through a protocols.Protocol) and packets into OnMessage
// calls, and it owns every connection's send buffer.
//
// The I/O engine under it is replaceable: nothing in the Connection API or
// in the callbacks assumes a goroutine per connection. Callbacks of one
// connection never run concurrently with each other; callbacks of
// different connections may.
//
// Outgoing connections (Client, NewClient) speak transports only: tcp://,
// tls://, unix:// and udp:// URIs, with the protocol in the config. The
// package knows protocols through the interfaces of package protocols
// alone (a protocol with an opening handshake implements
// protocols.ClientHandshaker), never a concrete one: the protocol URIs
// (text://, frame://, ws://, wss://) are mapped one level up, by
// goes.NewClient, and the WebSocket client is websocket.Client.
//
// # Engines
//
// A Server has engines, each a package of its own under
// connections/internal, made for it by one table (engine.go): the
// standard one (internal/std: a reading goroutine per connection, every
// listener, every platform) and the platform's event-loop engines
// (platformEngines: internal/epoll on Linux). Serve picks one per
// listener, once; Close, Stats and the listings ask every engine. The
// epoll engine's package holds its loops (loop_linux.go: one goroutine
// each, the connection table, the queue other goroutines post to), its
// accept path with its back-off (accept_linux.go), the connection's I/O
// (conn_linux.go) and its kernel interface: the poller (the epoll
// descriptor, its eventfd, the wait), the io_uring send batch, and the
// system calls (epoll.Sys), which tests replace call by call. This
// package makes no epoll or io_uring call itself and only it imports an
// engine's package (deps_test.go), so the compiler keeps every engine's
// types inside its package. What the engines share is
// connections/internal/core: the public types (this package's are
// aliases of them), the Runtime (the Server's state the engines use),
// Conn (the engine-independent part of a stream connection: dispatch,
// send queue, budget, timers, the close sequence), the engine contract
// (core.Engine, core.FallbackEngine, core.Ops, core.KickQueue), the
// buffer pool, the callback pool and the watchdog. A Fanout batches
// flushes through the contract (core.Ops.BatchKick, core.KickQueue: an
// event loop's queue), and a Client takes its connection as an
// interface. ENGINES.md has the layering, the data paths and the recipe
// for a new engine.
//
// # Timeouts
//
// A stream connection of a server is held to read and send timeouts, on
// by default (Config: a zero field is the Default..., a negative one
// turns the rule off; a Client applies none). Which read rule applies
// depends on the connection's phase (protocols.Phase), which the
// protocol reports through the optional protocols.Phaser (HTTP and
// WebSocket do); a protocol without one is in PhaseBody while a partial
// packet is buffered and in PhaseOpen otherwise:
//
//	phase      rule                                                    default
//	PhaseHead  complete within HeaderTimeout of the phase's start      30 s
//	PhaseBody  something within every BodyTimeout, and at least        60 s,
//	           BodyMinRate × BodyTimeout bytes in each BodyTimeout      1 KiB/s
//	PhaseIdle  the next request within KeepAliveTimeout                75 s
//	PhaseBusy  none: the application owes an answer                    -
//	PhaseOpen  none: a long-lived connection may stay silent            -
//	any        output waiting for the peer no longer than SendTimeout  60 s
//	any        IdleTimeout, Heartbeat, when set                        off
//
// A phase starts with the read that brought it (a head with its first
// byte, a body with the end of its head, the wait between requests with
// the request that ended), except that a connection's first request is
// due within HeaderTimeout of the accept (PhaseIdle before any packet
// counts as PhaseHead). The minimum rate is measured window after window,
// each a BodyTimeout long, from the start of the body: a burst buys no
// credit for a dribble after it. A connection whose reading is paused
// (PauseRecv, or backpressure: its queued output reached
// MaxSendBufferSize, see internal/core/send.go), whose callback runs or whose input
// waits for a pool task is not held to the read rules (its input waits
// for the application or for the peer to read) and they start again from
// then; a peer that reads nothing meets SendTimeout. A read rule that is
// broken closes the connection after queuing the protocol's
// Phaser.TimedOut answer (HTTP 408, WebSocket close 1008); SendTimeout
// destroys it (what is queued cannot be delivered). Cuts are counted by
// reason in Stats.Closed and logged at most once per reason every 10 s,
// with their number.
//
// The rules cost no timer operation per read: a read stores its time
// (connTimers.lastIn), the dispatcher records the phase with an atomic
// load, and a store under core.Conn.Mu only when a batch of input changes it;
// a write that has to wait for the peer stores when (slow path only).
// The connection's one timer node (internal/core/timers.go) works out at its deadline
// whether a rule is broken, and re-arms for the nearest deadline or, at
// the latest, for the shortest rule's period, so that a phase recorded
// meanwhile is looked at in time; a PhaseBusy connection is asked for its
// phase again then, since an answer ends that phase without any input.
//
// # Memory of unfinished input
//
// Input that is not yet a whole packet is bounded per Server (per worker)
// by Config.MaxInputMemory (internal/core/budget.go). Every engine's input path sizes a
// partial packet's buffer with core.InputSize (internal/core/buffer.go: the packet's length
// when the protocol is a protocols.PacketSizer, doubling otherwise,
// never past MaxPackageSize) and charges it to the budget while it holds
// the partial packet: the epoll loop when it keeps or grows c.in
// (keepInput, growInput), the pool task when a read leaves a partial
// packet (holdInput), the standard engine after each consume and growth
// (hold, grow). A buffer lent for one read and emptied by it is never
// charged, so whole packets never take the budget's lock. A refused
// charge sheds the connection (core.Conn.Shed); a charge that needs room sheds
// the largest holders from whatever goroutine asks, and core.Ops.ShedInput
// has their engines drop their input.
//
// # Concurrency
//
// Who owns what:
//
//   - A stream connection's engine-independent state is core.Conn
//     (internal/core: conn.go, send.go). Its flags change only with core.Conn.Mu held and are read
//     atomically anywhere; core.Conn.Mu also guards the send queue (out,
//     inflight), dispatching, the user context, the doom timer, drainCh
//     (these three in core.Conn.more, made by their first use) and, in
//     pool mode, epConn.pend. The protocol state has its own spin
//     lock (fStateLock, a flag bit) so that State works with and without
//     core.Conn.Mu held. bytesIn and bytesOut are atomics; fCloseAfter changes without mu.
//   - fWriting makes one writer at a time own the buffer takeOut handed
//     it, until writeDone.
//   - An epConn's fields after core.Conn belong to its loop's goroutine (fd,
//     ev, in, wbuf, eof, busy, ...), except pend (core.Conn.Mu), acts (atomic:
//     work other goroutines post) and, while busy, c.in and inHalted,
//     which the running pool task owns until it posts actTaskDone.
//   - A loop owns its poller's events (epoll.Poller), its read buffer, n, busyN, its
//     listeners' back-off; it writes its connection table under loop.tmu,
//     which other goroutines take to read it (listings, Close) and which
//     also guards the listener map and dead. loop.qmu guards the posted
//     queue and funcs, and qdead: the eventfd is written only under qmu
//     while the loop lives, so that its number is never written after
//     close. The poller's awake and wakeSet are atomics: a loop marks itself
//     waiting before it checks its queue, so a post either is seen by that
//     check or writes a wake-up.
//   - A stdConn's reading goroutine runs its callbacks with stdConn.cbMu
//     held; a writer goroutine only TryLocks it (a drain it cannot run is
//     left in drainPending for the holder).
//   - The wheel's goroutine runs the connection timers (connTimers'
//     since and winIn are under core.Conn.Mu; lastIn, outWait and phase are
//     atomics) and takes core.Conn.Mu to act.
//   - The input budget's mu guards its holder records; it is a leaf, and
//     fInputHeld (a connection has a record) changes under it, not under
//     core.Conn.Mu. A connection is charged only by the goroutine that owns its
//     input buffer (the loop, the pool task, the reading goroutine), or
//     by a protocol's HoldInput from Decode.
//   - Runtime.Mu guards the listener set, settled, the standard engine's
//     connection set, the epoll engine's loops, pool and watchdog stop,
//     and the own wheel's start; the counters (open, accepted, errs, the
//     counters structs) are atomics, draining and closed are atomics
//     changed under Runtime.Mu.
//
// A method named ...Locked runs with core.Conn.Mu held by its caller: it must
// not take core.Conn.Mu, call a user callback or block; it may take the locks
// that come after core.Conn.Mu below. closingUnlock is entered with core.Conn.Mu
// held and releases it.
//
// Lock order (a lock is taken only after those above it, never before):
//
//   - stdConn.cbMu (its callbacks run with it held), then pipeLink.mu (a
//     pipe forwards from OnMessage), then Client.mu (a Client as a pipe's
//     dst), then core.Conn.Mu, then pipeNode.mu (see pipe.go, client.go);
//   - core.Conn.Mu, then loop.qmu (posting work to the loop), the timer
//     wheel's lock, the buffer pool;
//   - epListener.mu (read-held by accept from accept4 until the new
//     connection is registered), then loop.tmu and core.Conn.Mu;
//   - Runtime.Mu is taken at most under stdConn.cbMu (a closing stdConn
//     counts itself out) and holds nothing but the wheel's lock (its
//     start); loop.qmu, loop.tmu, core.TaskPool's mu, fStateLock and the input
//     budget's mu are leaves (connections are shed after it is released).
//
// No lock is held while a user callback runs, except stdConn.cbMu and
// pipeLink.mu (a pipe's sends), and core.Conn.Mu for the protocol's Encode and
// ReleaseState, which must not call Send or Close.
package connections
