package connections

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/protocols"
)

// DefaultDialTimeout bounds a Client's connect, TLS handshake included,
// when ClientConfig.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// Errors of outgoing connections.
var (
	// ErrBadURI: NewClient cannot use the URI (a protocol or unknown
	// scheme, no port, a path, ...).
	ErrBadURI = errors.New("connections: bad client uri")
	// ErrConnectFailed is wrapped by the *ConnectError a Client reports to
	// OnError when it cannot connect.
	ErrConnectFailed = errors.New("connections: connect failed")
)

// ConnectError is what a Client reports to OnError when a connect attempt
// fails (refused, unreachable, timed out, TLS handshake failed); OnClose
// follows. errors.Is(err, ErrConnectFailed) holds for it, and Err is the
// dialer's error.
type ConnectError struct {
	URI     string
	Err     error
	Elapsed time.Duration // from the start of the attempt
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connections: connect %s failed after %v: %v", e.URI, e.Elapsed.Round(time.Millisecond), e.Err)
}

// Unwrap returns ErrConnectFailed and the dialer's error.
func (e *ConnectError) Unwrap() []error { return []error{ErrConnectFailed, e.Err} }

// ClientConfig describes an outgoing connection.
type ClientConfig struct {
	// Config gives the protocol, the callbacks and the limits, as for a
	// listener. Protocol nil means raw bytes. A protocol that implements
	// protocols.ClientHandshaker (the WebSocket client, websocket.Client)
	// opens every connection with its handshake (see Client); it needs a
	// stream transport. The Handler's callbacks receive the *Client.
	// Transport is set from the URI, except that "udp" makes a tcp:// URI
	// a UDP client (as NewGoer's transport argument does for listeners).
	// Engine must be EngineAuto or EngineStd: a Client runs on the
	// standard engine (one goroutine while connected). The read and send
	// timeouts (HeaderTimeout, BodyTimeout, BodyMinRate, KeepAliveTimeout,
	// SendTimeout) are a server's and do not apply.
	Config
	// TLSConfig is used for tls://; nil means the system roots.
	// ServerName defaults to the URI's host.
	TLSConfig *tls.Config
	// Dialer, when set, is copied for every attempt (local address,
	// keep-alive, socket options through Control).
	Dialer *net.Dialer
	// DialTimeout bounds one connect attempt, TLS handshake included
	// (default DefaultDialTimeout).
	DialTimeout time.Duration
	// OnOpen, when set, runs once per connection when it is ready for
	// messages, after OnConnect, on the connection's goroutine like the
	// other callbacks: at once for a protocol without an opening
	// handshake; for a protocols.ClientHandshaker once the peer accepted
	// the handshake (WebSocket: the server's 101 answer, workerman's
	// onWebSocketConnect), after the messages sent before it were queued.
	OnOpen func(c Connection)
}

// Client states.
const (
	clientInitial    = iota // never connected: sends are queued
	clientWaiting           // Reconnect's delay runs: sends are queued
	clientConnecting        // dialling: sends are queued
	clientOpen              // connected; until ready, sends are queued
	clientClosed            // the last connection or attempt is over: sends fail
)

// clientSeq numbers Clients, so that their ids are unique in a process.
// A package-level counter, because ids must not repeat across Clients
// that share no Server.
var clientSeq atomic.Uint32

// Client is an outgoing stream connection, workerman's
// AsyncTcpConnection: it connects to a URI when Connect is called and
// then behaves like an accepted connection of a Server, with the same
// Connection API and the same callbacks, which receive the *Client. It can
// connect again (Reconnect), as the same Client with the same ID.
//
// Events: each attempt ends with exactly one OnClose: after OnConnect once
// the connection closes, or, when connecting failed, after OnError with a
// *ConnectError (errors.Is ErrConnectFailed). A Client closed before it
// ever connected gets its OnClose too. OnClose is where Reconnect is
// usually called. With a protocol that has an opening handshake
// (protocols.ClientHandshaker, such as websocket.Client), OnConnect runs
// once the transport is up and ClientConfig.OnOpen once the peer accepted
// the handshake; a refused handshake is reported to OnError (the
// protocol's error: websocket.ErrHandshake) and the connection closes.
//
// Sends made before the connection is up (and, with a handshake, before
// it completes) are queued, up to MaxSendBufferSize bytes, and sent
// in order when it is; they are dropped if the attempt fails. Sends after
// Close or once closed fail with ErrClosed.
//
// Concurrency: every method is safe for concurrent use and none blocks
// on the network. The callbacks of a Client never run concurrently with
// each other, across reconnections too (OnError from a failed Send and
// OnBufferFull run on the sender's goroutine, as for server connections).
// State and SetState are the protocol's and follow the protocols.Conn rule.
//
// UDP (udp://, or tcp:// with Transport "udp"; workerman's
// AsyncUdpConnection): Connect makes a connected UDP socket (no packet is
// sent), so only the peer's datagrams are received; OnConnect runs once
// it is ready. Each Send is encoded and written at once, on the caller's
// goroutine, as one datagram; there is no send buffer (SendBufferLen is
// 0 once connected, OnBufferFull never fires then) and the kernel drops
// what it cannot send. Each received datagram is framed by the protocol
// on its own, as on the server side (Server.ServePacket): a datagram
// never continues in the next, and an incomplete, oversize (more than
// MaxPackageSize, also without a protocol) or malformed datagram, or a
// panic in OnMessage, drops that datagram, is reported to OnError and
// the Client goes on reading. An empty datagram carries no message.
// When the peer's host answers a datagram with ICMP port unreachable,
// the socket's next read or write fails once with ECONNREFUSED (Linux;
// EHOSTUNREACH and the like for other ICMP errors): that is reported to
// OnError (errors.Is(err, syscall.ECONNREFUSED)) and the Client stays
// open, because UDP peers come and go and the same socket reaches the
// peer again once it listens (a write that returned such an error did not
// send its datagram, so Send tries it once more). Any other read error
// ends the attempt (OnError, then OnClose). Close and Destroy both close
// the socket at once (a queue from before the socket was ready is sent
// first by Close); OnClose runs once. Reconnect makes a new socket (new
// local port, the host name resolved again), after OnClose of the old
// one. PauseRecv stops taking datagrams from the socket (the kernel drops
// them once its buffer is full). IdleTimeout and Heartbeat do not apply.
type Client struct {
	uri    string
	t      target
	cfg    ClientConfig               // with defaults
	hs     protocols.ClientHandshaker // cfg.Protocol's, if it has one
	tlsCfg *tls.Config
	srv    *Server // runs the Client's connections
	user   Handler // cfg.Handler behind the pipe hooks
	pipes  pipeTable
	id     uint64
	born   time.Time
	log    zerolog.Logger

	// cb is held while OnConnect and OnClose run, so that the callbacks of
	// one connection never overlap those of the next.
	cb sync.Mutex
	// wg counts the Client's own goroutines (dialling, reporting); the
	// connection's are its server's.
	wg sync.WaitGroup

	// Lock order: mu, then the connection's own lock (cur's core.Conn.Mu).
	mu       sync.Mutex
	st       int
	cur      clientConn // the connection (a stream's or a *udpConn), while clientOpen
	ready    bool       // cur takes sends directly
	paused   bool       // PauseRecv, applied to every connection
	closeReq bool       // Close before ready: close once the queue is sent
	flushing bool       // flushQueue is sending what it took from the queue
	destroy  bool       // Destroy while connecting
	again    bool       // Reconnect while open: connect again after OnClose
	stopped  bool       // Shutdown: no more attempts
	againIn  time.Duration
	gen      uint64      // bumped by every arm: stale timers do nothing
	timer    func() bool // stops the Reconnect delay running; nil when none
	cancel   context.CancelFunc
	pbuf     []byte        // queued messages, back to back
	pmsgs    []pending     // their lengths
	pfull    bool          // the queue reached MaxSendBufferSize: a drain is owed
	pdrain   chan struct{} // closed when pfull clears; made by WaitDrained
	userCtx  any
	bytesIn  uint64 // of past connections
	bytesOut uint64
}

var _ Connection = (*Client)(nil)

// NewClient returns a Client for uri, not yet connected; call Connect.
// URIs name the transport: tcp://host:port, tls://host:port (also
// ssl://), unix:///path and udp://host:port (see the Client doc's UDP
// section; tcp:// with cfg.Transport "udp" is the same). The protocol is
// cfg.Protocol (nil: raw bytes). Protocol URIs (text://, frame://, ws://,
// wss://) are mapped to a transport URI and a protocol one level up, by
// goes.NewClient (and websocket.NewClientFor). It fails with ErrBadURI
// for a URI it cannot use, a protocol URI, or a protocol with an opening
// handshake over udp, and with ErrEngineUnsupported for EngineEpoll.
func NewClient(uri string, cfg ClientConfig) (*Client, error) {
	t, err := parseTarget(uri)
	if err != nil {
		return nil, err
	}
	if err := t.overTransport(uri, cfg.Transport); err != nil {
		return nil, err
	}
	if cfg.Engine != EngineAuto && cfg.Engine != EngineStd {
		return nil, fmt.Errorf("connections: client %s: engine %q: %w", uri, cfg.Engine, ErrEngineUnsupported)
	}
	cl := &Client{uri: uri, t: t, born: time.Now()}
	if hs, ok := cfg.Protocol.(protocols.ClientHandshaker); ok {
		if t.network == "udp" {
			return nil, fmt.Errorf("%w: %q: protocol %s opens with a handshake and needs a stream transport", ErrBadURI, uri, cfg.Protocol.Name())
		}
		cl.hs = hs
	}
	if t.transport == "tls" {
		cl.tlsCfg = cfg.TLSConfig.Clone()
		if cl.tlsCfg == nil {
			cl.tlsCfg = &tls.Config{}
		}
		if cl.tlsCfg.ServerName == "" {
			cl.tlsCfg.ServerName = t.server
		}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	cfg.Transport = t.transport
	cfg.Engine = EngineStd
	cfg.Config = cfg.Config.WithDefaults()
	cl.cfg = cfg
	cl.user = cl.pipes.wrap(cfg.Handler)
	cl.id = cfg.IDBase | 1<<31 | uint64(clientSeq.Add(1)&(1<<31-1))
	cl.log = cfg.Logger.With().Uint64("client", cl.id).Str("uri", uri).Logger()
	inner := cfg.Config
	// The read and send timeouts are a server's defence against its
	// clients; a Client applies none of them.
	inner.HeaderTimeout, inner.BodyTimeout, inner.KeepAliveTimeout, inner.SendTimeout = -1, -1, -1, -1
	inner.Handler = Handler{
		OnConnect:     cl.connected,
		OnMessage:     func(_ Connection, data []byte) { cl.user.OnMessage(cl, data) },
		OnClose:       cl.closed,
		OnError:       func(_ Connection, err error) { cl.onError(err) },
		OnBufferFull:  func(Connection) { cl.onBufferFull() },
		OnBufferDrain: func(Connection) { cl.user.OnBufferDrain(cl) },
	}
	cl.srv = NewServer(inner)
	return cl, nil
}

// URI returns the URI the Client connects to. Safe for concurrent use.
func (cl *Client) URI() string { return cl.uri }

// Connect starts connecting in the background, unless the Client is
// already connecting or connected; OnConnect or OnError and OnClose tell
// how it went. A Reconnect delay that is running is cut short. Safe for
// concurrent use.
func (cl *Client) Connect() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	switch cl.st {
	case clientInitial, clientWaiting, clientClosed:
		cl.armLocked(0)
	}
}

// Reconnect connects again after the delay: it closes the connection if
// there is one (what is queued is written first) and connects once its
// OnClose has run; with no connection it connects after the delay, which
// replaces one already running; while an attempt is in flight it does
// nothing. It is typically called from OnClose. Safe for concurrent use.
func (cl *Client) Reconnect(after time.Duration) {
	cl.mu.Lock()
	switch {
	case cl.stopped:
	case cl.st == clientOpen:
		cl.again, cl.againIn = true, after
		cur := cl.cur
		cl.mu.Unlock()
		cur.Close()
		return
	case cl.st != clientConnecting:
		cl.armLocked(after)
	}
	cl.mu.Unlock()
}

// armLocked starts an attempt now or after d, unless Shutdown was
// called. mu is held.
func (cl *Client) armLocked(d time.Duration) {
	if cl.stopped {
		return
	}
	cl.gen++
	gen := cl.gen
	cl.closeReq, cl.destroy = false, false
	if cl.timer != nil {
		cl.timer()
		cl.timer = nil
	}
	if d > 0 {
		cl.st = clientWaiting
		cl.timer = cl.srv.rt.AfterFunc(d, func() {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			if cl.gen == gen && cl.st == clientWaiting {
				cl.timer = nil
				cl.startLocked()
			}
		})
		return
	}
	cl.startLocked()
}

// startLocked starts dialling. mu is held.
func (cl *Client) startLocked() {
	cl.st = clientConnecting
	ctx, cancel := context.WithTimeout(context.Background(), cl.cfg.DialTimeout)
	cl.cancel = cancel
	cl.wg.Add(1)
	go cl.dial(ctx, cancel)
}

// goReport runs OnClose on its own goroutine, for an attempt that ends
// before it started.
func (cl *Client) goReport() {
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		cl.report(nil)
	}()
}

// dial runs one attempt and hands the connection to the Client's server.
func (cl *Client) dial(ctx context.Context, cancel context.CancelFunc) {
	defer cl.wg.Done()
	start := time.Now()
	nc, err := cl.connect(ctx)
	cancel()
	cl.mu.Lock()
	cl.cancel = nil
	destroyed := cl.destroy
	if err == nil && !destroyed {
		if uc, ok := nc.(*net.UDPConn); ok {
			cl.runUDP(uc) // mu is released there
			return
		}
		cl.mu.Unlock()
		cl.srv.rt.Std.Adopt(nc) // OnConnect: connected
		return
	}
	if nc != nil {
		nc.Close()
	}
	cl.endLocked()
	cl.mu.Unlock()
	if destroyed {
		cl.report(nil)
		return
	}
	cl.log.Debug().Err(err).Msg("client connect failed")
	cl.srv.rt.Errs.Add(1)
	cl.report(&ConnectError{URI: cl.uri, Err: err, Elapsed: time.Since(start)})
}

func (cl *Client) connect(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	if cl.cfg.Dialer != nil {
		d = *cl.cfg.Dialer
	}
	if cl.tlsCfg != nil {
		td := tls.Dialer{NetDialer: &d, Config: cl.tlsCfg}
		return td.DialContext(ctx, cl.t.network, cl.t.addr)
	}
	return d.DialContext(ctx, cl.t.network, cl.t.addr)
}

// endLocked marks the Client closed and drops what was queued. mu is held.
func (cl *Client) endLocked() {
	cl.st = clientClosed
	cl.cur = nil
	cl.ready = false
	cl.closeReq, cl.destroy, cl.flushing = false, false, false
	cl.pbuf, cl.pmsgs, cl.pfull = nil, nil, false
	cl.wakeQueueWaitersLocked()
}

// report runs OnError (when err is set) and OnClose of an attempt that
// never connected or of a Client closed before connecting.
func (cl *Client) report(err error) {
	cl.cb.Lock()
	defer cl.cb.Unlock()
	if err != nil {
		cl.onError(err)
	}
	if perr := core.Guard(func() { cl.user.OnClose(cl) }); perr != nil {
		cl.log.Error().Err(perr).Msg("OnClose panicked")
	}
}

func (cl *Client) onError(err error) {
	if h := cl.user.OnError; h != nil {
		if perr := core.Guard(func() { h(cl, err) }); perr != nil {
			cl.log.Error().Err(perr).Msg("OnError panicked")
		}
	}
}

func (cl *Client) onBufferFull() {
	if h := cl.user.OnBufferFull; h != nil {
		if perr := core.Guard(func() { h(cl) }); perr != nil {
			cl.log.Error().Err(perr).Msg("OnBufferFull panicked")
		}
	}
}

// connected is the connection's OnConnect: the Client takes it, starts
// the protocol's opening handshake or sends the queue, and runs OnConnect
// (and OnOpen when there is no handshake).
func (cl *Client) connected(c Connection) {
	in := c.(clientStream)
	cl.mu.Lock()
	if cl.destroy {
		cl.mu.Unlock()
		in.Destroy() // its OnClose ends the attempt
		return
	}
	cl.st = clientOpen
	cl.cur = in
	cl.ready = false
	if cl.paused {
		in.PauseRecv()
	}
	cl.mu.Unlock()
	cl.cb.Lock()
	defer cl.cb.Unlock()
	if cl.hs != nil {
		if err := cl.hs.StartClient(in, func() { cl.opened(in) }); err != nil {
			in.Fail(err)
			return
		}
	} else {
		cl.flushQueue(in)
	}
	if h := cl.user.OnConnect; h != nil {
		h(cl)
	}
	if cl.hs == nil && !in.Gone() {
		cl.onOpen()
	}
}

// opened is what a ClientHandshaker protocol calls, from Decode on in's
// goroutine, once the peer accepted the handshake: the queue goes out,
// then OnOpen runs.
func (cl *Client) opened(in clientConn) {
	cl.flushQueue(in)
	cl.onOpen()
}

// onOpen runs ClientConfig.OnOpen on the connection's goroutine; a panic
// in it is a panic in a callback, as for OnConnect.
func (cl *Client) onOpen() {
	if h := cl.cfg.OnOpen; h != nil {
		h(cl)
	}
}

// closed is the connection's OnClose.
func (cl *Client) closed(c Connection) {
	in := c.(clientConn)
	cl.mu.Lock()
	cl.bytesIn += in.BytesRead()
	cl.bytesOut += in.BytesWritten()
	again, after := cl.again, cl.againIn
	cl.again = false
	if cl.cur == in || cl.st == clientConnecting {
		cl.endLocked()
	}
	cl.mu.Unlock()
	cl.ended(again, after)
}

// ended runs the user's OnClose for an attempt that has ended and, when
// Reconnect asked for it, arms the next attempt. mu is not held.
func (cl *Client) ended(again bool, after time.Duration) {
	cl.cb.Lock()
	if perr := core.Guard(func() { cl.user.OnClose(cl) }); perr != nil {
		cl.log.Error().Err(perr).Msg("OnClose panicked")
	}
	cl.cb.Unlock()
	if again {
		cl.mu.Lock()
		if cl.st == clientClosed {
			cl.armLocked(after)
		}
		cl.mu.Unlock()
	}
}

// Close closes the connection once what is queued has been written; while
// connecting, once it is connected and the queue is sent. A Reconnect
// delay that is running is cancelled. OnClose follows. Safe for
// concurrent use; calling it again is harmless.
func (cl *Client) Close() error {
	cl.mu.Lock()
	cl.again = false
	switch cl.st {
	case clientOpen:
		cur := cl.cur
		if !cl.ready && (len(cl.pmsgs) > 0 || cl.flushing) {
			cl.closeReq = true
			cl.mu.Unlock()
			return nil
		}
		cl.mu.Unlock()
		return cur.Close()
	case clientConnecting:
		cl.closeReq = true
	case clientInitial, clientWaiting:
		cl.stopLocked()
		cl.goReport()
	}
	cl.mu.Unlock()
	return nil
}

// Destroy closes at once, dropping what is queued; an attempt in flight is
// abandoned. OnClose follows. Safe for concurrent use.
func (cl *Client) Destroy() {
	cl.mu.Lock()
	cl.again = false
	switch cl.st {
	case clientOpen:
		cur := cl.cur
		cl.pbuf, cl.pmsgs = nil, nil
		cl.mu.Unlock()
		cur.Destroy()
		return
	case clientConnecting:
		cl.destroy = true
		cl.pbuf, cl.pmsgs = nil, nil
		if cl.cancel != nil {
			cl.cancel()
		}
	case clientInitial, clientWaiting:
		cl.stopLocked()
		cl.goReport()
	}
	cl.mu.Unlock()
}

// Shutdown closes the Client for good and waits until its connection is
// gone and its goroutines have ended, or until ctx is done; then it
// destroys what is left, waits for that and returns ctx's error. Connect
// and Reconnect do nothing afterwards (also from OnClose). What is queued
// is written first, as for Close; an attempt in flight is waited for. It
// must not be called from the Client's callbacks. Safe for concurrent use.
func (cl *Client) Shutdown(ctx context.Context) error {
	cl.mu.Lock()
	cl.stopped = true
	cl.mu.Unlock()
	cl.Close()
	done := make(chan struct{})
	go func() {
		cl.wg.Wait()
		cl.srv.rt.WG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		cl.Destroy()
		<-done
		return ctx.Err()
	}
}

// stopLocked cancels a pending attempt and marks the Client closed.
func (cl *Client) stopLocked() {
	cl.gen++
	if cl.timer != nil {
		cl.timer()
		cl.timer = nil
	}
	cl.endLocked()
}
