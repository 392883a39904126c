//go:build linux

package connections

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/timer"
)

// epollSupported reports whether this platform has the epoll engine.
const epollSupported = true

// Event tags in EpollEvent.Pad.
const (
	tagConn int32 = iota
	tagWake
	tagListener
)

// Pending work that other goroutines hand to a connection's loop
// (epConn.acts).
const (
	actFlush    uint32 = 1 << iota // write what is queued
	actResume                      // ResumeRecv: read and dispatch again
	actClose                       // the socket was closed: release it, run OnClose
	actTaskDone                    // a pool task of this connection ended

	actQueued uint32 = 1 << 31 // the connection is in its loop's queue
)

// Callback work of a connection handed to the pool (epConn.pend, under mu).
const (
	pendConnect uint8 = 1 << iota
	pendInput
	pendDrain
	pendClose
)

const (
	loopEvents  = 256        // events per epoll_wait
	loopReadBuf = 64 << 10   // a loop's shared read buffer
	acceptBatch = 4          // accepts per listener event, to share new connections between loops
	minReadRoom = 1 << 10    // least free room for a read into a connection's own buffer
	doneEvents  = ^uint16(0) // epConn.ev of a conn not registered
)

// epConn is a stream connection of the epoll engine. An idle epConn is
// this struct and its socket: input and output buffers are borrowed from
// the server's pool only while there are bytes to process or to send.
// Fields after base are owned by the connection's loop unless noted.
//
// The fields are packed so that an epConn stays in the 208-byte size
// class: mind the sizes when adding one.
type epConn struct {
	base
	l    *loop
	ln   *epListener
	fd   int32         // -1 once released
	woff int32         // bytes of wbuf already written
	acts atomic.Uint32 // work posted by other goroutines, and actQueued
	ev   uint16        // registered interest (the epoll bits used fit 16 bits)
	// rport and rfam, with raddr, are the peer's address.
	rport uint16
	rfam  uint8
	pend  uint8 // pool mode: work for the next task; under base.mu
	busy  bool  // pool mode: a task of c is running or submitted
	// eof: the peer has finished sending, or c is closing and has dropped
	// lingerBytes: input is not read any more.
	eof bool
	// inHalted: pool mode, set by the task: c.in may hold packets held
	// back by PauseRecv.
	inHalted bool
	lingered uint8 // input dropped since c began closing, in 16 KiB units
	raddr    [16]byte
	in       *buffer // unprocessed input (the running task's while busy)
	wbuf     *buffer // partly written output, waiting for EPOLLOUT
}

var _ Connection = (*epConn)(nil)

// loop is one event loop: an epoll instance served by one goroutine.
type loop struct {
	s      *Server
	epfd   int
	wakefd int
	// The loop parks in the Go netpoller on its epoll descriptor instead
	// of blocking a thread in epoll_wait, so an idle loop holds no P.
	pfile  *os.File
	prc    syscall.RawConn
	pollFn func(uintptr) bool
	nev    int
	perr   unix.Errno
	events []unix.EpollEvent
	rbuf   []byte
	ctr    counters
	iter   atomic.Uint64 // loop iterations, for the watchdog
	n      int           // open connections; loop-owned
	busyN  int           // connections with a pool task; loop-owned

	// tmu guards conns and lns for other goroutines (listings, Close,
	// listener changes) and dead; the loop itself reads conns without it.
	tmu   sync.Mutex
	conns []*epConn // by fd
	lns   map[int32]*loopListener
	dead  bool

	qmu     sync.Mutex
	queue   []*epConn
	funcs   []func()
	spare   []*epConn
	awake   atomic.Bool // not blocked in epoll_wait
	wakeSet atomic.Bool // a wake-up is written and not yet read
	qdead   bool        // under qmu: the loop is gone, wakefd closed
}

// loopListener is a listener as one loop sees it.
type loopListener struct {
	el      *epListener
	backoff time.Duration
}

// epListener is a listening socket shared by all loops of a server
// (EPOLLEXCLUSIVE: one loop is woken per connection).
type epListener struct {
	s    *Server
	ln   net.Listener
	fd   int
	tcp  bool
	addr net.Addr
	done chan struct{}
	errc chan error

	mu     sync.RWMutex // accept holds it for reading, Close for writing
	closed bool
	once   sync.Once
}

// newEpConn allocates an epConn, with its timers in the same allocation
// when the server has any.
func (s *Server) newEpConn() *epConn {
	if !s.timed {
		return new(epConn)
	}
	ct := new(struct {
		epConn
		tm connTimers
	})
	ct.epConn.tm = &ct.tm
	return &ct.epConn
}

// epollUsable reports whether the epoll engine can serve ln.
func epollUsable(ln net.Listener) bool {
	switch ln.(type) {
	case *net.TCPListener, *net.UnixListener:
		return true
	}
	return false
}

// serveEpoll serves ln on the server's event loops.
func (s *Server) serveEpoll(ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok || !epollUsable(ln) {
		return fmt.Errorf("connections: %T: %w", ln, ErrEngineUnsupported)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("connections: listener fd: %w", err)
	}
	el := &epListener{s: s, ln: ln, fd: -1, addr: ln.Addr(), done: make(chan struct{}), errc: make(chan error, 1)}
	_, el.tcp = ln.(*net.TCPListener)
	if err := rc.Control(func(fd uintptr) { el.fd = int(fd) }); err != nil {
		return fmt.Errorf("connections: listener fd: %w", err)
	}
	if !s.track(el, false) {
		return ErrServerClosed
	}
	defer s.untrack(el)
	if err := s.startLoops(); err != nil {
		el.Close()
		return err
	}
	for _, l := range s.loopList() {
		if err := l.addListener(el); err != nil {
			el.Close()
			return err
		}
	}
	select {
	case <-el.done:
		return ErrServerClosed
	case err := <-el.errc:
		el.Close()
		if s.draining.Load() {
			return ErrServerClosed
		}
		return err
	}
}

// Close stops every loop accepting from the listener and closes it. It
// never waits for a loop that is running a callback.
func (el *epListener) Close() error {
	var err error
	el.once.Do(func() {
		el.mu.Lock()
		el.closed = true
		el.mu.Unlock()
		for _, l := range el.s.loopList() {
			l.delListener(el)
		}
		err = el.ln.Close()
		close(el.done)
	})
	return err
}

// fail ends Serve with a fatal accept error.
func (el *epListener) fail(err error) {
	select {
	case el.errc <- err:
	default:
	}
}

// startLoops starts the server's loops once, unless the server is closed:
// the loops, the callback pool and the watchdog are published under s.mu
// together with the check, so Close either sees them all and waits for
// them or makes startLoops fail with ErrServerClosed.
func (s *Server) startLoops() error {
	s.loopOnce.Do(func() {
		n := s.cfg.Loops
		loops := make([]*loop, 0, n)
		for i := 0; i < n; i++ {
			l, err := newLoop(s)
			if err != nil {
				for _, l := range loops {
					l.release()
				}
				s.loopErr = err
				return
			}
			loops = append(loops, l)
		}
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			for _, l := range loops {
				l.release()
			}
			s.loopErr = ErrServerClosed
			return
		}
		s.loops = loops
		if s.cfg.CallbackGoroutines > 0 {
			s.pool = newTaskPool(s, s.cfg.CallbackGoroutines)
		}
		s.watchStop = make(chan struct{})
		s.loopWG.Add(len(loops))
		s.poolWG.Add(1)
		s.mu.Unlock()
		for _, l := range loops {
			go l.run()
		}
		go s.watchdog(loops)
	})
	return s.loopErr
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("connections: epoll_create1: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("connections: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd), Pad: tagWake}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(wfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("connections: epoll_ctl eventfd: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("connections: epoll nonblock: %w", err)
	}
	l := &loop{
		s: s, epfd: epfd, wakefd: wfd,
		events: make([]unix.EpollEvent, loopEvents),
		rbuf:   make([]byte, loopReadBuf),
		lns:    make(map[int32]*loopListener),
	}
	l.pfile = os.NewFile(uintptr(epfd), "epoll")
	if l.prc, err = l.pfile.SyscallConn(); err != nil {
		unix.Close(wfd)
		l.pfile.Close()
		return nil, fmt.Errorf("connections: epoll raw conn: %w", err)
	}
	l.pollFn = func(uintptr) bool {
		l.nev, l.perr = epollWait(l.epfd, l.events)
		return l.nev > 0 || l.perr != 0
	}
	l.awake.Store(true)
	return l, nil
}

// release closes the loop's descriptors; the loop goroutine is gone or
// never ran.
func (l *loop) release() {
	l.tmu.Lock()
	l.dead = true
	l.pfile.Close()
	l.tmu.Unlock()
	l.qmu.Lock()
	l.qdead = true
	unix.Close(l.wakefd)
	l.qmu.Unlock()
}

func (l *loop) addListener(el *epListener) error {
	el.mu.RLock()
	defer el.mu.RUnlock()
	if el.closed {
		return nil
	}
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if l.dead {
		return ErrServerClosed
	}
	l.lns[int32(el.fd)] = &loopListener{el: el}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(el.fd), Pad: tagListener}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, el.fd, &ev); err != nil {
		delete(l.lns, int32(el.fd))
		return fmt.Errorf("connections: epoll_ctl listener: %w", err)
	}
	return nil
}

func (l *loop) delListener(el *epListener) {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if ll, ok := l.lns[int32(el.fd)]; ok && ll.el == el {
		delete(l.lns, int32(el.fd))
		if !l.dead {
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, el.fd, nil)
		}
	}
}

// run is the loop goroutine.
func (l *loop) run() {
	defer l.s.loopWG.Done()
	defer l.release()
	for {
		// Every wait goes through the netpoller: its readiness is reset
		// when the wait starts, so pollFn must poll after that, never
		// before, or an event arriving in between would be lost.
		var n int
		var errno unix.Errno
		l.awake.Store(false)
		if l.hasWork() {
			n, errno = epollWait(l.epfd, l.events)
		} else {
			l.nev, l.perr = 0, 0
			if err := l.prc.Read(l.pollFn); err != nil {
				errno = unix.EBADF
			}
			n, errno = l.nev, l.perr
		}
		l.awake.Store(true)
		l.iter.Add(1)
		if errno != 0 && errno != unix.EINTR {
			l.s.log.Error().Err(errno).Msg("epoll_wait failed, event loop stopped")
			l.destroyAll()
			return
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			switch ev.Pad {
			case tagConn:
				if int(ev.Fd) < len(l.conns) {
					if c := l.conns[ev.Fd]; c != nil {
						l.handle(c, ev.Events)
					}
				}
			case tagWake:
				var b [8]byte
				unix.Read(l.wakefd, b[:])
				l.wakeSet.Store(false)
			case tagListener:
				l.accept(ev.Fd)
			}
		}
		l.runQueue()
		if l.n == 0 && l.busyN == 0 && (l.s.closed.Load() || l.s.draining.Load()) {
			return
		}
	}
}

// epollWait polls the epoll set without blocking. epoll_pwait with a nil
// signal mask is epoll_wait, and exists on every Linux architecture
// (arm64 has no epoll_wait).
func epollWait(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	p := uintptr(unsafe.Pointer(&events[0]))
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), p, uintptr(len(events)), 0, 0, 0)
	if e == unix.EAGAIN {
		return 0, 0
	}
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func sysRead(fd int32, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func sysWrite(fd int32, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func (l *loop) hasWork() bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return len(l.queue) > 0 || len(l.funcs) > 0
}

// wake makes the loop return from epoll_wait.
func (l *loop) wake() {
	if l.awake.Load() || !l.wakeSet.CompareAndSwap(false, true) {
		return
	}
	l.qmu.Lock()
	if !l.qdead {
		one := [8]byte{1}
		unix.Write(l.wakefd, one[:])
	}
	l.qmu.Unlock()
}

// post hands acts for c to its loop. Safe for concurrent use.
func (l *loop) post(c *epConn, acts uint32) {
	if c.acts.Or(acts|actQueued)&actQueued != 0 {
		return // already queued: the loop takes acts with the rest
	}
	l.qmu.Lock()
	if l.qdead {
		l.qmu.Unlock()
		return
	}
	l.queue = append(l.queue, c)
	l.qmu.Unlock()
	l.wake()
}

// postFunc runs fn on the loop. Safe for concurrent use.
func (l *loop) postFunc(fn func()) {
	l.qmu.Lock()
	if l.qdead {
		l.qmu.Unlock()
		return
	}
	l.funcs = append(l.funcs, fn)
	l.qmu.Unlock()
	l.wake()
}

// runQueue does the work other goroutines posted.
func (l *loop) runQueue() {
	for {
		l.qmu.Lock()
		q := l.queue
		fns := l.funcs
		if len(q) == 0 && len(fns) == 0 {
			l.qmu.Unlock()
			return
		}
		l.queue = l.spare[:0]
		l.funcs = nil
		l.qmu.Unlock()
		for i, c := range q {
			q[i] = nil
			acts := c.acts.Swap(0) // and actQueued: posts from now on queue c again
			if acts&actTaskDone != 0 {
				l.taskDone(c)
			}
			if c.fd < 0 {
				continue
			}
			// Only actClose releases the socket: it is posted by
			// closeSocketLocked once it has used the descriptor, so the
			// number is never closed (and reused) under it.
			if acts&actClose != 0 {
				l.finish(c)
				continue
			}
			if acts&actResume != 0 {
				l.resume(c)
			}
			if acts&(actFlush|actResume) != 0 {
				l.flush(c)
			}
		}
		l.spare = q[:0]
		for _, fn := range fns {
			fn()
		}
	}
}

// destroyAll closes every connection of a loop that cannot go on.
func (l *loop) destroyAll() {
	for _, c := range l.conns {
		if c != nil {
			c.Destroy()
			l.finish(c)
		}
	}
}

// accept takes new connections from the listener registered as fd.
func (l *loop) accept(fd int32) {
	l.tmu.Lock()
	ll := l.lns[fd]
	l.tmu.Unlock()
	if ll == nil {
		return
	}
	el := ll.el
	s := l.s
	for i := 0; i < acceptBatch; i++ {
		var rsa unix.RawSockaddrAny
		alen := uint32(unix.SizeofSockaddrAny)
		// The read lock is held from accept4 until the connection is
		// counted, so that once Close has taken the write lock every
		// connection accepted from el is counted (see Server.Drain).
		el.mu.RLock()
		if el.closed {
			el.mu.RUnlock()
			return
		}
		r, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(el.fd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&alen)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if errno != 0 {
			el.mu.RUnlock()
		}
		switch {
		case errno == unix.EAGAIN || errno == unix.EINTR || errno == unix.ECONNABORTED:
			return
		case errno == unix.EMFILE || errno == unix.ENFILE || errno == unix.ENOBUFS || errno == unix.ENOMEM:
			l.backOff(ll, errno)
			return
		case errno != 0:
			l.delListener(el)
			el.fail(fmt.Errorf("connections: accept: %w", errno))
			return
		}
		ll.backoff = 0
		nfd := int32(r)
		if el.tcp {
			unix.SetsockoptInt(int(nfd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		c := s.newEpConn()
		c.l, c.ln, c.fd, c.ev = l, el, nfd, doneEvents
		c.init(s, c, &l.ctr)
		c.setRemote(&rsa)
		ok := l.register(c)
		el.mu.RUnlock()
		if !ok {
			unix.Close(int(nfd))
			continue
		}
		c.startTimers()
		s.log.Debug().Uint64("conn", c.id).Stringer("remote", c.remoteAddr()).Msg("connection accepted")
		if s.pool != nil {
			l.schedule(c, pendConnect)
		} else {
			c.callback(s.cfg.Handler.OnConnect)
			l.flush(c)
		}
	}
}

// backOff stops this loop accepting from ll for a while after running out
// of descriptors or memory.
func (l *loop) backOff(ll *loopListener, errno unix.Errno) {
	ll.backoff = nextBackoff(ll.backoff)
	l.s.log.Warn().Err(errno).Dur("retry_in", ll.backoff).Msg("accept failed")
	el := ll.el
	l.tmu.Lock()
	if !l.dead {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, el.fd, nil)
	}
	l.tmu.Unlock()
	var retry timer.Timer // fires once; the closure keeps it
	l.s.wheel.Schedule(&retry, ll.backoff, func() {
		l.postFunc(func() {
			el.mu.RLock()
			closed := el.closed
			el.mu.RUnlock()
			if closed {
				return
			}
			l.tmu.Lock()
			if cur := l.lns[int32(el.fd)]; cur == ll && !l.dead {
				ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(el.fd), Pad: tagListener}
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, el.fd, &ev)
			}
			l.tmu.Unlock()
		})
	})
}

// register adds c to the loop's table and its epoll set; false when the
// server is closed.
func (l *loop) register(c *epConn) bool {
	s := l.s
	fd := int(c.fd)
	l.tmu.Lock()
	if s.closed.Load() {
		l.tmu.Unlock()
		return false
	}
	if fd >= len(l.conns) {
		n := 2 * len(l.conns)
		if n <= fd {
			n = fd + 64
		}
		conns := make([]*epConn, n)
		copy(conns, l.conns)
		l.conns = conns
	}
	l.conns[fd] = c
	l.tmu.Unlock()
	s.open.Add(1)
	s.accepted.Add(1)
	l.n++
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: c.fd, Pad: tagConn}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		s.log.Warn().Err(err).Msg("epoll_ctl add failed, connection closed")
		c.Destroy()
		return true
	}
	c.ev = unix.EPOLLIN | unix.EPOLLRDHUP
	return true
}

// handle serves one epoll event of c.
func (l *loop) handle(c *epConn, ev uint32) {
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && c.wbuf != nil {
		l.writable(c)
	}
	if c.eof {
		// Input is over; only a broken socket is news.
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			c.Destroy()
		}
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 && c.fd >= 0 {
		l.readable(c)
	}
}

// rearm sets c's epoll interest to what it needs now.
func (l *loop) rearm(c *epConn) {
	if c.fd < 0 || c.ev == doneEvents || c.has(fSockClosed) {
		return
	}
	var want uint16
	if (!c.has(fPaused) || c.has(fLinger)) && !c.busy && !c.eof {
		want = unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.wbuf != nil {
		want |= unix.EPOLLOUT
	}
	if want == c.ev {
		return
	}
	ev := unix.EpollEvent{Events: uint32(want), Fd: c.fd, Pad: tagConn}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &ev); err != nil {
		c.Destroy()
		return
	}
	c.ev = want
}

func (l *loop) readable(c *epConn) {
	if c.has(fSockClosed) {
		return
	}
	if (c.has(fPaused) && !c.has(fLinger)) || c.busy {
		l.rearm(c)
		return
	}
	s := l.s
	closing := c.has(fClosing)
	var n int
	var errno unix.Errno
	var buf []byte
	if c.in != nil && !closing {
		in := c.in
		if cap(in.b)-len(in.b) < minReadRoom {
			nb, err := growInput(in.b, s.cfg.MaxPackageSize, s.cfg.ReadBufferSize)
			if err != nil {
				l.dropInput(c)
				c.fail(err)
				l.flush(c)
				return
			}
			s.bufs.put(in)
			in = &buffer{b: nb}
			c.in = in
		}
		n, errno = sysRead(c.fd, in.b[len(in.b):cap(in.b)])
		if n > 0 {
			in.b = in.b[:len(in.b)+n]
			buf = in.b
		}
	} else {
		n, errno = sysRead(c.fd, l.rbuf)
		buf = l.rbuf[:n]
	}
	switch {
	case n > 0:
		c.bytesIn.Add(uint64(n))
		l.ctr.bytesIn.Add(uint64(n))
		c.touchIn()
		switch {
		case closing:
			l.dropInput(c)
			if u := int(c.lingered) + (n+16<<10-1)>>14; u < lingerBytes>>14 {
				c.lingered = uint8(u)
			} else {
				c.eof = true // enough: let the flush and lingerTimeout end it
				l.rearm(c)
			}
		case s.pool != nil:
			if c.in == nil {
				c.in = s.bufs.get()
				c.in.b = append(c.in.b, buf...)
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
		c.inputEnded()
		l.rearm(c)
	default: // a socket error
		c.Destroy()
	}
}

// consume dispatches buf (the loop's read buffer or c.in), keeps what is
// left in c.in and writes the answers.
func (l *loop) consume(c *epConn, buf []byte) {
	used, _ := c.dispatch(buf) // held-back packets stay in c.in for resume
	if c.has(fClosing | fSockClosed) {
		l.dropInput(c)
	} else {
		rest := buf[used:]
		switch {
		case c.in != nil && len(rest) == 0:
			l.dropInput(c)
		case c.in != nil:
			c.in.b = c.in.b[:copy(c.in.b, rest)]
		case len(rest) > 0:
			c.in = l.s.bufs.get()
			c.in.b = append(c.in.b, rest...)
		}
	}
	l.flush(c)
}

func (l *loop) dropInput(c *epConn) {
	if c.in != nil {
		l.s.bufs.put(c.in)
		c.in = nil
	}
}

// resume restarts reading after ResumeRecv, delivering what was buffered
// before PauseRecv first.
func (l *loop) resume(c *epConn) {
	if c.busy || (c.has(fPaused) && !c.has(fLinger)) {
		return
	}
	if c.in != nil && len(c.in.b) > 0 {
		if l.s.pool != nil {
			l.schedule(c, pendInput)
			return
		}
		l.consume(c, c.in.b)
	}
	l.rearm(c)
}

// flush writes what is queued, as one write per batch, until the kernel
// takes no more.
func (l *loop) flush(c *epConn) {
	for c.wbuf == nil && c.fd >= 0 {
		buf := c.takeOut()
		if buf == nil || !l.write(c, buf, 0) {
			break
		}
	}
	l.rearm(c)
}

// writable continues a partial write once the socket takes more.
func (l *loop) writable(c *epConn) {
	if l.write(c, c.wbuf, int(c.woff)) {
		l.flush(c)
	}
}

// write writes buf.b[off:]. It reports true when buf is finished with
// (written, or the write failed and the connection is closing); otherwise
// the rest waits in c.wbuf for EPOLLOUT.
func (l *loop) write(c *epConn, buf *buffer, off int) bool {
	n, errno := sysWrite(c.fd, buf.b[off:])
	l.ctr.writes.Add(1)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		n, errno = 0, 0
	}
	if errno == 0 && off+n < len(buf.b) {
		c.wroteSome(n)
		c.wbuf, c.woff = buf, int32(off+n)
		return false
	}
	c.wbuf = nil
	var err error
	if errno != 0 {
		err = errno
	}
	c.writeDone(buf, n, err)
	return true
}

// finish releases a closed connection's socket and buffers and runs
// OnClose.
func (l *loop) finish(c *epConn) {
	if c.fd < 0 {
		return
	}
	fd := c.fd
	l.tmu.Lock()
	l.conns[fd] = nil
	l.tmu.Unlock()
	unix.Close(int(fd))
	c.fd = -1
	if !c.busy {
		l.dropInput(c) // a running task still owns c.in
	}
	if c.wbuf != nil {
		l.s.bufs.put(c.wbuf)
		c.wbuf = nil
	}
	l.n--
	if l.s.pool != nil {
		l.schedule(c, pendClose)
		return
	}
	c.closed()
}

// closed runs OnClose and retires c from the server.
func (c *epConn) closed() {
	s := c.s
	if h := s.cfg.Handler.OnClose; h != nil {
		if err := guard(func() { h(c) }); err != nil {
			s.log.Error().Uint64("conn", c.id).Err(err).Msg("OnClose panicked")
		}
	}
	s.log.Debug().Uint64("conn", c.id).Msg("connection closed")
	s.connGone()
}

// Engine hooks; they may run on any goroutine.

func (c *epConn) kick() { c.l.post(c, actFlush) }

func (c *epConn) closeSocketLocked() {
	// The descriptor stays open until the loop releases it, so that its
	// number cannot be reused under the loop; shutdown tells the peer now.
	unix.Shutdown(int(c.fd), unix.SHUT_RDWR)
	c.l.post(c, actClose)
}

func (c *epConn) resumed() { c.l.post(c, actResume) }

func (c *epConn) flushDeadline() { c.destroyAfterLocked(closeFlushTimeout) }

func (c *epConn) lingerLocked() bool {
	if unix.Shutdown(int(c.fd), unix.SHUT_WR) != nil {
		return false
	}
	if c.has(fPaused) {
		c.l.post(c, actResume) // read again, to drop
	}
	c.destroyAfterLocked(lingerTimeout)
	return true
}

func (c *epConn) drained() {
	if c.s.pool != nil {
		c.l.schedule(c, pendDrain)
		return
	}
	c.callback(c.s.cfg.Handler.OnBufferDrain)
}

func (c *epConn) localAddr() net.Addr { return c.ln.addr }

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

func (c *epConn) remoteAddr() net.Addr {
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
	c.mu.Lock()
	c.pend |= what
	c.mu.Unlock()
	if c.busy {
		return
	}
	c.busy = true
	l.busyN++
	l.rearm(c)
	l.s.pool.submit(c)
}

// taskDone runs on the loop when a task of c has ended.
func (l *loop) taskDone(c *epConn) {
	c.mu.Lock()
	more := c.pend != 0
	c.mu.Unlock()
	if more {
		l.s.pool.submit(c)
		return
	}
	c.busy = false
	l.busyN--
	if c.fd < 0 {
		l.dropInput(c)
		return
	}
	l.flush(c)
	if c.inHalted && c.in != nil && !c.halted() {
		// ResumeRecv came while the task ran: deliver what it held back.
		c.inHalted = false
		l.schedule(c, pendInput)
	}
}

// runTasks does c's pending callback work on a pool goroutine.
func (c *epConn) runTasks() {
	h := &c.s.cfg.Handler
	for {
		c.mu.Lock()
		p := c.pend
		c.pend = 0
		c.mu.Unlock()
		if p == 0 {
			break
		}
		if p&pendConnect != 0 {
			c.callback(h.OnConnect)
		}
		if p&pendInput != 0 && c.in != nil && c.halted() {
			c.inHalted = true
		} else if p&pendInput != 0 && c.in != nil {
			used, halted := c.dispatch(c.in.b)
			c.inHalted = halted
			c.in.b = c.in.b[:copy(c.in.b, c.in.b[used:])]
			if len(c.in.b) == 0 || c.has(fClosing|fSockClosed) {
				c.s.bufs.put(c.in)
				c.in = nil
			}
		}
		if p&pendDrain != 0 {
			c.callback(h.OnBufferDrain)
		}
		if p&pendClose != 0 {
			c.closed()
			break
		}
	}
	c.l.post(c, actTaskDone)
}

// taskPool runs connection tasks on at most max goroutines, started on
// demand; idle ones wait for work until the server closes.
type taskPool struct {
	s       *Server
	max     int
	mu      sync.Mutex
	cond    sync.Cond // on mu: work queued or stopping
	q       []*epConn // q[head:] is waiting
	head    int
	running int
	idle    int
	stopped bool
}

func newTaskPool(s *Server, max int) *taskPool {
	p := &taskPool{s: s, max: max}
	p.cond.L = &p.mu
	return p
}

func (p *taskPool) submit(c *epConn) {
	p.mu.Lock()
	p.q = append(p.q, c)
	switch {
	case p.idle > 0:
		p.cond.Signal()
	case p.running < p.max:
		p.running++
		p.s.poolWG.Add(1)
		go p.work()
	}
	p.mu.Unlock()
}

func (p *taskPool) work() {
	defer p.s.poolWG.Done()
	p.mu.Lock()
	for {
		for p.head == len(p.q) {
			if p.stopped {
				p.running--
				p.mu.Unlock()
				return
			}
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		c := p.q[p.head]
		p.q[p.head] = nil
		if p.head++; p.head == len(p.q) {
			p.q, p.head = p.q[:0], 0
		}
		p.mu.Unlock()
		c.runTasks()
		p.mu.Lock()
	}
}

// stop ends the idle workers once the loops are gone.
func (p *taskPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// epollConns returns the open connections of every loop.
func (s *Server) epollConns(dst []Connection) []Connection {
	for _, l := range s.loopList() {
		l.tmu.Lock()
		for _, c := range l.conns {
			if c != nil {
				dst = append(dst, c)
			}
		}
		l.tmu.Unlock()
	}
	return dst
}

// loopCounters adds the loops' counters to st.
func (s *Server) loopCounters(st *Stats) {
	for _, l := range s.loopList() {
		l.ctr.addTo(st)
	}
}

// waitLoops waits until the loops, the callback pool and the watchdog
// are gone.
func (s *Server) waitLoops() {
	s.loopWG.Wait()
	s.mu.Lock()
	pool := s.pool
	if s.watchStop != nil && !s.watchStopped {
		s.watchStopped = true
		close(s.watchStop)
	}
	s.mu.Unlock()
	if pool != nil {
		pool.stop()
	}
	s.poolWG.Wait()
}

// watchdog warns when a loop has been stuck in one iteration (a callback
// that blocks, with callbacks on the loop) for stallAfter or longer: every
// other connection of that loop waits meanwhile.
func (s *Server) watchdog(loops []*loop) {
	defer s.poolWG.Done()
	every := s.stallAfter
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := make([]uint64, len(loops))
	stuck := make([]int, len(loops))
	for {
		select {
		case <-s.watchStop:
			return
		case <-t.C:
		}
		for i, l := range loops {
			it := l.iter.Load()
			if it != last[i] || !l.awake.Load() {
				last[i], stuck[i] = it, 0
				continue
			}
			if stuck[i]++; stuck[i] == 1 || stuck[i]%10 == 0 {
				s.log.Warn().Int("loop", i).Dur("blocked_for", time.Duration(stuck[i])*every).
					Msg("event loop blocked by a callback; its other connections wait (see Config.CallbackGoroutines)")
			}
		}
	}
}

// wakeLoops makes every loop look at the server's state.
func (s *Server) wakeLoops() {
	for _, l := range s.loopList() {
		l.postFunc(func() {})
	}
}

func (c *epConn) engine() string { return EngineEpoll }
