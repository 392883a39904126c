//go:build linux

package connections

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Event tags in EpollEvent.Pad.
const (
	tagConn int32 = iota
	tagWake
	tagListener
)

// loopEvents is the number of events one wait returns at most.
const loopEvents = 256

// poller is one epoll instance and the eventfd that wakes it. It parks in
// the Go netpoller on its epoll descriptor instead of blocking a thread in
// epoll_wait, so an idle loop holds no P. Its loop's goroutine waits and
// reads the events and changes the interest set (other goroutines do that
// under loop.tmu); needsSignal and signal are what other goroutines call
// to wake it, signal only while the eventfd is open (see loop.wake).
type poller struct {
	sys    *sysCalls
	epfd   int
	wakefd int
	pfile  *os.File // epfd, for the netpoller; closing it closes epfd
	prc    syscall.RawConn
	pollFn func(uintptr) bool // made once: a wait allocates nothing
	nev    int
	perr   unix.Errno
	events []unix.EpollEvent
	// awake is false while the loop waits for events (a wake-up must
	// be written) and true while it works (a wake-up would be wasted).
	awake   atomic.Bool
	wakeSet atomic.Bool // a wake-up is written and not yet read
}

// open makes p's epoll instance and eventfd, the eventfd registered with
// tagWake.
func (p *poller) open(sys *sysCalls) error {
	p.sys = sys
	epfd, err := sys.epollCreate()
	if err != nil {
		return fmt.Errorf("connections: epoll_create1: %w", err)
	}
	wfd, err := sys.eventfd()
	if err != nil {
		sys.close(epfd)
		return fmt.Errorf("connections: eventfd: %w", err)
	}
	if err := sys.epollCtl(epfd, unix.EPOLL_CTL_ADD, int32(wfd), unix.EPOLLIN, tagWake); err != nil {
		sys.close(wfd)
		sys.close(epfd)
		return fmt.Errorf("connections: epoll_ctl eventfd: %w", err)
	}
	p.epfd, p.wakefd = epfd, wfd
	p.events = make([]unix.EpollEvent, loopEvents)
	p.pfile = os.NewFile(uintptr(epfd), "epoll")
	if p.prc, err = p.pfile.SyscallConn(); err != nil {
		sys.close(wfd)
		p.pfile.Close()
		return fmt.Errorf("connections: epoll raw conn: %w", err)
	}
	p.pollFn = func(uintptr) bool {
		p.nev, p.perr = p.sys.epollWait(p.epfd, p.events)
		return p.nev > 0 || p.perr != 0
	}
	p.awake.Store(true)
	return nil
}

// sleep marks the loop waiting: from here on, work posted for it writes
// a wake-up. The loop calls it before it looks for queued work and then
// waits, so that work posted in between is never missed.
func (p *poller) sleep() { p.awake.Store(false) }

// wait returns the number of events in p.events, after sleep. With block
// false it only polls; otherwise it parks in the netpoller until there
// are events. A netpoller failure (the descriptor closed under it) is
// EBADF.
func (p *poller) wait(block bool) (int, unix.Errno) {
	var n int
	var errno unix.Errno
	if !block {
		n, errno = p.sys.epollWait(p.epfd, p.events)
	} else {
		// The netpoller's readiness is reset when the wait starts, so
		// pollFn must poll after that, never before, or an event arriving
		// in between would be lost.
		p.nev, p.perr = 0, 0
		if err := p.prc.Read(p.pollFn); err != nil {
			p.perr = unix.EBADF
		}
		n, errno = p.nev, p.perr
	}
	p.awake.Store(true)
	return n, errno
}

// add, mod and del change the interest in fd.
func (p *poller) add(fd int32, events uint32, tag int32) error {
	return p.sys.epollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, events, tag)
}

func (p *poller) mod(fd int32, events uint32, tag int32) error {
	return p.sys.epollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, events, tag)
}

func (p *poller) del(fd int32) error {
	return p.sys.epollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, 0, 0)
}

// needsSignal reports whether a wake-up must be written: the loop waits
// and none is pending. A true answer claims the pending wake-up.
func (p *poller) needsSignal() bool {
	return !p.awake.Load() && p.wakeSet.CompareAndSwap(false, true)
}

// signal writes a wake-up; the eventfd must be open.
func (p *poller) signal() { p.sys.signal(p.wakefd) }

// woken reads the wake-up back; loop goroutine.
func (p *poller) woken() {
	p.sys.drainSignal(p.wakefd)
	p.wakeSet.Store(false)
}

// closeEpoll closes the epoll instance.
func (p *poller) closeEpoll() { p.pfile.Close() }

// closeWake closes the eventfd; signal must not run afterwards.
func (p *poller) closeWake() { p.sys.close(p.wakefd) }
