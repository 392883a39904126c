package core

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
)

// Connection state bits of Conn.flags. They change only with mu held and
// may be read without it; FStateLock and FInputHeld are the exceptions.
const (
	FClosing    uint32 = 1 << iota // close once everything queued is written
	FSockClosed                    // the socket is closed or being closed
	FPaused                        // PauseRecv
	FWriting                       // an engine write owns the taken buffer
	FFull                          // OnBufferFull fired; OnBufferDrain pending
	FInputEnded                    // the peer has finished sending (EOF)
	FLinger                        // closing: output done, sending side shut; input dropped until EOF or LingerTimeout

	// Input memory budget (budget.go).
	FInputHeld // the input budget has a record of c; changes under the budget's lock, not mu

	// Backpressure (send.go).
	FBackpressure // the queued output reached MaxSendBufferSize: reading stops until it drains below the low watermark
	FReplying     // a dispatcher is delivering read packets: what is sent meanwhile is queued past the limit

	// FCloseAfter is set by CloseAfterFlush, which may run with mu held
	// (from Encode) or not; send and the write path fold it into
	// FClosing. It changes without mu.
	FCloseAfter

	// FInputWaits: pool mode, read input waits for a pool task to
	// Deliver it; the read timeouts wait with it (timersExpired).
	FInputWaits

	// FRulesDeferred: the last timer check found a dispatcher running and
	// left the read timeouts' rules to a check shortly after
	// (timersExpired).
	FRulesDeferred

	// FTimers: c has ConnTimers, just before it in its allocation
	// (UseTimers, Conn.timers). Set before the connection is used and
	// never cleared.
	FTimers

	FHalted = FClosing | FSockClosed | FPaused | FBackpressure

	// FStateLock guards Conn.state. It is a spin lock taken without mu
	// (State and SetState run with and without mu held) around a copy of
	// the two words of an interface, never around a call.
	FStateLock uint32 = 1 << 31
)

// Conn is the engine-independent part of a stream connection: protocol
// dispatch, the send buffer with its limits and callbacks, the close
// sequence and the Connection methods. Each engine's connection type
// embeds it and implements Ops; the engine calls its exported methods
// (Init, Dispatch, TakeOut, WriteDone, ...), whose comments say with or
// without Mu. Engines never touch its other state.
//
// Lock order: Conn.Mu, then the buffer pool; engines take their own locks
// (loop queue, loop table) and the timer wheel's after Conn.Mu, never
// before it. FStateLock is a leaf: nothing is taken while it is held.
// The package doc (doc.go) has the whole order.
type Conn struct {
	RT      *Runtime
	ops     Ops
	ctr     *Counters // the engine's: the server's or the loop's
	id      uint64
	created int64 // unix nanoseconds
	state   any   // protocol state; under FStateLock

	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	flags    atomic.Uint32
	// overBase is, while a dispatcher delivers read packets (FReplying),
	// the queued bytes when one of its sends first found the queue at
	// MaxSendBufferSize, 0 before; its sends are queued up to overBase
	// plus the limit (enqueue). Under mu.
	overBase int32

	Mu          sync.Mutex
	dispatching int32   // dispatchers running; they flush when done
	inflight    int32   // bytes taken by the write in progress
	out         *Buffer // queued, not yet taken by a write; nil when empty
	// more holds what few connections use (the user context, the doom
	// timer, drainCh), allocated by the first use; nil before. Under mu.
	more *connMore
}

// connMore is the part of a Conn that most connections never use, out of
// line so that an idle connection does not carry it (see Conn.more): an
// epConn with its timers stays in the 288-byte size class (the epoll
// package's TestEpConnWithTimersSize).
type connMore struct {
	userCtx any
	doom    *timer.Timer  // destroys a closing connection that takes too long; see DestroyAfterLocked
	drainCh chan struct{} // closed when FFull clears or the socket closes; made by WaitDrained
}

// moreLocked returns c.more, allocating it on first use. mu is held.
func (c *Conn) moreLocked() *connMore {
	if c.more == nil {
		c.more = new(connMore)
	}
	return c.more
}

// Init makes c a connection of s whose engine is ops (the engine's
// connection type, which embeds c) and whose traffic counts in ctr (the
// engine's counters); before the connection is used.
func (c *Conn) Init(s *Runtime, ops Ops, ctr *Counters) {
	c.RT = s
	c.ops = ops
	c.ctr = ctr
	c.id = s.NextID()
	c.created = time.Now().UnixNano()
}

// UseTimers gives c its timers, allocated together with the engine's
// connection when the runtime has any (Runtime.Timed); before Init. tm
// must lie just before c in the same allocation (a struct holding the
// ConnTimers and then the engine's connection, whose first field is the
// embedded Conn): each finds the other at that fixed distance
// (Conn.timers, ConnTimers.conn), so that neither carries a pointer to
// the other.
func (c *Conn) UseTimers(tm *ConnTimers) {
	if uintptr(unsafe.Pointer(tm))+unsafe.Sizeof(*tm) != uintptr(unsafe.Pointer(c)) {
		panic("core: UseTimers: the timers do not lie just before their Conn in one allocation")
	}
	c.SetFlag(FTimers)
}

// timers returns c's timers, nil when it has none (UseTimers).
func (c *Conn) timers() *ConnTimers {
	if c.flags.Load()&FTimers == 0 {
		return nil
	}
	return c.timersAt()
}

// timersAt returns c's timers, which c must have (FTimers).
func (c *Conn) timersAt() *ConnTimers {
	return (*ConnTimers)(unsafe.Add(unsafe.Pointer(c), -int(unsafe.Sizeof(ConnTimers{}))))
}

// Received accounts n bytes read from c's socket: c's and the engine's
// counters, and the read for the timers (TouchIn).
func (c *Conn) Received(n int) {
	c.bytesIn.Add(uint64(n))
	c.ctr.BytesIn.Add(uint64(n))
	c.TouchIn()
}

// SetFlag and ClearFlag are atomic read-modify-writes, so that they never
// undo FStateLock, which changes without mu.
func (c *Conn) SetFlag(f uint32)   { c.flags.Or(f) }
func (c *Conn) ClearFlag(f uint32) { c.flags.And(^f) }

// Has reports whether any of the flags f is set.
func (c *Conn) Has(f uint32) bool { return c.flags.Load()&f != 0 }

// lockState takes FStateLock. Its holders never block, so a waiter only
// yields until the holder has copied its two words.
func (c *Conn) lockState() {
	for {
		f := c.flags.Load()
		if f&FStateLock == 0 {
			if c.flags.CompareAndSwap(f, f|FStateLock) {
				return
			}
			continue // another flag changed meanwhile
		}
		runtime.Gosched()
	}
}

func (c *Conn) unlockState() { c.flags.And(^FStateLock) }

// Halted reports whether dispatching must stop: the connection is paused
// (PauseRecv or backpressure) or closing.
func (c *Conn) Halted() bool { return c.flags.Load()&FHalted != 0 }

// ReadStopped reports whether the engine must not read from c: it is
// paused, by PauseRecv or for backpressure, and not lingering (a
// lingering connection reads to drop).
func (c *Conn) ReadStopped() bool {
	f := c.flags.Load()
	return f&(FPaused|FBackpressure) != 0 && f&FLinger == 0
}

// beginDispatch marks a dispatcher running: sends made meanwhile, from
// any goroutine, are written when it ends.
func (c *Conn) beginDispatch() {
	c.Mu.Lock()
	c.dispatching++
	c.Mu.Unlock()
}

// endDispatch undoes beginDispatch; the caller flushes next.
func (c *Conn) endDispatch() {
	c.Mu.Lock()
	c.dispatching--
	c.Mu.Unlock()
}

// Callback runs fn as a dispatcher and turns a panic into closing the
// connection. The caller flushes afterwards.
func (c *Conn) Callback(fn func(Connection)) {
	if fn == nil {
		return
	}
	c.beginDispatch()
	err := Guard(func() { fn(c.Self()) })
	c.endDispatch()
	if err != nil {
		c.Fail(err)
	}
}

// Self returns the Connection users see: the engine's struct.
func (c *Conn) Self() Connection { return c.ops.(Connection) }

// Dispatch delivers the complete packets at the start of buf and returns
// how many bytes they used, and whether it stopped early because the
// connection was paused or closed (buf[used:] may then hold complete
// packets: deliver them once resumed). An error (a protocol error or a
// recovered panic) has already been reported and the connection is
// closing. The caller flushes afterwards.
//
// What the packets' OnMessage sends while it runs is queued even past
// MaxSendBufferSize (FReplying, see enqueue): an answer to a request that
// was read is never dropped; the dispatch stops after the packet whose
// answers reached the limit, and the engine reads no more until they
// drain (FBackpressure).
func (c *Conn) Dispatch(buf []byte) (used int, halted bool) {
	c.Mu.Lock()
	c.dispatching++
	c.SetFlag(FReplying)
	c.Mu.Unlock()
	var perr error
	err := Guard(func() { used, halted, perr = Deliver(c.RT, c.ctr, c.Self(), c, buf, false) })
	c.Mu.Lock()
	c.dispatching--
	c.ClearFlag(FReplying)
	c.overBase = 0
	c.Mu.Unlock()
	if err == nil {
		err = perr
	}
	if err == nil && (c.Has(FTimers) || c.RT.releaser != nil) {
		err = c.afterInput(used, len(buf)-used, halted)
	}
	if err != nil {
		c.Fail(err)
	}
	return used, halted
}

// afterInput runs once a batch of input has been dispatched (used bytes
// delivered, rest left): it gives the protocol's state back when nothing
// is left (StateReleaser) and records the connection's phase for the
// timeouts (notePhase). A panic in the protocol is returned.
func (c *Conn) afterInput(used, rest int, halted bool) error {
	s := c.RT
	var state any
	if s.releaser != nil || s.phaser != nil {
		state = c.State()
	}
	if state != nil && !halted && rest == 0 && s.releaser != nil {
		c.Mu.Lock()
		err := Guard(func() { s.releaser.ReleaseState(c.Self()) })
		c.Mu.Unlock()
		if err != nil {
			return err
		}
		state = c.State()
	}
	tm := c.timers()
	if tm == nil {
		return nil
	}
	return c.notePhase(tm, state, used, rest, halted)
}

// PacketConn is a Connection whose dispatch can be halted.
type PacketConn interface {
	Connection
	Halted() bool
}

// Deliver runs the protocol over buf and calls OnMessage for every message,
// until buf holds no complete packet or h halts. It returns how many bytes
// it consumed and whether it stopped because h halted with bytes left.
// whole means buf is one datagram: a partial packet at its end is an
// error. It is shared by every engine and by UDP.
func Deliver(s *Runtime, ctr *Counters, c Connection, h PacketConn, buf []byte, whole bool) (int, bool, error) {
	proto := s.Cfg.Protocol
	onMessage := s.Cfg.Handler.OnMessage
	off := 0
	for off < len(buf) {
		if h.Halted() {
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
		ctr.Requests.Add(1)
		if onMessage != nil {
			onMessage(c, msg)
		}
	}
	return off, false, nil
}

// Guard runs fn and turns a panic into an error carrying the stack.
func Guard(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	fn()
	return nil
}

// PanicError is a panic recovered by guard, with its stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("connections: panic in callback: %v", e.Value)
}
func (e *PanicError) Unwrap() error { return ErrPanic }

// Fail reports err, queues any reply it carries and closes the connection
// once that reply is written.
func (c *Conn) Fail(err error) {
	if isShed(err) {
		c.Close() // shed has counted, logged and answered it
		return
	}
	s := c.RT
	s.Errs.Add(1)
	var pe *PanicError
	if errors.As(err, &pe) {
		s.Panics.Add(1)
		s.Log.Error().Uint64("conn", c.id).Interface("panic", pe.Value).Bytes("stack", pe.Stack).Msg("callback panicked, connection closed")
	} else {
		s.BadInput.Add(1)
		s.noteBadInput(c, err)
	}
	var re *protocols.ReplyError
	if errors.As(err, &re) && len(re.Reply) > 0 {
		c.sendLast(re.Reply)
	}
	c.onError(err)
	c.Close()
}

func (c *Conn) onError(err error) {
	if h := c.RT.Cfg.Handler.OnError; h != nil {
		if perr := Guard(func() { h(c.Self(), err) }); perr != nil {
			c.RT.Log.Error().Uint64("conn", c.id).Err(perr).Msg("OnError panicked")
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
// for at most LingerTimeout; then it is closed. A closing connection drops
// at most LingerBytes of input (then it stops reading).
const (
	LingerTimeout = time.Second
	LingerBytes   = 1 << 20
)

// closeOrLingerLocked ends a closing connection whose output is written:
// it closes it if the peer has finished sending, and lingers otherwise.
// mu is held.
func (c *Conn) closeOrLingerLocked() {
	if c.Has(FInputEnded) {
		c.CloseLocked()
		return
	}
	c.SetFlag(FLinger)
	if !c.ops.LingerLocked() {
		c.CloseLocked()
	}
}

// DestroyAfterLocked makes sure the closing connection c is destroyed d
// from now, on the server's wheel, unless its socket is closed first (then
// the timer is stopped). A later call moves the deadline. The node (and
// c.more, if c has none yet) is allocated by the first call: only
// connections that wait for a slow peer pay for it. mu is held.
//
// Wheels never run for a Client without Config.Wheel; its closing
// connection gets a runtime timer instead, which is not stopped early
// (Destroy of a closed connection does nothing).
func (c *Conn) DestroyAfterLocked(d time.Duration) {
	if c.Has(FSockClosed) {
		return
	}
	if !c.RT.onWheel() {
		// A Client's own server never serves and runs no wheel of its
		// own (it would outlive the Client): a runtime timer does it.
		time.AfterFunc(d, c.Destroy)
		return
	}
	m := c.moreLocked()
	if m.doom == nil {
		m.doom = new(timer.Timer)
	}
	c.RT.Wheel.Schedule(m.doom, d, c.Destroy)
}

// CloseLocked marks the socket closed, drops the send buffer and lets the
// engine close the socket. mu is held.
func (c *Conn) CloseLocked() {
	if c.Has(FSockClosed) {
		return
	}
	c.SetFlag(FSockClosed | FClosing)
	if c.more != nil && c.more.doom != nil {
		c.more.doom.Stop()
	}
	c.wakeDrainWaitersLocked()
	if c.out != nil {
		c.putOutLocked()
	}
	c.stopTimersLocked()
	c.ops.CloseSocketLocked()
}

// Connection methods.

func (c *Conn) ID() uint64                   { return c.id }
func (c *Conn) MaxPackageSize() int          { return c.RT.Cfg.MaxPackageSize }
func (c *Conn) Draining() bool               { return c.RT.Draining.Load() }
func (c *Conn) LocalAddr() net.Addr          { return c.ops.Local() }
func (c *Conn) RemoteAddr() net.Addr         { return c.ops.Remote() }
func (c *Conn) Transport() string            { return c.RT.Cfg.Transport }
func (c *Conn) Protocol() protocols.Protocol { return c.RT.Cfg.Protocol }
func (c *Conn) BytesRead() uint64            { return c.bytesIn.Load() }
func (c *Conn) BytesWritten() uint64         { return c.bytesOut.Load() }
func (c *Conn) CreatedAt() time.Time         { return time.Unix(0, c.created) }

// State returns the protocol's per-connection state. Unlike what
// protocols.Conn requires of an implementation, State and SetState are
// safe for concurrent use: Encode (with the send lock held, on whatever
// goroutine sends) and helpers such as http.Respond may read the state
// while the connection's dispatcher creates it in its first Input or
// gives it back through StateReleaser. What the state points to is the
// protocol's to guard.
func (c *Conn) State() any {
	c.lockState()
	v := c.state
	c.unlockState()
	return v
}

// SetState stores the protocol's per-connection state. Safe for
// concurrent use, with or without the send lock held; it does not
// allocate.
func (c *Conn) SetState(v any) {
	c.lockState()
	c.state = v
	c.unlockState()
}

func (c *Conn) SendBufferLen() int {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.queuedLocked()
}

func (c *Conn) Context() any {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.more == nil {
		return nil
	}
	return c.more.userCtx
}

func (c *Conn) SetContext(v any) {
	c.Mu.Lock()
	if v != nil || c.more != nil {
		c.moreLocked().userCtx = v
	}
	c.Mu.Unlock()
}

// CloseAfterFlush may run with mu held (from Encode) or not (from Decode),
// so it only sets a flag (atomically, without mu) that the send path
// folds into FClosing.
func (c *Conn) CloseAfterFlush() { c.SetFlag(FCloseAfter) }

func (c *Conn) Close() error {
	c.Mu.Lock()
	if c.Has(FClosing | FSockClosed) {
		c.Mu.Unlock()
		return nil
	}
	c.closingUnlock()
	return nil
}

// InputEnded closes the connection once its answers are written, after
// the peer shut down its sending side; the wait for a peer that does not
// read is bounded even if the connection was already closing. A lingering
// connection is closed at once.
func (c *Conn) InputEnded() {
	c.Mu.Lock()
	c.SetFlag(FInputEnded)
	if c.Has(FSockClosed) {
		c.Mu.Unlock()
		return
	}
	if c.Has(FLinger) {
		c.CloseLocked()
		c.Mu.Unlock()
		return
	}
	c.closingUnlock()
}

// closingUnlock marks c closing, bounds its wait for a peer that does not
// read what is queued, releases mu and has what is queued written (by the
// dispatcher, when one runs, as it finishes) before the socket closes. mu
// is held.
func (c *Conn) closingUnlock() {
	c.SetFlag(FClosing)
	if c.queuedLocked() > 0 {
		c.ops.FlushDeadline()
	}
	deferred := c.dispatching > 0
	c.Mu.Unlock()
	if !deferred {
		c.ops.Kick()
	}
}

func (c *Conn) Destroy() {
	c.Mu.Lock()
	c.CloseLocked()
	c.Mu.Unlock()
}

func (c *Conn) PauseRecv() {
	c.Mu.Lock()
	c.SetFlag(FPaused)
	c.Mu.Unlock()
}

func (c *Conn) ResumeRecv() {
	c.Mu.Lock()
	was := c.Has(FPaused)
	c.ClearFlag(FPaused)
	c.Mu.Unlock()
	if was {
		c.ops.Resumed()
	}
}

// ConnInfo describes c for Server.Connections.
func (c *Conn) ConnInfo() Info {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	st := "established"
	switch {
	case c.Has(FClosing | FSockClosed):
		st = "closing"
	case c.Has(FPaused | FBackpressure):
		st = "paused"
	}
	pn := "raw"
	if p := c.RT.Cfg.Protocol; p != nil {
		pn = p.Name()
	}
	return Info{
		ID: c.id, Transport: c.RT.Cfg.Transport, Protocol: pn,
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

// CoreConn returns c: how connections finds the Conn of an engine's
// connection behind a Connection (a Fanout member, a Pipe's end).
func (c *Conn) CoreConn() *Conn { return c }
