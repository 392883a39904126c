//go:build linux

package epoll

import (
	"net"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections/internal/core"
)

// Callback work of a connection handed to the pool (epConn.pend, under mu).
const (
	pendConnect uint8 = 1 << iota
	pendInput
	pendDrain
	pendClose
)

const (
	minReadRoom = 1 << 10    // least free room for a read into a connection's own buffer
	doneEvents  = ^uint16(0) // epConn.ev of a conn not registered
)

// epConn is a stream connection of the epoll engine. An idle epConn is
// this struct and its socket: input and output buffers are borrowed from
// the server's pool only while there are bytes to process or to send.
// Fields after core.Conn are owned by the connection's loop unless noted.
//
// The fields are packed so that an epConn with its timers (timedEpConn)
// stays in the 288-byte size class: mind the sizes when adding one (2
// bytes after lingered are padding).
type epConn struct {
	core.Conn
	l    *loop
	ln   *epListener
	fd   int32         // -1 once released
	woff int32         // bytes of wbuf already written
	acts atomic.Uint32 // work posted by other goroutines, and actQueued
	ev   uint16        // registered interest (the epoll bits used fit 16 bits)
	// rport and rfam, with raddr, are the peer's address.
	rport uint16
	rfam  uint8
	pend  uint8 // pool mode: work for the next task; under core.Conn.Mu
	busy  bool  // pool mode: a task of c is running or submitted
	// eof: the peer has finished sending, or c is closing and has dropped
	// core.LingerBytes: input is not read any more.
	eof bool
	// inHalted: pool mode, set by the task: c.in may hold packets held
	// back by PauseRecv.
	inHalted bool
	lingered uint8 // input dropped since c began closing, in 16 KiB units
	raddr    [16]byte
	in       *core.Buffer // unprocessed input (the running task's while busy)
	wbuf     *core.Buffer // partly written output, waiting for EPOLLOUT
}

var _ core.Connection = (*epConn)(nil)

// timedEpConn is what newEpConn allocates for a server with timers: the
// timers just before the epConn (core.Conn.UseTimers), one object of the
// 288-byte size class (TestEpConnWithTimersSize).
type timedEpConn struct {
	tm core.ConnTimers
	epConn
}

// tlsEpConn is what newEpConn allocates for a TLS connection: its loop
// TLS state in the same object as the connection (a fan-out to TLS
// connections touches both for each member, cold by then: one object is
// fewer pages to walk to than two).
type tlsEpConn struct {
	tm core.ConnTimers
	epConn
	tls epTLS
}

// newEpConn allocates an epConn, with its timers in the same allocation
// when the server has any, and for a TLS connection (tls) its TLS state
// too (returned; nil for a plain one).
func newEpConn(s *core.Runtime, tls bool) (*epConn, *epTLS) {
	switch {
	case tls:
		ct := new(tlsEpConn)
		if s.Timed {
			ct.epConn.UseTimers(&ct.tm)
		}
		return &ct.epConn, &ct.tls
	case !s.Timed:
		return new(epConn), nil
	}
	ct := new(timedEpConn)
	ct.epConn.UseTimers(&ct.tm)
	return &ct.epConn, nil
}

// handle serves one epoll event of c.
func (l *loop) handle(c *epConn, ev uint32) {
	if ev&(Out|Err|Hup) != 0 && (c.wbuf != nil || c.ln.tls != nil) {
		l.writable(c)
	}
	if c.eof {
		// Input is over; only a broken socket is news.
		if ev&(Err|Hup) != 0 {
			c.Destroy()
		}
		return
	}
	if ev&(In|RdHup|Err|Hup) != 0 && c.fd >= 0 {
		l.readable(c)
	}
}

// rearm sets c's epoll interest to what it needs now.
func (l *loop) rearm(c *epConn) {
	if c.fd < 0 || c.ev == doneEvents || c.Has(core.FSockClosed) {
		return
	}
	var want uint16
	if !c.ReadStopped() && !c.busy && !c.eof {
		want = In | RdHup
	}
	if c.wbuf != nil {
		want |= Out
	} else if c.ln.tls != nil {
		if t := l.tlsState(c); t != nil && t.ctlWait {
			want |= Out
		}
	}
	if want == c.ev {
		return
	}
	if err := l.p.Mod(c.fd, uint32(want), TagConn); err != nil {
		c.Destroy()
		return
	}
	c.ev = want
}

// readable reads what c's socket holds and hands it on.
//
// Transport seam: the bytes read here are socket bytes, handed as they
// are to the protocol (consume, or a pool task). A TLS connection's go
// through its record layer first (tlsRead, tls_linux.go), which hands on
// the plaintext it decrypted the same way; its state is allocated beside
// the epConn (tlsEpConn), not in it.
func (l *loop) readable(c *epConn) {
	if c.ln.tls != nil {
		if t := l.tlsState(c); t != nil {
			l.tlsRead(c, t) // tls_linux.go
			return
		}
	}
	if c.Has(core.FSockClosed) {
		return
	}
	if c.ReadStopped() || c.busy {
		l.rearm(c)
		return
	}
	s := l.rt
	closing := c.Has(core.FClosing)
	var n int
	var errno unix.Errno
	var buf []byte
	if c.in != nil && !closing {
		if cap(c.in.B)-len(c.in.B) < minReadRoom && !l.growInput(c) {
			return
		}
		in := c.in
		n, errno = l.sys.Read(c.fd, in.B[len(in.B):cap(in.B)])
		if n > 0 {
			in.B = in.B[:len(in.B)+n]
			buf = in.B
		}
	} else {
		n, errno = l.sys.Read(c.fd, l.rbuf)
		buf = l.rbuf[:n]
	}
	switch {
	case n > 0:
		c.Received(n)
		switch {
		case closing:
			l.dropInput(c)
			if u := int(c.lingered) + (n+16<<10-1)>>14; u < core.LingerBytes>>14 {
				c.lingered = uint8(u)
			} else {
				c.eof = true // enough: let the flush and core.LingerTimeout end it
				l.rearm(c)
			}
		case l.pool != nil:
			if c.in == nil {
				c.in = s.Bufs.GetCap(len(buf)) // for the task: charged if it keeps a partial packet
				c.in.B = append(c.in.B, buf...)
			}
			l.schedule(c, pendInput)
		default:
			l.consume(c, buf)
		}
	case errno == unix.EAGAIN || errno == unix.EINTR:
	case errno == 0:
		// The peer has finished sending: answer what it asked (or finish
		// writing what was queued before Close), then close.
		c.eof = true
		c.InputEnded()
		l.rearm(c)
	default: // a socket error
		c.Destroy()
	}
}

// growInput gives c.in more room for the packet it holds: as much as the
// packet still needs when the protocol knows its length, otherwise double
// (core.InputSize), charged to the input budget. It reports false when c
// failed instead (the packet is over MaxPackageSize) or was shed (the
// budget is spent and c holds the most); c.in is then gone.
func (l *loop) growInput(c *epConn) bool {
	s := l.rt
	in := c.in
	want := s.PacketSize(c, in.B)
	if want > len(in.B) && want <= cap(in.B) {
		return true // room for the rest of the packet
	}
	size, err := core.InputSize(len(in.B), cap(in.B), want, s.Cfg.MaxPackageSize, s.Cfg.ReadBufferSize)
	if err != nil {
		l.dropInput(c)
		c.Fail(err)
		l.flush(c)
		return false
	}
	if !s.Budget.HoldBuf(&c.Conn, size) {
		l.dropInput(c)
		c.Shed(true)
		l.flush(c)
		return false
	}
	nb := s.Bufs.GetInput(size)
	nb.B = append(nb.B, in.B...)
	s.Bufs.PutInput(in)
	c.in = nb
	return true
}

// keepInput makes c.in, charged to the input budget, for rest: the start
// of a packet left in the loop's read buffer. It reports false when c was
// shed instead (or failed: rest is over MaxPackageSize).
func (l *loop) keepInput(c *epConn, rest []byte) bool {
	s := l.rt
	size, err := core.InputSize(len(rest), 0, s.PacketSize(c, rest), s.Cfg.MaxPackageSize, s.Cfg.ReadBufferSize)
	if err != nil {
		c.Fail(err)
		return false
	}
	if !s.Budget.HoldBuf(&c.Conn, size) {
		c.Shed(true)
		return false
	}
	c.in = s.Bufs.GetInput(size)
	c.in.B = append(c.in.B, rest...)
	return true
}

// consume dispatches buf (the loop's read buffer or c.in), keeps what is
// left in c.in and writes the answers.
func (l *loop) consume(c *epConn, buf []byte) {
	l.cb.Enter(core.CbMessage, c.ID())
	used, _ := c.Dispatch(buf) // held-back packets stay in c.in for resume
	l.cb.Leave()
	if c.Has(core.FClosing | core.FSockClosed) {
		l.dropInput(c)
	} else {
		rest := buf[used:]
		switch {
		case c.in != nil && len(rest) == 0:
			l.dropInput(c)
		case c.in != nil && used > 0 && cap(c.in.B) > core.SmallPacket && cap(c.in.B) >= 4*len(rest):
			// A large packet is done and the start of a small one
			// follows: move it to a buffer of its size.
			old := c.in
			c.in = nil
			if !l.keepInput(c, rest) {
				l.dropInput(c)
			}
			l.rt.Bufs.PutInput(old)
		case c.in != nil:
			c.in.B = c.in.B[:copy(c.in.B, rest)]
		case len(rest) > 0:
			l.keepInput(c, rest)
		}
	}
	l.flush(c)
}

// dropInput lets go of c.in and of its charge to the input budget.
func (l *loop) dropInput(c *epConn) {
	if c.in != nil {
		l.rt.Bufs.PutInput(c.in)
		c.in = nil
	}
	if c.Has(core.FInputHeld) {
		l.rt.Budget.HoldBuf(&c.Conn, 0)
	}
}

// resume restarts reading after ResumeRecv, or once the output has
// drained below the low watermark, delivering what was buffered before
// the pause first.
func (l *loop) resume(c *epConn) {
	if c.busy || c.ReadStopped() {
		return
	}
	if c.in != nil && len(c.in.B) > 0 {
		if l.pool != nil {
			l.schedule(c, pendInput)
			return
		}
		l.consume(c, c.in.B)
	}
	if c.ln.tls != nil {
		l.tlsResume(c)
	}
	l.rearm(c)
}

// flush writes what is queued, as one write per batch, until the kernel
// takes no more.
func (l *loop) flush(c *epConn) {
	if c.ln.tls != nil {
		if t := l.tlsState(c); t != nil {
			l.tlsFlush(c, t)
			return
		}
	}
	if c.wbuf == nil && c.fd >= 0 {
		for buf := c.TakeOut(); buf != nil; {
			buf = l.write(c, buf, 0)
		}
	}
	l.rearm(c)
}

// writable continues a partial write once the socket takes more.
//
// Transport seam, the sending half (see readable): what the send queue
// holds is the protocol's encoded output; a TLS connection's is sealed
// into records as flush takes it (TakeOut), before write sees it
// (tlsFlush, tlsWritable, and gather for the io_uring batch), so that
// the write path itself stays bytes in, bytes out.
func (l *loop) writable(c *epConn) {
	if c.ln.tls != nil {
		if t := l.tlsState(c); t != nil {
			l.tlsWritable(c, t)
			return
		}
	}
	if c.wbuf == nil {
		return
	}
	for buf := l.write(c, c.wbuf, int(c.woff)); buf != nil; {
		buf = l.write(c, buf, 0)
	}
	l.rearm(c)
}

// write writes buf.b[off:]. When buf is finished with (written, or the
// write failed and the connection is closing) it returns what was queued
// meanwhile, to write next, or nil; when the kernel took only part of it,
// the rest waits in c.wbuf for EPOLLOUT and it returns nil.
func (l *loop) write(c *epConn, buf *core.Buffer, off int) *core.Buffer {
	n, errno := l.sys.Write(c.fd, buf.B[off:])
	return l.wrote(c, buf, off, n, errno)
}

// wrote is write once the kernel has taken n bytes of buf.b[off:] or
// failed with errno.
func (l *loop) wrote(c *epConn, buf *core.Buffer, off, n int, errno unix.Errno) *core.Buffer {
	l.ctr.Writes.Add(1)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		n, errno = 0, 0
	}
	if errno == 0 && off+n < len(buf.B) {
		c.WroteSome(n)
		c.WaitingOut(n > 0)
		c.wbuf, c.woff = buf, int32(off+n)
		return nil
	}
	c.wbuf = nil
	var err error
	if errno != 0 {
		err = errno
	}
	return c.WriteDoneNext(buf, n, err, true)
}

// finish releases a closed connection's socket and buffers and runs
// OnClose.
func (l *loop) finish(c *epConn) {
	if c.fd < 0 {
		return
	}
	fd := c.fd
	if c.ln.tls != nil {
		l.tlsRelease(c)
	}
	l.tmu.Lock()
	l.conns[fd] = nil
	l.tmu.Unlock()
	l.sys.Close(int(fd))
	c.fd = -1
	if !c.busy {
		l.dropInput(c) // a running task still owns c.in
	}
	if c.wbuf != nil {
		l.rt.Bufs.Put(c.wbuf)
		c.wbuf = nil
	}
	l.n--
	if l.pool != nil {
		l.schedule(c, pendClose)
		return
	}
	l.cb.Enter(core.CbClose, c.ID())
	c.closed()
	l.cb.Leave()
}

// closed runs OnClose and retires c from the server.
func (c *epConn) closed() {
	s := c.RT
	s.Budget.Forget(&c.Conn) // what its protocol held
	if h := s.Cfg.Handler.OnClose; h != nil {
		if err := core.Guard(func() { h(c) }); err != nil {
			s.Log.Error().Uint64("conn", c.ID()).Err(err).Msg("OnClose panicked")
		}
	}
	s.Log.Debug().Uint64("conn", c.ID()).Msg("connection closed")
	s.ConnGone()
}

// Engine hooks; they may run on any goroutine.

func (c *epConn) Kick() { c.l.post(c, actFlush) }

func (c *epConn) CloseSocketLocked() {
	// The descriptor stays open until the loop releases it, so that its
	// number cannot be reused under the loop; shutdown tells the peer now.
	// A lingering connection has told it (LingerLocked's SHUT_WR) and is
	// closed once the peer has ended or its time is up: a second shutdown
	// would only fail (ENOTCONN once the peer has gone).
	if !c.Has(core.FLinger) {
		c.l.sys.Shutdown(c.fd, unix.SHUT_RDWR)
	}
	c.l.post(c, actClose)
}

func (c *epConn) Resumed() { c.l.post(c, actResume) }

func (c *epConn) ShedInput() { c.l.post(c, actShed) }

// BatchKick: a Fanout's flushes go through the loop's queue, in batches.
func (c *epConn) BatchKick() (core.KickQueue, bool) {
	return c.l, c.acts.Or(actFlush|actQueued)&actQueued == 0
}

func (c *epConn) FlushDeadline() { c.DestroyAfterLocked(core.CloseFlushTimeout) }

func (c *epConn) LingerLocked() bool {
	if c.ln.tls != nil {
		c.l.tlsCloseNotify(c)
	}
	if c.l.sys.Shutdown(c.fd, unix.SHUT_WR) != nil {
		return false
	}
	if c.Has(core.FPaused | core.FBackpressure) {
		c.l.post(c, actResume) // read again, to drop
	}
	c.DestroyAfterLocked(core.LingerTimeout)
	return true
}

func (c *epConn) Drained() {
	if c.l.pool != nil {
		c.l.schedule(c, pendDrain)
		return
	}
	c.l.cb.Enter(core.CbDrain, c.ID())
	c.Callback(c.RT.Cfg.Handler.OnBufferDrain)
	c.l.cb.Leave()
}

func (c *epConn) Local() net.Addr { return c.ln.addr }

func (c *epConn) setRemote(rsa *unix.RawSockaddrAny) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		c.rfam = 4
		copy(c.raddr[:4], sa.Addr[:])
		c.rport = uint16(sa.Port>>8) | uint16(sa.Port&0xff)<<8
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		c.rfam = 6
		c.raddr = sa.Addr
		c.rport = uint16(sa.Port>>8) | uint16(sa.Port&0xff)<<8
	}
}

func (c *epConn) Remote() net.Addr {
	switch c.rfam {
	case 4:
		return &net.TCPAddr{IP: net.IPv4(c.raddr[0], c.raddr[1], c.raddr[2], c.raddr[3]), Port: int(c.rport)}
	case 6:
		ip := make(net.IP, 16)
		copy(ip, c.raddr[:])
		return &net.TCPAddr{IP: ip, Port: int(c.rport)}
	}
	return &net.UnixAddr{Net: "unix"}
}

// Pool mode: callbacks run on a bounded goroutine pool, one task per
// connection at a time; the loop only does I/O.

// schedule records work for c's next task and submits one unless a task
// of c is running; reading stops until the task is done.
func (l *loop) schedule(c *epConn, what uint8) {
	c.Mu.Lock()
	c.pend |= what
	if what&pendInput != 0 {
		c.SetFlag(core.FInputWaits)
	}
	c.Mu.Unlock()
	if c.busy {
		return
	}
	c.busy = true
	l.busyN++
	l.rearm(c)
	l.pool.Submit(c)
}

// taskDone runs on the loop when a task of c has ended.
func (l *loop) taskDone(c *epConn) {
	c.Mu.Lock()
	more := c.pend != 0
	c.Mu.Unlock()
	if more {
		l.pool.Submit(c)
		return
	}
	c.busy = false
	l.busyN--
	if c.fd < 0 {
		l.dropInput(c)
		return
	}
	l.flush(c)
	if c.inHalted && c.in != nil && !c.Halted() {
		// ResumeRecv came while the task ran: deliver what it held back.
		c.inHalted = false
		l.schedule(c, pendInput)
	}
	if c.ln.tls != nil && !c.busy {
		l.tlsResume(c)
	}
}

// RunTasks does c's pending callback work on a pool goroutine.
func (c *epConn) RunTasks() {
	h := &c.RT.Cfg.Handler
	for {
		c.Mu.Lock()
		p := c.pend
		c.pend = 0
		if p&pendInput == 0 {
			c.ClearFlag(core.FInputWaits) // delivered by the previous pass, if any
		}
		c.Mu.Unlock()
		if p == 0 {
			break
		}
		if p&pendConnect != 0 {
			c.Callback(h.OnConnect)
		}
		if p&pendInput != 0 && c.in != nil && c.Halted() {
			c.inHalted = true
		} else if p&pendInput != 0 && c.in != nil {
			used, halted := c.Dispatch(c.in.B)
			c.inHalted = halted
			c.in.B = c.in.B[:copy(c.in.B, c.in.B[used:])]
			// c.in was lent for one read: it is charged to the input
			// budget only if it keeps a partial packet.
			if len(c.in.B) == 0 || c.Has(core.FClosing|core.FSockClosed) {
				c.releaseInput()
			} else {
				c.holdInput()
			}
		}
		if p&pendDrain != 0 {
			c.Callback(h.OnBufferDrain)
		}
		if p&pendClose != 0 {
			c.closed()
			break
		}
	}
	c.l.post(c, actTaskDone)
}

// holdInput charges c.in, which holds the start of a packet, to the input
// budget, first giving it the packet's size when the protocol knows it
// (as keepInput does on the loop); when the budget refuses, c is shed,
// and when the packet is over MaxPackageSize, c fails. The pool task that
// owns c.in calls it.
func (c *epConn) holdInput() {
	s := c.RT
	in := c.in
	size := cap(in.B)
	if want := s.PacketSize(c, in.B); want > size {
		var err error
		if size, err = core.InputSize(len(in.B), 0, want, s.Cfg.MaxPackageSize, s.Cfg.ReadBufferSize); err != nil {
			c.releaseInput()
			c.Fail(err)
			return
		}
	}
	if !s.Budget.HoldBuf(&c.Conn, size) {
		c.releaseInput()
		c.Shed(true)
		return
	}
	if size != cap(in.B) {
		c.in = s.Bufs.GetInput(size)
		c.in.B = append(c.in.B, in.B...)
		s.Bufs.PutInput(in)
	}
}

// releaseInput is dropInput for the pool task that owns c.in.
func (c *epConn) releaseInput() {
	c.RT.Bufs.PutInput(c.in)
	c.in = nil
	if c.Has(core.FInputHeld) {
		c.RT.Budget.HoldBuf(&c.Conn, 0)
	}
}

func (c *epConn) EngineName() string { return core.EngineEpoll }
