package connections

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections/internal/core"
)

// closeFlushTimeout bounds how long Close waits for queued data to reach a
// peer that does not read.
const closeFlushTimeout = 10 * time.Second

// stdConn is a stream connection of the standard engine: one reading
// goroutine per connection. The send path never blocks that goroutine:
// data is queued, written at the end of each read batch by one
// non-blocking write, and whatever the kernel does not take is written by
// a short-lived writer goroutine. It serves every net.Listener, TLS
// included.
type stdConn struct {
	base
	nc   net.Conn
	rw   rawWriter // non-blocking write attempts; rw.rc is nil when the conn has no RawConn (TLS)
	cond sync.Cond // on base.mu: signalled on resume and on close
	// cbMu is held while a callback runs, so that OnBufferDrain from a
	// writer goroutine never overlaps the reading goroutine's callbacks:
	// a drain that finds it held is left in drainPending for the holder.
	// Only ever tried (TryLock) inside base.mu's callers, never waited for
	// there.
	cbMu         sync.Mutex
	drainPending atomic.Bool
	// shedWake: the input budget shed the connection from another
	// goroutine and set a read deadline in the past, so that the reading
	// goroutine lets go of its buffer now (ShedInput).
	shedWake atomic.Bool
}

var _ Connection = (*stdConn)(nil)

// stdEngine is EngineStd: a goroutine per connection, for every
// listener on every platform. Its traffic counters are the server's own
// (Server.ctr, shared with datagrams) and its goroutines are counted in
// Server.wg.
type stdEngine struct {
	s     *Server
	conns map[*stdConn]struct{} // under s.mu
}

var _ fallbackEngine = (*stdEngine)(nil)

func newStdEngine(s *Server) *stdEngine {
	return &stdEngine{s: s, conns: make(map[*stdConn]struct{})}
}

func (e *stdEngine) name() string             { return EngineStd }
func (e *stdEngine) usable(net.Listener) bool { return true }

// appendConns appends the engine's connections to dst.
func (e *stdEngine) appendConns(dst []Connection) []Connection {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	for c := range e.conns {
		dst = append(dst, c)
	}
	return dst
}

// addStats adds nothing: Stats counts Server.ctr itself.
func (e *stdEngine) addStats(*Stats) {}

// wake does nothing: the engine's goroutines end with their connections.
func (e *stdEngine) wake() {}

// wait waits for the connections' goroutines.
func (e *stdEngine) wait() { e.s.wg.Wait() }

// add counts c in, unless the server is closed.
func (e *stdEngine) add(c *stdConn) bool {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	e.conns[c] = struct{}{}
	s.open.Add(1)
	s.accepted.Add(1)
	return true
}

// remove counts c out once its OnClose has run.
func (e *stdEngine) remove(c *stdConn) {
	e.s.mu.Lock()
	delete(e.conns, c)
	e.s.mu.Unlock()
	e.s.connGone()
}

// serve accepts from ln with one goroutine per connection.
func (e *stdEngine) serve(ln net.Listener) error {
	s := e.s
	if !s.track(ln, true) {
		return ErrServerClosed
	}
	defer s.acceptWG.Done()
	defer s.untrack(ln)
	var (
		backoff time.Duration
		grace   time.Time // waitShare's
	)
	for {
		if s.bal != nil {
			s.waitShare(s.bal, &grace) // false: draining, Accept fails on the closed listener
		}
		nc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = nextBackoff(backoff)
				s.log.Warn().Err(err).Dur("retry_in_ms", backoff).Msg("accept failed")
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.stopAccept:
					t.Stop()
				}
				continue
			}
			return fmt.Errorf("connections: accept: %w", err)
		}
		backoff = 0
		e.adopt(nc)
		if s.bal != nil {
			s.bal.Accepted(s.open.Load())
		}
	}
}

// nextBackoff doubles an accept retry delay from 5 ms up to 1 s.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}

// newStdConn allocates a stdConn, with its timers in the same allocation
// when the server has any.
func (s *Server) newStdConn() *stdConn {
	if !s.timed {
		return new(stdConn)
	}
	ct := new(struct {
		stdConn
		tm connTimers
	})
	ct.stdConn.tm = &ct.tm
	return &ct.stdConn
}

// adopt runs nc as a connection of the standard engine: Serve's, and
// a Client's.
func (e *stdEngine) adopt(nc net.Conn) {
	s := e.s
	c := s.newStdConn()
	c.nc = nc
	c.init(s, c, &s.ctr)
	c.cond.L = &c.mu
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rw.init(rc)
		}
	}
	if !e.add(c) {
		nc.Close()
		return
	}
	c.startTimers()
	s.wg.Add(1)
	go c.serve()
}

func (c *stdConn) serve() {
	defer c.s.wg.Done()
	defer c.finish()
	s := c.s
	s.log.Debug().Uint64("conn", c.id).Stringer("remote", c.nc.RemoteAddr()).Msg("connection accepted")
	c.cbMu.Lock()
	c.callback(s.cfg.Handler.OnConnect)
	c.unlockCallbacks()
	c.flush()
	buf := make([]byte, 0, s.cfg.ReadBufferSize)
	held := 0        // cap(buf), charged to the input budget while buf holds a partial packet
	pending := false // buf may hold packets held back by PauseRecv
	dropped := 0     // input dropped since the connection began closing
	for {
		if !c.waitReadable() {
			return
		}
		if pending && !c.halted() {
			// Packets that arrived before PauseRecv are delivered first.
			buf, pending = c.consume(buf)
			buf, held = c.hold(buf, held)
			continue
		}
		if len(buf) == cap(buf) {
			buf, held = c.grow(buf, held)
		}
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			c.bytesIn.Add(uint64(n))
			s.ctr.bytesIn.Add(uint64(n))
			c.touchIn()
			if c.has(fClosing | fSockClosed) {
				buf, held = c.release(buf, held) // closing: the rest of the input is dropped
				if dropped += n; dropped >= lingerBytes {
					c.waitClosed() // for the flush and lingerTimeout
					return
				}
			} else {
				buf, pending = c.consume(buf[:len(buf)+n])
				buf, held = c.hold(buf, held)
			}
		}
		if err == io.EOF {
			// The peer has finished sending: answer what it asked, then
			// close (Close bounds the wait for a peer that does not read).
			c.inputEnded()
			c.waitClosed()
			return
		}
		if err != nil {
			if c.shedWake.Swap(false) && errors.Is(err, os.ErrDeadlineExceeded) {
				// Shed by another connection: drop the input, go on
				// reading (and dropping) while the connection closes.
				c.nc.SetReadDeadline(time.Time{})
				buf, held = c.release(buf, held)
				pending = false
				continue
			}
			return
		}
	}
}

// consume dispatches the packets in buf, flushes the answers and returns
// buf holding what is left, and whether that may hold packets held back
// by PauseRecv.
func (c *stdConn) consume(buf []byte) ([]byte, bool) {
	c.cbMu.Lock()
	used, halted := c.dispatch(buf)
	c.unlockCallbacks()
	c.flush()
	if c.has(fClosing | fSockClosed) {
		return buf[:0], false
	}
	rest := copy(buf, buf[used:])
	buf = buf[:rest]
	if rest == 0 && cap(buf) > 4*c.s.cfg.ReadBufferSize {
		buf = make([]byte, 0, c.s.cfg.ReadBufferSize)
	}
	return buf, halted && rest > 0
}

// grow returns buf, full, with more room (core.InputSize), charged to the input
// budget, and its new charge. When the packet would exceed MaxPackageSize
// it fails the connection, and when the budget refuses the room it sheds
// it; buf comes back emptied then. A closing connection's buf is emptied
// (it reads only to drop).
func (c *stdConn) grow(buf []byte, held int) ([]byte, int) {
	s := c.s
	if c.has(fClosing | fSockClosed) {
		return c.release(buf, held)
	}
	size, err := core.InputSize(len(buf), cap(buf), s.packetSize(c, buf), s.cfg.MaxPackageSize, s.cfg.ReadBufferSize)
	if err != nil {
		c.fail(err)
		return c.release(buf, held)
	}
	if !s.budget.holdBuf(&c.base, size) {
		c.shed(true)
		return c.release(buf, held)
	}
	nb := make([]byte, len(buf), size)
	copy(nb, buf)
	return nb, size
}

// hold charges buf to the input budget while it holds a partial packet
// (after consume), first giving it the packet's size when the protocol
// knows it, and returns it with its charge: emptied if the budget refused
// it (c is shed).
func (c *stdConn) hold(buf []byte, held int) ([]byte, int) {
	switch {
	case len(buf) == 0 || c.has(fClosing|fSockClosed):
		return c.release(buf, held)
	case c.s.packetSize(c, buf) > cap(buf):
		return c.grow(buf, held)
	case cap(buf) == held:
		return buf, held
	case !c.s.budget.holdBuf(&c.base, cap(buf)):
		c.shed(true)
		return c.release(buf, held)
	}
	return buf, cap(buf)
}

// release empties buf, gives its charge back and trades a large buffer
// for one of ReadBufferSize.
func (c *stdConn) release(buf []byte, held int) ([]byte, int) {
	if held > 0 {
		c.s.budget.holdBuf(&c.base, 0)
	}
	if cap(buf) > 4*c.s.cfg.ReadBufferSize {
		return make([]byte, 0, c.s.cfg.ReadBufferSize), 0
	}
	return buf[:0], 0
}

func (c *stdConn) finish() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
	c.s.budget.forget(&c.base)
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	if h := c.s.cfg.Handler.OnClose; h != nil {
		if err := guard(func() { h(c) }); err != nil {
			c.s.log.Error().Uint64("conn", c.id).Err(err).Msg("OnClose panicked")
		}
	}
	c.s.log.Debug().Uint64("conn", c.id).Msg("connection closed")
	c.s.std.(*stdEngine).remove(c)
}

// waitClosed blocks until the socket is closed.
func (c *stdConn) waitClosed() {
	c.mu.Lock()
	for !c.has(fSockClosed) {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

// waitReadable blocks while the connection is paused (PauseRecv, or
// backpressure: its output is over the limit) and not lingering; it
// reports whether the socket is still open.
func (c *stdConn) waitReadable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.readStopped() && !c.has(fSockClosed) {
		c.cond.Wait()
	}
	return !c.has(fSockClosed)
}

// Engine hooks.

func (c *stdConn) Kick() { c.flush() }

func (c *stdConn) CloseSocketLocked() {
	c.nc.Close()
	c.cond.Broadcast()
}

// ShedInput wakes the reading goroutine with a read deadline in the past,
// so that it drops its buffer now rather than when the peer sends again.
func (c *stdConn) ShedInput() {
	c.shedWake.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// Resumed wakes the reading goroutine after ResumeRecv, or once the
// output has drained below the low watermark.
func (c *stdConn) Resumed() {
	c.mu.Lock()
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *stdConn) FlushDeadline() { c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout)) }

// LingerLocked shuts down the sending side of TCP and Unix sockets. TLS
// does not linger: its close_notify is a write that may block.
func (c *stdConn) LingerLocked() bool {
	var err error
	switch nc := c.nc.(type) {
	case *net.TCPConn:
		err = nc.CloseWrite()
	case *net.UnixConn:
		err = nc.CloseWrite()
	default:
		return false
	}
	if err != nil {
		return false
	}
	c.cond.Broadcast() // a paused reader reads again, to drop
	c.destroyAfterLocked(lingerTimeout)
	return true
}

func (c *stdConn) Drained() {
	c.drainPending.Store(true)
	c.runPending()
}

// unlockCallbacks releases cbMu and runs a drain that came meanwhile.
func (c *stdConn) unlockCallbacks() {
	c.cbMu.Unlock()
	c.runPending()
}

// runPending runs OnBufferDrain if one is pending and no other callback
// runs; otherwise the running one's unlockCallbacks will.
func (c *stdConn) runPending() {
	for c.drainPending.Load() && c.cbMu.TryLock() {
		if c.drainPending.Swap(false) {
			c.callback(c.s.cfg.Handler.OnBufferDrain)
		}
		c.cbMu.Unlock()
	}
}

func (c *stdConn) Local() net.Addr  { return c.nc.LocalAddr() }
func (c *stdConn) Remote() net.Addr { return c.nc.RemoteAddr() }

// flush writes what is queued: one non-blocking attempt here, and a writer
// goroutine for whatever the kernel did not take.
func (c *stdConn) flush() {
	for {
		buf := c.takeOut()
		if buf == nil {
			return
		}
		n := 0
		var err error
		if c.rw.rc != nil {
			n, err = c.rw.tryWrite(buf.B)
			c.ctr.writes.Add(1)
		}
		if err != nil || n == len(buf.B) {
			c.writeDone(buf, n, err)
			continue
		}
		c.wroteSome(n)
		c.waitingOut(n > 0)
		c.s.wg.Add(1)
		go c.writeLoop(buf, n)
		return
	}
}

// writeChunk is the most a writer goroutine writes in one call, so that
// SendTimeout sees output move while a large buffer goes out to a slow
// peer.
const writeChunk = 64 << 10

// writeLoop writes buf.b[off:] with blocking writes, then what was queued
// meanwhile (flush). Closing the socket ends a write that blocks.
func (c *stdConn) writeLoop(buf *buffer, off int) {
	defer c.s.wg.Done()
	for {
		end := min(off+writeChunk, len(buf.B))
		n, err := c.nc.Write(buf.B[off:end])
		c.ctr.writes.Add(1)
		if off += n; err != nil || off == len(buf.B) {
			c.writeDone(buf, n, err)
			break
		}
		c.wroteSome(n)
		c.waitingOut(true)
	}
	c.flush()
}

func (c *stdConn) EngineName() string { return EngineStd }

// BatchKick: every connection has its own goroutine, no shared queue.
func (c *stdConn) BatchKick() (core.KickQueue, bool) { return nil, false }

// A Client's stream connections are the standard engine's.
var _ clientStream = (*stdConn)(nil)
