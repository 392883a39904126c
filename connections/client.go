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

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/websocket"
)

// DefaultDialTimeout bounds a Client's connect, TLS handshake included,
// when ClientConfig.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// Errors of outgoing connections.
var (
	// ErrBadURI: NewClient cannot use the URI (unknown scheme, no port,
	// a path on a scheme that takes none, ...).
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
	// listener. Protocol nil means the URI scheme's (none for tcp://, tls://,
	// unix:// and udp://); it must be nil for ws:// and wss://, whose
	// protocol is set up from WebSocket. The Handler's callbacks receive the
	// *Client. Transport is set from the URI, except that "udp" makes a
	// tcp://, text:// or frame:// URI a UDP client with that scheme's
	// protocol (as NewGoer's transport argument does for listeners). Engine
	// must be EngineAuto or EngineStd: a Client runs on the standard engine
	// (one goroutine while connected).
	Config
	// TLSConfig is used for tls:// and wss://; nil means the system roots.
	// ServerName defaults to the URI's host.
	TLSConfig *tls.Config
	// Dialer, when set, is copied for every attempt (local address,
	// keep-alive, socket options through Control).
	Dialer *net.Dialer
	// DialTimeout bounds one connect attempt, TLS handshake included
	// (default DefaultDialTimeout).
	DialTimeout time.Duration
	// WebSocket configures ws:// and wss://.
	WebSocket WebSocketOptions
}

// WebSocketOptions configure a Client's WebSocket side.
type WebSocketOptions struct {
	Origin       string       // Origin field, omitted when empty
	Subprotocols []string     // offered, most preferred first
	Header       []http.Field // extra handshake fields
	// Compression offers permessage-deflate when Enabled.
	Compression websocket.Compression
	// MaxMessageSize caps a received message (default: MaxPackageSize).
	MaxMessageSize int
	// CloseTimeout bounds the wait for the server's close frame after
	// websocket.Close (default websocket.DefaultCloseTimeout).
	CloseTimeout time.Duration
	// Binary makes Send send binary frames instead of text.
	Binary bool
	// OnOpen runs once the server's 101 answer checks out, on the
	// connection's goroutine like the other callbacks, after the messages
	// sent before it were queued (workerman's onWebSocketConnect).
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
// usually called. For ws:// and wss://, OnConnect runs once TCP (and TLS)
// is up and WebSocketOptions.OnOpen once the server accepted the upgrade;
// a refused upgrade is reported to OnError (errors.Is
// websocket.ErrHandshake) and the connection closes.
//
// Sends made before the connection is up (and, for WebSocket, before the
// upgrade is accepted) are queued, up to MaxSendBufferSize bytes, and sent
// in order when it is; they are dropped if the attempt fails. Sends after
// Close or once closed fail with ErrClosed.
//
// Concurrency: every method is safe for concurrent use and none blocks
// on the network. The callbacks of a Client never run concurrently with
// each other, across reconnections too (OnError from a failed Send and
// OnBufferFull run on the sender's goroutine, as for server connections).
// State and SetState are the protocol's and follow the protocols.Conn rule.
//
// UDP (udp://, or text:// and frame:// with Transport "udp"; workerman's
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
	cfg    ClientConfig // with defaults; cfg.Protocol set
	ws     *websocket.Protocol
	wsReq  websocket.ClientRequest
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

	// Lock order: mu, then the connection's own lock (cur's base.mu).
	mu       sync.Mutex
	st       int
	cur      clientConn // the connection (*stdConn or *udpConn), while clientOpen
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

type pending struct {
	n   int
	raw bool
}

var _ Connection = (*Client)(nil)

// NewClient returns a Client for uri, not yet connected; call Connect.
// URIs: tcp://host:port (raw bytes, or cfg.Protocol), tls://host:port
// (also ssl://), text://host:port, frame://host:port,
// ws://host[:port][/path][?query], wss://..., unix:///path, and
// udp://host:port (raw datagrams, or cfg.Protocol; text:// and frame://
// with cfg.Transport "udp" also give a UDP client: see the Client doc's
// UDP section). It fails with ErrBadURI for a URI it cannot use and
// ErrEngineUnsupported for EngineEpoll.
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
	if t.ws {
		if cfg.Protocol != nil {
			return nil, fmt.Errorf("%w: %q: ws:// and wss:// set up their own protocol; configure it with ClientConfig.WebSocket", ErrBadURI, uri)
		}
		o := cfg.WebSocket
		p := websocket.NewClient()
		p.Compression = o.Compression
		p.MaxMessageSize = o.MaxMessageSize
		p.CloseTimeout = o.CloseTimeout
		p.OnOpen = cl.wsOpened
		cl.ws = p
		cl.wsReq = websocket.ClientRequest{Host: t.host, Path: t.path, Origin: o.Origin, Subprotocols: o.Subprotocols, Header: o.Header}
		cfg.Protocol = p
	} else if cfg.Protocol == nil {
		cfg.Protocol = t.proto
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
	cfg.Config = cfg.Config.withDefaults()
	cl.cfg = cfg
	cl.user = cl.pipes.wrap(cfg.Handler)
	cl.id = cfg.IDBase | 1<<31 | uint64(clientSeq.Add(1)&(1<<31-1))
	cl.log = cfg.Logger.With().Uint64("client", cl.id).Str("uri", uri).Logger()
	inner := cfg.Config
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
		cl.timer = cl.srv.afterFunc(d, func() {
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
		cl.srv.startStd(nc) // OnConnect: connected
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
	cl.srv.errs.Add(1)
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

// wakeQueueWaitersLocked releases the goroutines waiting in waitDrained
// for the queue to clear. mu is held.
func (cl *Client) wakeQueueWaitersLocked() {
	if cl.pdrain != nil {
		close(cl.pdrain)
		cl.pdrain = nil
	}
}

// WaitDrained is the function WaitDrained for a Client: it waits on the
// Client's connection once it is ready, on its queue before.
func (cl *Client) WaitDrained(ctx context.Context) error {
	for {
		cl.mu.Lock()
		switch {
		case cl.st == clientClosed || cl.closeReq || cl.destroy:
			cl.mu.Unlock()
			return ErrClosed
		case cl.ready:
			in := cl.cur
			cl.mu.Unlock()
			return in.WaitDrained(ctx)
		case !cl.pfull:
			cl.mu.Unlock()
			return nil
		}
		if cl.pdrain == nil {
			cl.pdrain = make(chan struct{})
		}
		ch := cl.pdrain
		cl.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// report runs OnError (when err is set) and OnClose of an attempt that
// never connected or of a Client closed before connecting.
func (cl *Client) report(err error) {
	cl.cb.Lock()
	defer cl.cb.Unlock()
	if err != nil {
		cl.onError(err)
	}
	if perr := guard(func() { cl.user.OnClose(cl) }); perr != nil {
		cl.log.Error().Err(perr).Msg("OnClose panicked")
	}
}

func (cl *Client) onError(err error) {
	if h := cl.user.OnError; h != nil {
		if perr := guard(func() { h(cl, err) }); perr != nil {
			cl.log.Error().Err(perr).Msg("OnError panicked")
		}
	}
}

func (cl *Client) onBufferFull() {
	if h := cl.user.OnBufferFull; h != nil {
		if perr := guard(func() { h(cl) }); perr != nil {
			cl.log.Error().Err(perr).Msg("OnBufferFull panicked")
		}
	}
}

// connected is the connection's OnConnect: the Client takes it, starts
// the WebSocket handshake or sends the queue, and runs OnConnect.
func (cl *Client) connected(c Connection) {
	in := c.(*stdConn)
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
	if cl.ws != nil {
		if err := cl.ws.StartClient(in, cl.wsReq); err != nil {
			in.fail(err)
			return
		}
		if cl.cfg.WebSocket.Binary {
			websocket.SetBinary(in, true)
		}
	} else {
		cl.flushQueue(in)
	}
	if h := cl.user.OnConnect; h != nil {
		h(cl)
	}
}

// wsOpened is the WebSocket protocol's OnOpen: the upgrade was accepted.
func (cl *Client) wsOpened(c protocols.Conn) {
	in, ok := c.(*stdConn)
	if !ok {
		return
	}
	cl.flushQueue(in)
	if h := cl.cfg.WebSocket.OnOpen; h != nil {
		h(cl)
	}
}

// flushQueue sends what was queued before in was ready, then lets sends
// through; it runs on in's dispatcher, so they are written when it ends.
func (cl *Client) flushQueue(in clientConn) {
	for {
		cl.mu.Lock()
		if cl.cur != in {
			cl.mu.Unlock()
			return
		}
		if len(cl.pmsgs) == 0 {
			cl.ready = true
			cl.flushing = false
			owed := cl.pfull
			cl.pfull = false
			cl.wakeQueueWaitersLocked()
			closing := cl.closeReq
			cl.mu.Unlock()
			switch {
			case closing:
				in.Close()
			case owed && !in.sendFull():
				// The queue was full and is now in the connection's
				// buffer with room to spare: the drain is due now.
				cl.user.OnBufferDrain(cl)
			}
			return
		}
		buf, msgs := cl.pbuf, cl.pmsgs
		cl.pbuf, cl.pmsgs = nil, nil
		cl.flushing = true
		cl.mu.Unlock()
		off := 0
		for _, m := range msgs {
			in.send(buf[off:off+m.n], "", m.raw)
			off += m.n
		}
	}
}

// closed is the connection's OnClose.
func (cl *Client) closed(c Connection) {
	in := c.(*stdConn)
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
	if perr := guard(func() { cl.user.OnClose(cl) }); perr != nil {
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

// Send path.

// Send encodes data with the Client's protocol and queues it, as for a
// server connection; before the connection is ready it is queued on the
// Client. Safe for concurrent use; never blocks.
func (cl *Client) Send(data string, raw bool) error { return cl.send(nil, data, raw) }

// SendBytes is Send for a byte slice; data may be reused once it returns.
func (cl *Client) SendBytes(data []byte, raw bool) error { return cl.send(data, "", raw) }

// WriteRaw queues b as is. Safe for concurrent use.
func (cl *Client) WriteRaw(b []byte) error { return cl.send(b, "", true) }

func (cl *Client) send(b []byte, s string, raw bool) error {
	cl.mu.Lock()
	switch {
	case cl.st == clientClosed || cl.closeReq || cl.destroy:
		cl.mu.Unlock()
		return ErrClosed
	case cl.ready:
		in := cl.cur
		cl.mu.Unlock()
		return in.send(b, s, raw)
	}
	limit := cl.cfg.MaxSendBufferSize
	if len(cl.pbuf) >= limit {
		cl.mu.Unlock()
		cl.srv.errs.Add(1)
		cl.onError(ErrSendBufferFull)
		return ErrSendBufferFull
	}
	n := len(cl.pbuf)
	if b != nil {
		cl.pbuf = append(cl.pbuf, b...)
	} else {
		cl.pbuf = append(cl.pbuf, s...)
	}
	cl.pmsgs = append(cl.pmsgs, pending{n: len(cl.pbuf) - n, raw: raw})
	full := !cl.pfull && len(cl.pbuf) >= limit
	if full {
		cl.pfull = true
	}
	cl.mu.Unlock()
	if full {
		cl.onBufferFull()
	}
	return nil
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
		cl.srv.wg.Wait()
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

// Connection methods.

// ID is the Client's id, the same across reconnections: the IDBase bits,
// bit 31 set and a sequence. Safe for concurrent use.
func (cl *Client) ID() uint64 { return cl.id }

// LocalAddr is the connection's local address, or an empty address of the
// URI's network while there is no connection. Safe for concurrent use.
func (cl *Client) LocalAddr() net.Addr {
	if in := cl.conn(); in != nil {
		return in.LocalAddr()
	}
	switch cl.t.network {
	case "unix":
		return &net.UnixAddr{Net: "unix"}
	case "udp":
		return &net.UDPAddr{}
	}
	return &net.TCPAddr{}
}

// RemoteAddr is the peer's address, or the URI's while there is no
// connection. Safe for concurrent use.
func (cl *Client) RemoteAddr() net.Addr {
	if in := cl.conn(); in != nil {
		return in.RemoteAddr()
	}
	return clientAddr{network: cl.t.network, addr: cl.t.addr}
}

// Transport is "tcp", "tls", "unix" or "udp". Safe for concurrent use.
func (cl *Client) Transport() string { return cl.cfg.Transport }

// Protocol is the Client's protocol, nil for raw bytes. Safe for concurrent use.
func (cl *Client) Protocol() protocols.Protocol { return cl.cfg.Protocol }

// PauseRecv stops reading, also from connections made later. Safe for
// concurrent use.
func (cl *Client) PauseRecv() {
	cl.mu.Lock()
	cl.paused = true
	if cl.cur != nil {
		cl.cur.PauseRecv()
	}
	cl.mu.Unlock()
}

// ResumeRecv undoes PauseRecv. Safe for concurrent use.
func (cl *Client) ResumeRecv() {
	cl.mu.Lock()
	cl.paused = false
	if cl.cur != nil {
		cl.cur.ResumeRecv()
	}
	cl.mu.Unlock()
}

// BytesRead counts the bytes received over all connections. Safe for concurrent use.
func (cl *Client) BytesRead() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := cl.bytesIn
	if cl.cur != nil {
		n += cl.cur.BytesRead()
	}
	return n
}

// BytesWritten counts the bytes written over all connections. Safe for concurrent use.
func (cl *Client) BytesWritten() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := cl.bytesOut
	if cl.cur != nil {
		n += cl.cur.BytesWritten()
	}
	return n
}

// SendBufferLen counts the bytes queued on the Client and on its
// connection. Safe for concurrent use.
func (cl *Client) SendBufferLen() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := len(cl.pbuf)
	if cl.cur != nil {
		n += cl.cur.SendBufferLen()
	}
	return n
}

// CreatedAt is when NewClient made the Client. Safe for concurrent use.
func (cl *Client) CreatedAt() time.Time { return cl.born }

// Context returns the value stored with SetContext; it survives
// reconnections. Safe for concurrent use.
func (cl *Client) Context() any {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.userCtx
}

// SetContext stores a user value with the Client. Safe for concurrent use.
func (cl *Client) SetContext(v any) {
	cl.mu.Lock()
	cl.userCtx = v
	cl.mu.Unlock()
}

// State is the protocol state of the current connection (nil without
// one). Only the Client's callbacks may call it.
func (cl *Client) State() any {
	if in := cl.conn(); in != nil {
		return in.State()
	}
	return nil
}

// SetState stores protocol state with the current connection; without one
// it does nothing. Only the Client's callbacks may call it.
func (cl *Client) SetState(v any) {
	if in := cl.conn(); in != nil {
		in.SetState(v)
	}
}

// MaxPackageSize is the largest packet accepted. Safe for concurrent use.
func (cl *Client) MaxPackageSize() int { return cl.cfg.MaxPackageSize }

// CloseAfterFlush closes once what is queued is written. Safe for
// concurrent use.
func (cl *Client) CloseAfterFlush() {
	if in := cl.conn(); in != nil {
		in.CloseAfterFlush()
		return
	}
	cl.Close()
}

// Draining is always false: a Client is not drained with a worker's
// listener. Safe for concurrent use.
func (cl *Client) Draining() bool { return false }

func (cl *Client) conn() clientConn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.cur
}

// sendFull reports whether the queue or the connection's buffer reached
// its limit and has not drained.
func (cl *Client) sendFull() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.pfull || cl.cur != nil && cl.cur.sendFull()
}

// gone reports whether the Client is closed or closing.
func (cl *Client) gone() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.st == clientClosed || cl.closeReq || cl.destroy || cl.cur != nil && cl.cur.gone()
}
