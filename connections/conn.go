package connections

import (
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goes-project/goes/protocols"
)

// closeFlushTimeout bounds how long Close waits for queued data to reach a
// peer that does not read.
const closeFlushTimeout = 10 * time.Second

// conn is a stream connection served by a reading goroutine (the standard
// engine). The send path never blocks that goroutine: data is queued in
// out, written at the end of each read batch by one non-blocking write, and
// whatever the kernel does not take is written by a short-lived writer
// goroutine.
type conn struct {
	s       *Server
	nc      net.Conn
	rc      syscall.RawConn // nil when the conn has none (TLS)
	id      uint64
	created time.Time
	state   any // protocol state; the reading goroutine's

	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	// closeAfter is set by CloseAfterFlush; send turns it into closing.
	closeAfter atomic.Bool

	mu          sync.Mutex
	cond        sync.Cond // on mu: signalled on resume and on close
	out         []byte    // queued, not yet taken by a write
	spare       []byte    // the other buffer of the pair
	inflight    int       // bytes taken by the write in progress
	writing     bool      // a write is in progress
	dispatching bool      // the reading goroutine will flush after its batch
	full        bool      // OnBufferFull fired; OnBufferDrain pending
	closing     bool      // close once out is written
	sockClosed  bool
	paused      bool
	userCtx     any
}

var _ Connection = (*conn)(nil)

func (s *Server) startConn(nc net.Conn) {
	c := &conn{s: s, nc: nc, id: s.nextID(), created: time.Now()}
	c.cond.L = &c.mu
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	if !s.add(c) {
		nc.Close()
		return
	}
	s.wg.Add(1)
	go c.serve()
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.finish()
	s := c.s
	s.log.Debug().Uint64("conn", c.id).Stringer("remote", c.nc.RemoteAddr()).Msg("connection accepted")
	if h := s.cfg.Handler.OnConnect; h != nil {
		c.setDispatching(true)
		err := guard(func() { h(c) })
		c.endDispatch()
		if err != nil {
			c.fail(err)
			return
		}
	}
	buf := make([]byte, 0, s.cfg.ReadBufferSize)
	failed := false
	for {
		ok, waited := c.waitReadable()
		if !ok {
			return
		}
		if waited && len(buf) > 0 && !failed {
			// Packets that arrived before PauseRecv are delivered first.
			if !c.consume(&buf, &failed) {
				continue
			}
		}
		if len(buf) == cap(buf) {
			buf = c.grow(buf)
			if buf == nil {
				c.fail(fmt.Errorf("connections: %d bytes buffered without a complete packet: %w",
					s.cfg.MaxPackageSize, protocols.ErrPackageTooLarge))
				failed = true
				buf = make([]byte, 0, s.cfg.ReadBufferSize)
			}
		}
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		if n > 0 && !failed {
			c.bytesIn.Add(uint64(n))
			s.bytesIn.Add(uint64(n))
			buf = buf[:len(buf)+n]
			c.consume(&buf, &failed)
		} else if failed {
			buf = buf[:0]
		}
		if err != nil {
			return
		}
	}
}

// consume dispatches the packets in *buf and keeps the rest; after an
// error it sets *failed and the connection only drains its input until
// the socket closes. It reports whether dispatching went on normally.
func (c *conn) consume(buf *[]byte, failed *bool) bool {
	b := *buf
	used, err := c.dispatch(b)
	if err != nil {
		c.fail(err)
		*failed = true
		*buf = b[:0]
		return false
	}
	rest := copy(b, b[used:])
	b = b[:rest]
	if rest == 0 && cap(b) > 4*c.s.cfg.ReadBufferSize {
		b = make([]byte, 0, c.s.cfg.ReadBufferSize)
	}
	*buf = b
	return true
}

// grow returns buf with more room, or nil when a packet would exceed
// MaxPackageSize.
func (c *conn) grow(buf []byte) []byte {
	limit := c.s.cfg.MaxPackageSize
	if len(buf) >= limit {
		return nil
	}
	n := 2 * cap(buf)
	if n > limit {
		n = limit
	}
	nb := make([]byte, len(buf), n)
	copy(nb, buf)
	return nb
}

// dispatch delivers the complete packets at the start of buf and returns
// how many bytes they used.
func (c *conn) dispatch(buf []byte) (used int, err error) {
	c.setDispatching(true)
	defer c.endDispatch()
	var perr error
	if panicErr := guard(func() { used, perr = c.deliver(buf) }); panicErr != nil {
		return used, panicErr
	}
	return used, perr
}

func (c *conn) deliver(buf []byte) (int, error) {
	s := c.s
	proto := s.cfg.Protocol
	onMessage := s.cfg.Handler.OnMessage
	off := 0
	for off < len(buf) {
		if c.isPaused() || c.isClosing() {
			break
		}
		var msg []byte
		if proto == nil {
			msg = buf[off:]
			off = len(buf)
		} else {
			n, err := proto.Input(c, buf[off:])
			if err != nil {
				return off, err
			}
			if n == 0 {
				break
			}
			if n > len(buf)-off {
				return off, fmt.Errorf("connections: protocol %s reported a packet of %d bytes with %d buffered", proto.Name(), n, len(buf)-off)
			}
			msg, err = proto.Decode(c, buf[off:off+n])
			off += n
			if err == protocols.ErrSkip {
				continue
			}
			if err != nil {
				return off, err
			}
		}
		s.requests.Add(1)
		if onMessage != nil {
			onMessage(c, msg)
		}
	}
	return off, nil
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

// fail reports err, sends any reply it carries and closes the connection.
func (c *conn) fail(err error) {
	s := c.s
	s.errs.Add(1)
	var pe *panicError
	if errors.As(err, &pe) {
		s.log.Error().Uint64("conn", c.id).Interface("panic", pe.value).Bytes("stack", pe.stack).Msg("callback panicked, connection closed")
	} else {
		s.log.Info().Uint64("conn", c.id).Stringer("remote", c.nc.RemoteAddr()).Err(err).Msg("bad input, connection closed")
	}
	var re *protocols.ReplyError
	if errors.As(err, &re) && len(re.Reply) > 0 {
		c.WriteRaw(re.Reply)
	}
	c.onError(err)
	c.Close()
}

func (c *conn) onError(err error) {
	if h := c.s.cfg.Handler.OnError; h != nil {
		if perr := guard(func() { h(c, err) }); perr != nil {
			c.s.log.Error().Uint64("conn", c.id).Err(perr).Msg("OnError panicked")
		}
	}
}

func (c *conn) finish() {
	c.mu.Lock()
	c.closeSocketLocked()
	c.mu.Unlock()
	if h := c.s.cfg.Handler.OnClose; h != nil {
		if err := guard(func() { h(c) }); err != nil {
			c.s.log.Error().Uint64("conn", c.id).Err(err).Msg("OnClose panicked")
		}
	}
	c.s.log.Debug().Uint64("conn", c.id).Msg("connection closed")
	c.s.remove(c)
}

func (c *conn) setDispatching(v bool) {
	c.mu.Lock()
	c.dispatching = v
	c.mu.Unlock()
}

func (c *conn) endDispatch() {
	c.setDispatching(false)
	c.flush()
}

// waitReadable blocks while the connection is paused; it reports whether
// the socket is still open and whether it had to wait.
func (c *conn) waitReadable() (open, waited bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.paused && !c.sockClosed {
		waited = true
		c.cond.Wait()
	}
	return !c.sockClosed, waited
}

func (c *conn) isPaused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || c.sockClosed
}

// closeSocketLocked closes the socket once; the reading goroutine then
// ends and runs OnClose.
func (c *conn) closeSocketLocked() {
	if c.sockClosed {
		return
	}
	c.sockClosed = true
	c.out = nil
	c.nc.Close()
	c.cond.Broadcast()
}

// Send path.

func (c *conn) Send(data string, raw bool) error {
	return c.send(nil, data, raw)
}

func (c *conn) SendBytes(data []byte, raw bool) error {
	return c.send(data, "", raw)
}

func (c *conn) WriteRaw(b []byte) error { return c.send(b, "", true) }

func (c *conn) send(b []byte, str string, raw bool) error {
	s := c.s
	c.mu.Lock()
	if c.closing || c.sockClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	if len(c.out)+c.inflight >= s.cfg.MaxSendBufferSize {
		c.mu.Unlock()
		s.errs.Add(1)
		c.onError(ErrSendBufferFull)
		return ErrSendBufferFull
	}
	var err error
	proto := s.cfg.Protocol
	switch {
	case raw || proto == nil:
		if b != nil {
			c.out = append(c.out, b...)
		} else {
			c.out = append(c.out, str...)
		}
	case b != nil:
		c.out, err = proto.Encode(c, c.out, b)
	default:
		c.out, err = proto.Encode(c, c.out, stringBytes(str))
	}
	if c.closeAfter.Load() {
		c.closing = true
	}
	nowFull := !c.full && len(c.out)+c.inflight >= s.cfg.MaxSendBufferSize
	if nowFull {
		c.full = true
	}
	deferred := c.dispatching
	c.mu.Unlock()
	if err != nil {
		s.errs.Add(1)
		c.onError(err)
		return err
	}
	if nowFull {
		if h := s.cfg.Handler.OnBufferFull; h != nil {
			h(c)
		}
	}
	if !deferred {
		c.flush()
	}
	return nil
}

// flush starts writing out unless a write is already in progress or the
// reading goroutine will flush at the end of its batch.
func (c *conn) flush() {
	c.mu.Lock()
	if c.closeAfter.Load() {
		c.closing = true
	}
	if c.writing || c.dispatching || c.sockClosed {
		c.mu.Unlock()
		return
	}
	if len(c.out) == 0 {
		if c.closing {
			c.closeSocketLocked()
		}
		c.mu.Unlock()
		return
	}
	buf := c.out
	c.out = c.spare[:0]
	c.spare = nil
	c.writing = true
	c.inflight = len(buf)
	c.mu.Unlock()

	if c.rc != nil {
		n, err := tryWrite(c.rc, buf)
		if err != nil || n == len(buf) {
			buf = c.wrote(buf, n, err)
			if buf == nil {
				return
			}
		} else {
			buf = buf[n:]
			c.wroteCount(n)
		}
	}
	c.s.wg.Add(1)
	go c.writeLoop(buf)
}

func (c *conn) writeLoop(buf []byte) {
	defer c.s.wg.Done()
	for buf != nil {
		n, err := c.nc.Write(buf)
		buf = c.wrote(buf, n, err)
	}
}

func (c *conn) wroteCount(n int) {
	if n > 0 {
		c.bytesOut.Add(uint64(n))
		c.s.bytesOut.Add(uint64(n))
	}
}

// wrote accounts for a finished write of buf and returns the next buffer to
// write, or nil when the writer should stop.
func (c *conn) wrote(buf []byte, n int, err error) []byte {
	c.wroteCount(n)
	s := c.s
	c.mu.Lock()
	if err != nil {
		c.writing = false
		c.inflight = 0
		c.closeSocketLocked()
		c.mu.Unlock()
		s.log.Debug().Uint64("conn", c.id).Err(err).Msg("write failed, connection closed")
		return nil
	}
	if cap(buf) <= 64<<10 {
		c.spare = buf[:0]
	}
	if c.closeAfter.Load() {
		c.closing = true
	}
	drained := false
	var next []byte
	if len(c.out) > 0 && !c.sockClosed {
		next = c.out
		c.out = c.spare
		c.spare = nil
		c.inflight = len(next)
	} else {
		c.writing = false
		c.inflight = 0
		if c.full {
			c.full = false
			drained = true
		}
		if c.closing {
			c.closeSocketLocked()
		}
	}
	c.mu.Unlock()
	if drained {
		if h := s.cfg.Handler.OnBufferDrain; h != nil {
			if perr := guard(func() { h(c) }); perr != nil {
				c.fail(perr)
			}
		}
	}
	return next
}

// Connection methods.

func (c *conn) ID() uint64                   { return c.id }
func (c *conn) State() any                   { return c.state }
func (c *conn) SetState(v any)               { c.state = v }
func (c *conn) MaxPackageSize() int          { return c.s.cfg.MaxPackageSize }
func (c *conn) Draining() bool               { return c.s.draining.Load() }
func (c *conn) LocalAddr() net.Addr          { return c.nc.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr         { return c.nc.RemoteAddr() }
func (c *conn) Transport() string            { return c.s.cfg.Transport }
func (c *conn) Protocol() protocols.Protocol { return c.s.cfg.Protocol }
func (c *conn) BytesRead() uint64            { return c.bytesIn.Load() }
func (c *conn) BytesWritten() uint64         { return c.bytesOut.Load() }
func (c *conn) CreatedAt() time.Time         { return c.created }

func (c *conn) SendBufferLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + c.inflight
}

func (c *conn) Context() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userCtx
}

func (c *conn) SetContext(v any) {
	c.mu.Lock()
	c.userCtx = v
	c.mu.Unlock()
}

// CloseAfterFlush may run with mu held (from Encode) or not (from Decode),
// so it only sets an atomic flag that send folds into closing under mu.
func (c *conn) CloseAfterFlush() { c.closeAfter.Store(true) }

func (c *conn) Close() error {
	c.mu.Lock()
	if c.closing || c.sockClosed {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	if len(c.out)+c.inflight > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	}
	c.mu.Unlock()
	c.flush()
	return nil
}

func (c *conn) Destroy() {
	c.mu.Lock()
	c.closing = true
	c.closeSocketLocked()
	c.mu.Unlock()
}

func (c *conn) PauseRecv() {
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
}

func (c *conn) ResumeRecv() {
	c.mu.Lock()
	c.paused = false
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *conn) info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := "established"
	switch {
	case c.closing || c.sockClosed:
		st = "closing"
	case c.paused:
		st = "paused"
	}
	pn := "raw"
	if p := c.s.cfg.Protocol; p != nil {
		pn = p.Name()
	}
	return Info{
		ID: c.id, Transport: c.s.cfg.Transport, Protocol: pn,
		LocalAddr: c.nc.LocalAddr().String(), RemoteAddr: c.nc.RemoteAddr().String(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), SendBuffer: len(c.out) + c.inflight,
		CreatedAt: c.created, State: st,
	}
}
