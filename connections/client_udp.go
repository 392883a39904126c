package connections

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/protocols"
)

// clientConn is what a Client needs of its current connection: a
// clientStream for the stream transports, a *udpConn for udp.
type clientConn interface {
	SendMsg(b []byte, s string, raw bool) error
	SendFull() bool
	WaitDrained(ctx context.Context) error
	Gone() bool
	Close() error
	Destroy()
	CloseAfterFlush()
	PauseRecv()
	ResumeRecv()
	BytesRead() uint64
	BytesWritten() uint64
	SendBufferLen() int
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	State() any
	SetState(v any)
}

// clientStream is a clientConn of a stream transport: the standard
// engine's connection, which the Client gets in its OnConnect and
// OnClose as a Connection.
type clientStream interface {
	Connection
	clientConn
	Fail(err error)
}

var _ clientConn = (*udpConn)(nil)

// maxDatagram is the read buffer of a UDP Client: larger than any UDP
// payload (65507 bytes over IPv4, 65527 over IPv6), so that a datagram is
// never truncated.
const maxDatagram = 64 << 10

// udpConn is the connected UDP socket of one attempt of a udp Client.
// The Client's goroutine that dialled it reads it (runUDP); senders write
// to it directly, one datagram per message.
//
// Lock order: sendMu, then the Client's mu (Encode gets the Client and
// may read State through it); the Client's mu, then mu (PauseRecv).
type udpConn struct {
	cl *Client
	nc *net.UDPConn

	// sendMu serializes Encode and the write of one datagram, so that out
	// can be reused and a protocol's Encode of one connection never runs
	// concurrently (as for streams).
	sendMu sync.Mutex
	out    []byte

	stateMu sync.Mutex // guards state; never held while calling out
	state   any

	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	closed   atomic.Bool // Close or Destroy: sends fail, delivery stops

	mu     sync.Mutex // guards paused; cond waits on it
	cond   sync.Cond
	paused bool
}

// runUDP runs one UDP attempt on the goroutine that dialled it: it takes
// the socket, sends the queue, runs OnConnect, then reads datagrams until
// the socket is closed, and ends the attempt with OnClose. mu is held on
// entry and released here.
func (cl *Client) runUDP(nc *net.UDPConn) {
	u := &udpConn{cl: cl, nc: nc}
	u.cond.L = &u.mu
	u.paused = cl.paused
	cl.st = clientOpen
	cl.cur = u
	cl.ready = false
	cl.mu.Unlock()
	cl.log.Debug().Stringer("local", nc.LocalAddr()).Msg("client udp socket ready")

	cl.cb.Lock()
	cl.flushQueue(u)
	if h := cl.user.OnConnect; h != nil {
		if err := core.Guard(func() { h(cl) }); err != nil {
			cl.panicked(err, "OnConnect")
			u.close()
		}
	}
	if h := cl.cfg.OnOpen; h != nil && !u.closed.Load() {
		if err := core.Guard(func() { h(cl) }); err != nil {
			cl.panicked(err, "OnOpen")
			u.close()
		}
	}
	cl.cb.Unlock()

	u.readLoop()
	u.close()

	cl.mu.Lock()
	cl.bytesIn += u.bytesIn.Load()
	cl.bytesOut += u.bytesOut.Load()
	again, after := cl.again, cl.againIn
	cl.again = false
	if cl.cur == u {
		cl.endLocked()
	}
	cl.mu.Unlock()
	cl.log.Debug().Msg("client udp socket closed")
	cl.ended(again, after)
}

// panicked logs a callback's panic with its stack and reports it to
// OnError.
func (cl *Client) panicked(err error, callback string) {
	cl.srv.rt.Errs.Add(1)
	var pe *core.PanicError
	if errors.As(err, &pe) {
		cl.log.Error().Str("callback", callback).Interface("panic", pe.Value).Bytes("stack", pe.Stack).Msg("callback panicked")
	}
	cl.onError(err)
}

// readLoop delivers the datagrams of the socket until it is closed or
// fails for good.
func (u *udpConn) readLoop() {
	cl := u.cl
	buf := make([]byte, maxDatagram)
	for {
		n, err := u.nc.Read(buf)
		if err != nil {
			if u.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			cl.srv.rt.Errs.Add(1)
			err = fmt.Errorf("connections: client %s: receive: %w", cl.uri, err)
			if softUDPError(err) || core.IsTemporary(err) {
				cl.log.Debug().Err(err).Msg("client udp receive error")
				cl.onError(err)
				continue
			}
			cl.log.Info().Err(err).Msg("client udp socket failed, closed")
			cl.onError(err)
			return
		}
		u.bytesIn.Add(uint64(n))
		cl.srv.rt.Ctr.BytesIn.Add(uint64(n))
		if !u.waitResumed() {
			return
		}
		u.deliver(buf[:n])
	}
}

// softUDPError reports the errors a connected UDP socket returns, once,
// for an ICMP message about an earlier datagram (the peer's port or host
// unreachable): the socket itself is fine.
func softUDPError(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.EHOSTDOWN)
}

// waitResumed waits while reading is paused; it reports false once the
// socket is closed.
func (u *udpConn) waitResumed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for u.paused && !u.closed.Load() {
		u.cond.Wait()
	}
	return !u.closed.Load()
}

// deliver frames one datagram with the protocol and runs OnMessage for
// each message. A datagram never continues in the next one: a partial
// packet at its end, an oversize or malformed packet, or a panic in
// OnMessage drops the rest of the datagram and is reported to OnError;
// the Client keeps reading.
func (u *udpConn) deliver(b []byte) {
	cl := u.cl
	if cl.cfg.Protocol == nil && len(b) > cl.cfg.MaxPackageSize {
		u.reject(len(b), fmt.Errorf("%w: %d bytes, limit %d", protocols.ErrPackageTooLarge, len(b), cl.cfg.MaxPackageSize))
		return
	}
	var derr error
	if err := core.Guard(func() { _, _, derr = core.Deliver(cl.srv.rt, &cl.srv.rt.Ctr, cl, udpHalt{cl, u}, b, true) }); err != nil {
		cl.panicked(err, "OnMessage")
		return
	}
	if derr != nil {
		u.reject(len(b), derr)
	}
}

func (u *udpConn) reject(n int, err error) {
	cl := u.cl
	cl.srv.rt.Errs.Add(1)
	err = fmt.Errorf("connections: client %s: bad datagram of %d bytes dropped: %w", cl.uri, n, err)
	cl.log.Info().Int("bytes", n).Err(err).Msg("bad datagram dropped")
	cl.onError(err)
}

// udpHalt is the Client as deliver sees it, with the halt of its socket.
type udpHalt struct {
	*Client
	u *udpConn
}

func (h udpHalt) Halted() bool { return h.u.closed.Load() }

// send encodes one message and writes it as one datagram, on the
// caller's goroutine. A pending ICMP error that the write returns
// concerns an earlier datagram and means this one was not sent: it is
// reported to OnError and the write is tried once more.
func (u *udpConn) SendMsg(b []byte, s string, raw bool) error {
	if u.closed.Load() {
		return ErrClosed
	}
	if b == nil {
		b = core.StringBytes(s)
	}
	cl := u.cl
	u.sendMu.Lock()
	out := b
	if !raw && cl.cfg.Protocol != nil {
		var err error
		u.out, err = cl.cfg.Protocol.Encode(cl, u.out[:0], b)
		if err != nil {
			u.sendMu.Unlock()
			cl.srv.rt.Errs.Add(1)
			err = fmt.Errorf("connections: client %s: encode: %w", cl.uri, err)
			cl.onError(err)
			return err
		}
		out = u.out
	}
	n, err := u.nc.Write(out)
	var earlier error
	if err != nil && softUDPError(err) && !u.closed.Load() {
		earlier = err
		n, err = u.nc.Write(out)
	}
	u.sendMu.Unlock()
	if n > 0 {
		u.bytesOut.Add(uint64(n))
		cl.srv.rt.Ctr.BytesOut.Add(uint64(n))
	}
	if earlier != nil {
		cl.srv.rt.Errs.Add(1)
		cl.onError(fmt.Errorf("connections: client %s: send: earlier datagram: %w", cl.uri, earlier))
	}
	if err != nil {
		if u.closed.Load() || errors.Is(err, net.ErrClosed) {
			return ErrClosed
		}
		cl.srv.rt.Errs.Add(1)
		err = fmt.Errorf("connections: client %s: send: %w", cl.uri, err)
		cl.onError(err)
		return err
	}
	return nil
}

// close closes the socket; the reader then ends the attempt. Safe for
// concurrent use; only the first call does anything.
func (u *udpConn) close() {
	if u.closed.Swap(true) {
		return
	}
	u.nc.Close()
	u.mu.Lock()
	u.cond.Broadcast()
	u.mu.Unlock()
}

func (u *udpConn) SendFull() bool { return false }

// WaitDrained never waits: a datagram is written at once, there is no
// send buffer to drain.
func (u *udpConn) WaitDrained(context.Context) error {
	if u.Gone() {
		return ErrClosed
	}
	return nil
}
func (u *udpConn) Gone() bool           { return u.closed.Load() }
func (u *udpConn) Close() error         { u.close(); return nil }
func (u *udpConn) Destroy()             { u.close() }
func (u *udpConn) CloseAfterFlush()     { u.close() }
func (u *udpConn) BytesRead() uint64    { return u.bytesIn.Load() }
func (u *udpConn) BytesWritten() uint64 { return u.bytesOut.Load() }
func (u *udpConn) SendBufferLen() int   { return 0 }
func (u *udpConn) LocalAddr() net.Addr  { return u.nc.LocalAddr() }
func (u *udpConn) RemoteAddr() net.Addr { return u.nc.RemoteAddr() }

func (u *udpConn) PauseRecv() {
	u.mu.Lock()
	u.paused = true
	u.mu.Unlock()
}

func (u *udpConn) ResumeRecv() {
	u.mu.Lock()
	u.paused = false
	u.cond.Broadcast()
	u.mu.Unlock()
}

func (u *udpConn) State() any {
	u.stateMu.Lock()
	defer u.stateMu.Unlock()
	return u.state
}

func (u *udpConn) SetState(v any) {
	u.stateMu.Lock()
	u.state = v
	u.stateMu.Unlock()
}
