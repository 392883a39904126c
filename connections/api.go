package connections

import (
	"github.com/goes-project/goes/connections/internal/core"
)

// Defaults applied to zero Config fields.
const (
	DefaultMaxPackageSize    = core.DefaultMaxPackageSize    // 10 MiB, as workerman
	DefaultMaxSendBufferSize = core.DefaultMaxSendBufferSize // 1 MiB, as workerman
	DefaultReadBufferSize    = core.DefaultReadBufferSize
)

// Defaults of the read and send timeouts (see the package doc's Timeouts
// section), applied to zero Config fields; nginx's are the yardstick.
const (
	// DefaultHeaderTimeout bounds a request head, from its first byte (from
	// the accept for a connection's first request); nginx's
	// client_header_timeout is 60 s, Apache's mod_reqtimeout 20 to 40 s.
	DefaultHeaderTimeout = core.DefaultHeaderTimeout
	// DefaultBodyTimeout bounds the silence inside a partly received
	// packet (nginx's client_body_timeout).
	DefaultBodyTimeout = core.DefaultBodyTimeout
	// DefaultBodyMinRate is the least rate, in bytes per second, at which
	// a partly received packet must keep arriving, measured over each
	// BodyTimeout (Apache's MinRate is 500).
	DefaultBodyMinRate = core.DefaultBodyMinRate
	// DefaultKeepAliveTimeout bounds the wait for the next request of a
	// keep-alive connection (nginx's keepalive_timeout).
	DefaultKeepAliveTimeout = core.DefaultKeepAliveTimeout
	// DefaultSendTimeout bounds how long queued output may wait for a
	// peer that takes none of it (nginx's send_timeout).
	DefaultSendTimeout = core.DefaultSendTimeout
)

// Engines, the values of Config.Engine.
const (
	// EngineAuto picks EngineEpoll where it can serve the listener (TCP
	// and Unix listeners on Linux, and TLSListeners over them; not
	// another TLS listener) and EngineStd elsewhere.
	EngineAuto = core.EngineAuto
	// EngineEpoll serves connections on event loops over epoll: one loop
	// per core (Config.Loops), non-blocking sockets, buffers borrowed only
	// while a connection has bytes to process or send. Linux only; it
	// serves *net.TCPListener and *net.UnixListener, and TLS over them
	// when the listener is a TLSListener.
	EngineEpoll = core.EngineEpoll
	// EngineStd serves every connection with its own reading goroutine.
	// It serves any net.Listener (TLS included) on every platform.
	EngineStd = core.EngineStd
)

// Reasons a connection is closed by a timeout rule: the keys of
// Stats.Closed (and of a worker's closed counts in status).
const (
	ClosedHeaderTimeout    = core.ClosedHeaderTimeout    // HeaderTimeout: a head not complete in time
	ClosedBodyTimeout      = core.ClosedBodyTimeout      // BodyTimeout: a partial packet without progress
	ClosedBodyMinRate      = core.ClosedBodyMinRate      // BodyMinRate: a partial packet arriving too slowly
	ClosedKeepAliveTimeout = core.ClosedKeepAliveTimeout // KeepAliveTimeout: no next request
	ClosedSendTimeout      = core.ClosedSendTimeout      // SendTimeout: a peer that takes no output
	ClosedIdleTimeout      = core.ClosedIdleTimeout      // IdleTimeout: nothing received
)

// DefaultMaxInputMemory is the default of Config.MaxInputMemory: 64 MiB
// per Server, that is per worker process.
//
// nginx keeps at most client_body_buffer_size (16 KiB) of a request body
// in memory and writes the rest to a temporary file; HAProxy holds two
// tune.bufsize buffers (16 KiB each) per connection, about 125 MiB per
// process at the maxconn of 4000 many configs set. goes hands OnMessage a
// whole packet, so its budget must hold several of the largest packets at
// once: 64 MiB is six 10 MiB packets (DefaultMaxPackageSize) arriving at
// the same time, or 4096 connections with a 16 KiB partial packet each,
// HAProxy's figure for its default buffers. Uploads larger than what a
// handler wants to hold go to it in pieces instead (http.Protocol's
// StreamBody), which this budget does not count.
const DefaultMaxInputMemory = core.DefaultMaxInputMemory

// ErrInputBudget is the error of a connection shed because its server's
// budget for unfinished input (Config.MaxInputMemory) is spent and it held
// the most. It wraps protocols.ErrOverloaded.
var ErrInputBudget = core.ErrInputBudget

// DefaultAcceptMargin is Config.AcceptMargin's default: a process takes
// new connections while it holds at most 10 % (plus a slack of 16) more
// than the mean of the processes that share its listener.
const DefaultAcceptMargin = core.DefaultAcceptMargin

// Config describes one listener's connections; the zero value serves raw
// bytes with the defaults above. Its fields, each documented in full in
// go doc github.com/goes-project/goes/connections/internal/core Config:
// Protocol, Transport, MaxPackageSize, MaxSendBufferSize, ReadBufferSize,
// IDBase, Handler, Logger, Engine, Loops, CallbackGoroutines, NoIOUring,
// IdleTimeout, Heartbeat, HeartbeatData, MaxInputMemory, Wheel, the read
// and send timeouts (HeaderTimeout, BodyTimeout, BodyMinRate,
// KeepAliveTimeout, SendTimeout: on by default, a negative value turns
// one off), AcceptShare, AcceptSlot, AcceptMargin and AccessLogDropped.
type Config = core.Config

// Stats are a server's counters, every field read atomically:
// Connections, Accepted, Requests, BytesIn, BytesOut, Errors (of which
// BadInput, Panics, SendBufferFull), Writes, IOUringSends, Closed (by
// timeout reason), InputShed, InputHeld, AcceptPauses, AccessLogDropped
// and LoopBusy. Full doc: go doc
// github.com/goes-project/goes/connections/internal/core Stats.
type Stats = core.Stats

// Info describes one open connection, for listings (Server.Connections):
// its ID, Transport, Protocol, addresses, bytes in and out, SendBuffer,
// CreatedAt, State ("established", "paused", "closing") and Engine. Full
// doc: go doc github.com/goes-project/goes/connections/internal/core Info.
type Info = core.Info

// LagHistogram is the event-loop lag of a Server (Server.LoopLag): its
// loops' passes by duration, in the buckets of LoopLagBounds. Full doc:
// connections/internal/core.LagHistogram.
type LagHistogram = core.LagHistogram

// LoopLagBounds are the upper bounds of LagHistogram's buckets, from
// 50 µs to 10 s (the same as ipc.LoopLagBuckets, in seconds).
var LoopLagBounds = core.LoopLagBounds
