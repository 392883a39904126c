// Package std is EngineStd, the standard engine of package connections:
// a reading goroutine per connection, for every net.Listener (TLS
// included) on every platform, and the engine that adopts a Client's
// dialled connection. Its writes are a non-blocking attempt first
// (write_unix.go), then a short-lived writer goroutine. It implements
// connections/internal/core's core.FallbackEngine and core.Ops; New is its
// only exported name, and only connections imports it.
package std

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

// stdConn is a stream connection of the standard engine: one reading
// goroutine per connection. The send path never blocks that goroutine:
// data is queued, written at the end of each read batch by one
// non-blocking write, and whatever the kernel does not take is written by
// a short-lived writer goroutine. It serves every net.Listener, TLS
// included.
type stdConn struct {
	core.Conn
	nc   net.Conn
	rw   rawWriter // non-blocking write attempts; rw.rc is nil when the conn has no RawConn (TLS)
	cond sync.Cond // on core.Conn.Mu: signalled on resume and on close
	// cbMu is held while a callback runs, so that OnBufferDrain from a
	// writer goroutine never overlaps the reading goroutine's callbacks:
	// a drain that finds it held is left in drainPending for the holder.
	// Only ever tried (TryLock) inside core.Conn.Mu's callers, never waited for
	// there.
	cbMu         sync.Mutex
	drainPending atomic.Bool
	// shedWake: the input budget shed the connection from another
	// goroutine and set a read deadline in the past, so that the reading
	// goroutine lets go of its buffer now (ShedInput).
	shedWake atomic.Bool
}

var _ core.Connection = (*stdConn)(nil)

// stdEngine is core.EngineStd: a goroutine per connection, for every
// listener on every platform. Its traffic counters are the server's own
// (core.Runtime.Ctr, shared with datagrams) and its goroutines are counted in
// core.Runtime.WG.
type stdEngine struct {
	rt    *core.Runtime
	conns map[*stdConn]struct{} // under s.Mu
}

var _ core.FallbackEngine = (*stdEngine)(nil)

// New returns the standard engine of rt: a goroutine per connection,
// for every listener on every platform, and the engine that adopts a
// Client's dialled connections. connections' engine table makes it.
func New(s *core.Runtime) core.FallbackEngine { return newEngine(s) }

func newEngine(s *core.Runtime) *stdEngine {
	return &stdEngine{rt: s, conns: make(map[*stdConn]struct{})}
}

func (e *stdEngine) Name() string             { return core.EngineStd }
func (e *stdEngine) Usable(net.Listener) bool { return true }

// AppendConns appends the engine's connections to dst.
func (e *stdEngine) AppendConns(dst []core.Connection) []core.Connection {
	e.rt.Mu.Lock()
	defer e.rt.Mu.Unlock()
	for c := range e.conns {
		dst = append(dst, c)
	}
	return dst
}

// AddStats adds nothing: Stats counts core.Runtime.Ctr itself.
func (e *stdEngine) AddStats(*core.Stats) {}

// Wake does nothing: the engine's goroutines end with their connections.
func (e *stdEngine) Wake() {}

// Wait waits for the connections' goroutines.
func (e *stdEngine) Wait() { e.rt.WG.Wait() }

// add counts c in, unless the server is closed.
func (e *stdEngine) add(c *stdConn) bool {
	s := e.rt
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if s.Closed.Load() {
		return false
	}
	e.conns[c] = struct{}{}
	s.Open.Add(1)
	s.Accepted.Add(1)
	return true
}

// remove counts c out once its OnClose has run.
func (e *stdEngine) remove(c *stdConn) {
	e.rt.Mu.Lock()
	delete(e.conns, c)
	e.rt.Mu.Unlock()
	e.rt.ConnGone()
}

// Serve accepts from ln with one goroutine per connection.
func (e *stdEngine) Serve(ln net.Listener) error {
	s := e.rt
	if !s.Track(ln, true) {
		return core.ErrServerClosed
	}
	defer s.AcceptWG.Done()
	defer s.Untrack(ln)
	var (
		backoff time.Duration
		grace   time.Time // waitShare's
	)
	for {
		if s.Bal != nil {
			s.WaitShare(s.Bal, &grace) // false: draining, Accept fails on the closed listener
		}
		nc, err := ln.Accept()
		if err != nil {
			if s.Draining.Load() || errors.Is(err, net.ErrClosed) {
				return core.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || core.IsTemporary(err) {
				backoff = core.NextBackoff(backoff)
				s.Log.Warn().Err(err).Dur("retry_in_ms", backoff).Msg("accept failed")
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.StopAccept:
					t.Stop()
				}
				continue
			}
			return fmt.Errorf("connections: accept: %w", err)
		}
		backoff = 0
		e.Adopt(nc)
		if s.Bal != nil {
			s.Bal.Accepted(s.Open.Load())
		}
	}
}

// newStdConn allocates a stdConn, with its timers in the same allocation
// when the server has any.
func newStdConn(s *core.Runtime) *stdConn {
	if !s.Timed {
		return new(stdConn)
	}
	ct := new(struct {
		tm core.ConnTimers // just before its Conn (core.Conn.UseTimers)
		stdConn
	})
	ct.stdConn.UseTimers(&ct.tm)
	return &ct.stdConn
}

// Adopt runs nc as a connection of the standard engine: Serve's, and
// a Client's.
func (e *stdEngine) Adopt(nc net.Conn) {
	s := e.rt
	c := newStdConn(s)
	c.nc = nc
	c.Init(s, c, &s.Ctr)
	c.cond.L = &c.Mu
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rw.init(rc)
		}
	}
	if !e.add(c) {
		nc.Close()
		return
	}
	c.StartTimers()
	s.WG.Add(1)
	go c.serve()
}

func (c *stdConn) serve() {
	defer c.RT.WG.Done()
	defer c.finish()
	s := c.RT
	s.Log.Debug().Uint64("conn", c.ID()).Stringer("remote", c.nc.RemoteAddr()).Msg("connection accepted")
	c.cbMu.Lock()
	c.Callback(s.Cfg.Handler.OnConnect)
	c.unlockCallbacks()
	c.flush()
	buf := make([]byte, 0, s.Cfg.ReadBufferSize)
	held := 0        // cap(buf), charged to the input budget while buf holds a partial packet
	pending := false // buf may hold packets held back by PauseRecv
	dropped := 0     // input dropped since the connection began closing
	for {
		if !c.waitReadable() {
			return
		}
		if pending && !c.Halted() {
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
			c.Received(n)
			if c.Has(core.FClosing | core.FSockClosed) {
				buf, held = c.release(buf, held) // closing: the rest of the input is dropped
				if dropped += n; dropped >= core.LingerBytes {
					c.waitClosed() // for the flush and core.LingerTimeout
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
			c.InputEnded()
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
	used, halted := c.Dispatch(buf)
	c.unlockCallbacks()
	c.flush()
	if c.Has(core.FClosing | core.FSockClosed) {
		return buf[:0], false
	}
	rest := copy(buf, buf[used:])
	buf = buf[:rest]
	if rest == 0 && cap(buf) > 4*c.RT.Cfg.ReadBufferSize {
		buf = make([]byte, 0, c.RT.Cfg.ReadBufferSize)
	}
	return buf, halted && rest > 0
}

// grow returns buf, full, with more room (core.InputSize), charged to the input
// budget, and its new charge. When the packet would exceed MaxPackageSize
// it fails the connection, and when the budget refuses the room it sheds
// it; buf comes back emptied then. A closing connection's buf is emptied
// (it reads only to drop).
func (c *stdConn) grow(buf []byte, held int) ([]byte, int) {
	s := c.RT
	if c.Has(core.FClosing | core.FSockClosed) {
		return c.release(buf, held)
	}
	size, err := core.InputSize(len(buf), cap(buf), s.PacketSize(c, buf), s.Cfg.MaxPackageSize, s.Cfg.ReadBufferSize)
	if err != nil {
		c.Fail(err)
		return c.release(buf, held)
	}
	if !s.Budget.HoldBuf(&c.Conn, size) {
		c.Shed(true)
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
	case len(buf) == 0 || c.Has(core.FClosing|core.FSockClosed):
		return c.release(buf, held)
	case c.RT.PacketSize(c, buf) > cap(buf):
		return c.grow(buf, held)
	case cap(buf) == held:
		return buf, held
	case !c.RT.Budget.HoldBuf(&c.Conn, cap(buf)):
		c.Shed(true)
		return c.release(buf, held)
	}
	return buf, cap(buf)
}

// release empties buf, gives its charge back and trades a large buffer
// for one of ReadBufferSize.
func (c *stdConn) release(buf []byte, held int) ([]byte, int) {
	if held > 0 {
		c.RT.Budget.HoldBuf(&c.Conn, 0)
	}
	if cap(buf) > 4*c.RT.Cfg.ReadBufferSize {
		return make([]byte, 0, c.RT.Cfg.ReadBufferSize), 0
	}
	return buf[:0], 0
}

func (c *stdConn) finish() {
	c.Mu.Lock()
	c.CloseLocked()
	c.Mu.Unlock()
	c.RT.Budget.Forget(&c.Conn)
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	if h := c.RT.Cfg.Handler.OnClose; h != nil {
		if err := core.Guard(func() { h(c) }); err != nil {
			c.RT.Log.Error().Uint64("conn", c.ID()).Err(err).Msg("OnClose panicked")
		}
	}
	c.RT.Log.Debug().Uint64("conn", c.ID()).Msg("connection closed")
	c.RT.Std.(*stdEngine).remove(c)
}

// waitClosed blocks until the socket is closed.
func (c *stdConn) waitClosed() {
	c.Mu.Lock()
	for !c.Has(core.FSockClosed) {
		c.cond.Wait()
	}
	c.Mu.Unlock()
}

// waitReadable blocks while the connection is paused (PauseRecv, or
// backpressure: its output is over the limit) and not lingering; it
// reports whether the socket is still open.
func (c *stdConn) waitReadable() bool {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	for c.ReadStopped() && !c.Has(core.FSockClosed) {
		c.cond.Wait()
	}
	return !c.Has(core.FSockClosed)
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
	c.Mu.Lock()
	c.cond.Broadcast()
	c.Mu.Unlock()
}

func (c *stdConn) FlushDeadline() { c.nc.SetWriteDeadline(time.Now().Add(core.CloseFlushTimeout)) }

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
	c.DestroyAfterLocked(core.LingerTimeout)
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
			c.Callback(c.RT.Cfg.Handler.OnBufferDrain)
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
		buf := c.TakeOut()
		if buf == nil {
			return
		}
		n := 0
		var err error
		if c.rw.rc != nil {
			n, err = c.rw.tryWrite(buf.B)
			c.RT.Ctr.Writes.Add(1)
		}
		if err != nil || n == len(buf.B) {
			c.WriteDone(buf, n, err)
			continue
		}
		c.WroteSome(n)
		c.WaitingOut(n > 0)
		c.RT.WG.Add(1)
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
func (c *stdConn) writeLoop(buf *core.Buffer, off int) {
	defer c.RT.WG.Done()
	for {
		end := min(off+writeChunk, len(buf.B))
		n, err := c.nc.Write(buf.B[off:end])
		c.RT.Ctr.Writes.Add(1)
		if off += n; err != nil || off == len(buf.B) {
			c.WriteDone(buf, n, err)
			break
		}
		c.WroteSome(n)
		c.WaitingOut(true)
	}
	c.flush()
}

func (c *stdConn) EngineName() string { return core.EngineStd }

// BatchKick: every connection has its own goroutine, no shared queue.
func (c *stdConn) BatchKick() (core.KickQueue, bool) { return nil, false }
