package connections

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

// Connection state bits of base.flags. They change only with mu held and
// may be read without it; fStateLock and fInputHeld are the exceptions.
const (
	fClosing    uint32 = 1 << iota // close once everything queued is written
	fSockClosed                    // the socket is closed or being closed
	fPaused                        // PauseRecv
	fWriting                       // an engine write owns the taken buffer
	fFull                          // OnBufferFull fired; OnBufferDrain pending
	fInputEnded                    // the peer has finished sending (EOF)
	fLinger                        // closing: output done, sending side shut; input dropped until EOF or lingerTimeout

	// Input memory budget (budget.go).
	fInputHeld // the input budget has a record of c; changes under the budget's lock, not mu

	// Backpressure (send.go).
	fBackpressure // the queued output reached MaxSendBufferSize: reading stops until it drains below the low watermark
	fReplying     // a dispatcher is delivering read packets: what is sent meanwhile is queued past the limit

	// fCloseAfter is set by CloseAfterFlush, which may run with mu held
	// (from Encode) or not; send and the write path fold it into
	// fClosing. It changes without mu.
	fCloseAfter

	// fInputWaits: pool mode, read input waits for a pool task to
	// deliver it; the read timeouts wait with it (timersExpired).
	fInputWaits

	// fRulesDeferred: the last timer check found a dispatcher running and
	// left the read timeouts' rules to a check shortly after
	// (timersExpired).
	fRulesDeferred

	fHalted = fClosing | fSockClosed | fPaused | fBackpressure

	// fStateLock guards base.state. It is a spin lock taken without mu
	// (State and SetState run with and without mu held) around a copy of
	// the two words of an interface, never around a call.
	fStateLock uint32 = 1 << 31
)

// base is the engine-independent part of a stream connection: protocol
// dispatch, the send buffer with its limits and callbacks, the close
// sequence and the Connection methods. Each engine embeds it.
//
// Lock order: base.mu, then the buffer pool; engines take their own locks
// (loop queue, loop table) and the timer wheel's after base.mu, never
// before it. fStateLock is a leaf: nothing is taken while it is held.
// The package doc (doc.go) has the whole order.
type base struct {
	s       *Server
	ops     engineOps
	ctr     *counters // the engine's: the server's or the loop's
	id      uint64
	created int64 // unix nanoseconds
	state   any   // protocol state; under fStateLock

	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	flags    atomic.Uint32
	// overBase is, while a dispatcher delivers read packets (fReplying),
	// the queued bytes when one of its sends first found the queue at
	// MaxSendBufferSize, 0 before; its sends are queued up to overBase
	// plus the limit (enqueue). Under mu.
	overBase int32

	mu          sync.Mutex
	dispatching int32   // dispatchers running; they flush when done
	inflight    int32   // bytes taken by the write in progress
	out         *buffer // queued, not yet taken by a write; nil when empty
	userCtx     any
	tm          *connTimers   // allocated with the connection; nil without timers
	doom        *timer.Timer  // destroys a closing connection that takes too long; see destroyAfterLocked
	drainCh     chan struct{} // closed when fFull clears or the socket closes; made by WaitDrained
}

func (c *base) init(s *Server, ops engineOps, ctr *counters) {
	c.s = s
	c.ops = ops
	c.ctr = ctr
	c.id = s.nextID()
	c.created = time.Now().UnixNano()
}

// setFlag and clearFlag are atomic read-modify-writes, so that they never
// undo fStateLock, which changes without mu.
func (c *base) setFlag(f uint32)   { c.flags.Or(f) }
func (c *base) clearFlag(f uint32) { c.flags.And(^f) }
func (c *base) has(f uint32) bool  { return c.flags.Load()&f != 0 }

// lockState takes fStateLock. Its holders never block, so a waiter only
// yields until the holder has copied its two words.
func (c *base) lockState() {
	for {
		f := c.flags.Load()
		if f&fStateLock == 0 {
			if c.flags.CompareAndSwap(f, f|fStateLock) {
				return
			}
			continue // another flag changed meanwhile
		}
		runtime.Gosched()
	}
}

func (c *base) unlockState() { c.flags.And(^fStateLock) }

// halted reports whether dispatching must stop: the connection is paused
// (PauseRecv or backpressure) or closing.
func (c *base) halted() bool { return c.flags.Load()&fHalted != 0 }

// readStopped reports whether the engine must not read from c: it is
// paused, by PauseRecv or for backpressure, and not lingering (a
// lingering connection reads to drop).
func (c *base) readStopped() bool {
	f := c.flags.Load()
	return f&(fPaused|fBackpressure) != 0 && f&fLinger == 0
}

// beginDispatch marks a dispatcher running: sends made meanwhile, from
// any goroutine, are written when it ends.
func (c *base) beginDispatch() {
	c.mu.Lock()
	c.dispatching++
	c.mu.Unlock()
}

// endDispatch undoes beginDispatch; the caller flushes next.
func (c *base) endDispatch() {
	c.mu.Lock()
	c.dispatching--
	c.mu.Unlock()
}

// callback runs fn as a dispatcher and turns a panic into closing the
// connection. The caller flushes afterwards.
func (c *base) callback(fn func(Connection)) {
	if fn == nil {
		return
	}
	c.beginDispatch()
	err := guard(func() { fn(c.conn()) })
	c.endDispatch()
	if err != nil {
		c.fail(err)
	}
}

// conn returns the Connection users see: the engine's struct.
func (c *base) conn() Connection { return c.ops.(Connection) }

// dispatch delivers the complete packets at the start of buf and returns
// how many bytes they used, and whether it stopped early because the
// connection was paused or closed (buf[used:] may then hold complete
// packets: deliver them once resumed). An error (a protocol error or a
// recovered panic) has already been reported and the connection is
// closing. The caller flushes afterwards.
//
// What the packets' OnMessage sends while it runs is queued even past
// MaxSendBufferSize (fReplying, see enqueue): an answer to a request that
// was read is never dropped; the dispatch stops after the packet whose
// answers reached the limit, and the engine reads no more until they
// drain (fBackpressure).
func (c *base) dispatch(buf []byte) (used int, halted bool) {
	c.mu.Lock()
	c.dispatching++
	c.setFlag(fReplying)
	c.mu.Unlock()
	var perr error
	err := guard(func() { used, halted, perr = deliver(c.s, c.ctr, c.conn(), c, buf, false) })
	c.mu.Lock()
	c.dispatching--
	c.clearFlag(fReplying)
	c.overBase = 0
	c.mu.Unlock()
	if err == nil {
		err = perr
	}
	if err == nil && (c.tm != nil || c.s.releaser != nil) {
		err = c.afterInput(used, len(buf)-used, halted)
	}
	if err != nil {
		c.fail(err)
	}
	return used, halted
}

// afterInput runs once a batch of input has been dispatched (used bytes
// delivered, rest left): it gives the protocol's state back when nothing
// is left (StateReleaser) and records the connection's phase for the
// timeouts (notePhase). A panic in the protocol is returned.
func (c *base) afterInput(used, rest int, halted bool) error {
	s := c.s
	var state any
	if s.releaser != nil || s.phaser != nil {
		state = c.State()
	}
	if state != nil && !halted && rest == 0 && s.releaser != nil {
		c.mu.Lock()
		err := guard(func() { s.releaser.ReleaseState(c.conn()) })
		c.mu.Unlock()
		if err != nil {
			return err
		}
		state = c.State()
	}
	if c.tm == nil {
		return nil
	}
	return c.notePhase(state, used, rest, halted)
}

// packetConn is a Connection whose dispatch can be halted.
type packetConn interface {
	Connection
	halted() bool
}

// deliver runs the protocol over buf and calls OnMessage for every message,
// until buf holds no complete packet or h halts. It returns how many bytes
// it consumed and whether it stopped because h halted with bytes left.
// whole means buf is one datagram: a partial packet at its end is an
// error. It is shared by every engine and by UDP.
func deliver(s *Server, ctr *counters, c Connection, h packetConn, buf []byte, whole bool) (int, bool, error) {
	proto := s.cfg.Protocol
	onMessage := s.cfg.Handler.OnMessage
	off := 0
	for off < len(buf) {
		if h.halted() {
			return off, true, nil
		}
		var msg []byte
		if proto == nil {
			msg = buf[off:]
			off = len(buf)
		} else {
			n, err := proto.Input(c, buf[off:])
			if err != nil {
				return off, false, err
			}
			if n == 0 {
				if whole {
					return off, false, ErrIncompleteDatagram
				}
				return off, false, nil
			}
			if n > len(buf)-off {
				return off, false, fmt.Errorf("connections: protocol %s reported a packet of %d bytes with %d buffered: %w",
					proto.Name(), n, len(buf)-off, ErrProtocolMisbehaved)
			}
			msg, err = proto.Decode(c, buf[off:off+n])
			off += n
			if err == protocols.ErrSkip {
				continue
			}
			if err != nil {
				return off, false, err
			}
		}
		ctr.requests.Add(1)
		if onMessage != nil {
			onMessage(c, msg)
		}
	}
	return off, false, nil
}

// guard runs fn and turns a panic into an error carrying the stack.
func guard(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	fn()
	return nil
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("connections: panic in callback: %v", e.value)
}
func (e *panicError) Unwrap() error { return ErrPanic }

// fail reports err, queues any reply it carries and closes the connection
// once that reply is written.
func (c *base) fail(err error) {
	if isShed(err) {
		c.Close() // shed has counted, logged and answered it
		return
	}
	s := c.s
	s.errs.Add(1)
	var pe *panicError
	if errors.As(err, &pe) {
		s.panics.Add(1)
		s.log.Error().Uint64("conn", c.id).Interface("panic", pe.value).Bytes("stack", pe.stack).Msg("callback panicked, connection closed")
	} else {
		s.badInput.Add(1)
		s.noteBadInput(c, err)
	}
	var re *protocols.ReplyError
	if errors.As(err, &re) && len(re.Reply) > 0 {
		c.sendLast(re.Reply)
	}
	c.onError(err)
	c.Close()
}

func (c *base) onError(err error) {
	if h := c.s.cfg.Handler.OnError; h != nil {
		if perr := guard(func() { h(c.conn(), err) }); perr != nil {
			c.s.log.Error().Uint64("conn", c.id).Err(perr).Msg("OnError panicked")
		}
	}
}

// Lingering close. Closing a socket that has unread input, or that gets
// more after the close, makes the kernel answer with a reset, and a reset
// can destroy the last answer before the peer has read it (a 413 while
// the peer is still sending the body, a response to a request that has
// another pipelined behind it). So a connection closed on the server's
// initiative, once its output is written, shuts down only its sending
// side and goes on reading and dropping input until the peer closes too,
// for at most lingerTimeout; then it is closed. A closing connection drops
// at most lingerBytes of input (then it stops reading).
const (
	lingerTimeout = time.Second
	lingerBytes   = 1 << 20
)

// closeOrLingerLocked ends a closing connection whose output is written:
// it closes it if the peer has finished sending, and lingers otherwise.
// mu is held.
func (c *base) closeOrLingerLocked() {
	if c.has(fInputEnded) {
		c.closeLocked()
		return
	}
	c.setFlag(fLinger)
	if !c.ops.LingerLocked() {
		c.closeLocked()
	}
}

// destroyAfterLocked makes sure the closing connection c is destroyed d
// from now, on the server's wheel, unless its socket is closed first (then
// the timer is stopped). A later call moves the deadline. The node is
// allocated by the first call: only connections that wait for a slow peer
// pay for it. mu is held.
//
// Wheels never run for a Client without Config.Wheel; its closing
// connection gets a runtime timer instead, which is not stopped early
// (Destroy of a closed connection does nothing).
func (c *base) destroyAfterLocked(d time.Duration) {
	if c.has(fSockClosed) {
		return
	}
	if !c.s.onWheel() {
		// A Client's own server never serves and runs no wheel of its
		// own (it would outlive the Client): a runtime timer does it.
		time.AfterFunc(d, c.Destroy)
		return
	}
	if c.doom == nil {
		c.doom = new(timer.Timer)
	}
	c.s.wheel.Schedule(c.doom, d, c.Destroy)
}

// closeLocked marks the socket closed, drops the send buffer and lets the
// engine close the socket. mu is held.
func (c *base) closeLocked() {
	if c.has(fSockClosed) {
		return
	}
	c.setFlag(fSockClosed | fClosing)
	if c.doom != nil {
		c.doom.Stop()
	}
	c.wakeDrainWaitersLocked()
	if c.out != nil {
		c.putOutLocked()
	}
	c.stopTimersLocked()
	c.ops.CloseSocketLocked()
}

// Connection methods.

func (c *base) ID() uint64                   { return c.id }
func (c *base) MaxPackageSize() int          { return c.s.cfg.MaxPackageSize }
func (c *base) Draining() bool               { return c.s.draining.Load() }
func (c *base) LocalAddr() net.Addr          { return c.ops.Local() }
func (c *base) RemoteAddr() net.Addr         { return c.ops.Remote() }
func (c *base) Transport() string            { return c.s.cfg.Transport }
func (c *base) Protocol() protocols.Protocol { return c.s.cfg.Protocol }
func (c *base) BytesRead() uint64            { return c.bytesIn.Load() }
func (c *base) BytesWritten() uint64         { return c.bytesOut.Load() }
func (c *base) CreatedAt() time.Time         { return time.Unix(0, c.created) }

// State returns the protocol's per-connection state. Unlike what
// protocols.Conn requires of an implementation, State and SetState are
// safe for concurrent use: Encode (with the send lock held, on whatever
// goroutine sends) and helpers such as http.Respond may read the state
// while the connection's dispatcher creates it in its first Input or
// gives it back through StateReleaser. What the state points to is the
// protocol's to guard.
func (c *base) State() any {
	c.lockState()
	v := c.state
	c.unlockState()
	return v
}

// SetState stores the protocol's per-connection state. Safe for
// concurrent use, with or without the send lock held; it does not
// allocate.
func (c *base) SetState(v any) {
	c.lockState()
	c.state = v
	c.unlockState()
}

func (c *base) SendBufferLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queuedLocked()
}

func (c *base) Context() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userCtx
}

func (c *base) SetContext(v any) {
	c.mu.Lock()
	c.userCtx = v
	c.mu.Unlock()
}

// CloseAfterFlush may run with mu held (from Encode) or not (from Decode),
// so it only sets a flag (atomically, without mu) that the send path
// folds into fClosing.
func (c *base) CloseAfterFlush() { c.setFlag(fCloseAfter) }

func (c *base) Close() error {
	c.mu.Lock()
	if c.has(fClosing | fSockClosed) {
		c.mu.Unlock()
		return nil
	}
	c.closingUnlock()
	return nil
}

// inputEnded closes the connection once its answers are written, after
// the peer shut down its sending side; the wait for a peer that does not
// read is bounded even if the connection was already closing. A lingering
// connection is closed at once.
func (c *base) inputEnded() {
	c.mu.Lock()
	c.setFlag(fInputEnded)
	if c.has(fSockClosed) {
		c.mu.Unlock()
		return
	}
	if c.has(fLinger) {
		c.closeLocked()
		c.mu.Unlock()
		return
	}
	c.closingUnlock()
}

// closingUnlock marks c closing, bounds its wait for a peer that does not
// read what is queued, releases mu and has what is queued written (by the
// dispatcher, when one runs, as it finishes) before the socket closes. mu
// is held.
func (c *base) closingUnlock() {
	c.setFlag(fClosing)
	if c.queuedLocked() > 0 {
		c.ops.FlushDeadline()
	}
	deferred := c.dispatching > 0
	c.mu.Unlock()
	if !deferred {
		c.ops.Kick()
	}
}

func (c *base) Destroy() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
}

func (c *base) PauseRecv() {
	c.mu.Lock()
	c.setFlag(fPaused)
	c.mu.Unlock()
}

func (c *base) ResumeRecv() {
	c.mu.Lock()
	was := c.has(fPaused)
	c.clearFlag(fPaused)
	c.mu.Unlock()
	if was {
		c.ops.Resumed()
	}
}

func (c *base) info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := "established"
	switch {
	case c.has(fClosing | fSockClosed):
		st = "closing"
	case c.has(fPaused | fBackpressure):
		st = "paused"
	}
	pn := "raw"
	if p := c.s.cfg.Protocol; p != nil {
		pn = p.Name()
	}
	return Info{
		ID: c.id, Transport: c.s.cfg.Transport, Protocol: pn,
		LocalAddr: addrString(c.ops.Local()), RemoteAddr: addrString(c.ops.Remote()),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), SendBuffer: c.queuedLocked(),
		CreatedAt: time.Unix(0, c.created), State: st, Engine: c.ops.EngineName(),
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
