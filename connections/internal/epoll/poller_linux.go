//go:build linux

package epoll

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Event is one epoll event: Events, Fd and the tag in Pad.
type Event = unix.EpollEvent

// Event tags in Event.Pad.
const (
	TagConn int32 = iota
	TagWake
	TagListener
)

// Event masks, as the engine asks for and reads them.
const (
	In        = unix.EPOLLIN
	RdHup     = unix.EPOLLRDHUP
	Out       = unix.EPOLLOUT
	Err       = unix.EPOLLERR
	Hup       = unix.EPOLLHUP
	Exclusive = unix.EPOLLEXCLUSIVE
)

// MaxEvents is the number of events one wait returns at most.
const MaxEvents = 256

// Poller is one epoll instance and the eventfd that wakes it. It parks in
// the Go netpoller on its epoll descriptor instead of blocking a thread in
// epoll_wait, so an idle loop holds no P. Its loop's goroutine waits and
// reads the events and changes the interest set (other goroutines do that
// under the loop's table lock); NeedsSignal and Signal are what other
// goroutines call to wake it, Signal only while the eventfd is open.
type Poller struct {
	sys    *Sys
	epfd   int
	wakefd int
	pfile  *os.File // epfd, for the netpoller; closing it closes epfd
	prc    syscall.RawConn
	pollFn func(uintptr) bool // made once: a wait allocates nothing
	nev    int
	perr   unix.Errno
	// Events holds what the last Wait returned.
	Events []Event
	// awake is false while the loop waits for events (a wake-up must
	// be written) and true while it works (a wake-up would be wasted).
	awake   atomic.Bool
	wakeSet atomic.Bool // a wake-up is written and not yet read
}

// Open makes p's epoll instance and eventfd, the eventfd registered with
// TagWake.
func (p *Poller) Open(sys *Sys) error {
	p.sys = sys
	epfd, err := sys.EpollCreate()
	if err != nil {
		return fmt.Errorf("connections: epoll_create1: %w", err)
	}
	wfd, err := sys.Eventfd()
	if err != nil {
		sys.Close(epfd)
		return fmt.Errorf("connections: eventfd: %w", err)
	}
	if err := sys.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int32(wfd), unix.EPOLLIN, TagWake); err != nil {
		sys.Close(wfd)
		sys.Close(epfd)
		return fmt.Errorf("connections: epoll_ctl eventfd: %w", err)
	}
	p.epfd, p.wakefd = epfd, wfd
	p.Events = make([]Event, MaxEvents)
	p.pfile = os.NewFile(uintptr(epfd), "epoll")
	if p.prc, err = p.pfile.SyscallConn(); err != nil {
		sys.Close(wfd)
		p.pfile.Close()
		return fmt.Errorf("connections: epoll raw conn: %w", err)
	}
	p.pollFn = func(uintptr) bool {
		p.nev, p.perr = p.sys.EpollWait(p.epfd, p.Events)
		return p.nev > 0 || p.perr != 0
	}
	p.awake.Store(true)
	return nil
}

// Sleep marks the loop waiting: from here on, work posted for it writes
// a wake-up. The loop calls it before it looks for queued work and then
// waits, so that work posted in between is never missed.
func (p *Poller) Sleep() { p.awake.Store(false) }

// Wait returns the number of events in p.Events, after Sleep. With block
// false it only polls; otherwise it parks in the netpoller until there
// are events. A netpoller failure (the descriptor closed under it) is
// EBADF.
func (p *Poller) Wait(block bool) (int, unix.Errno) {
	var n int
	var errno unix.Errno
	if !block {
		n, errno = p.sys.EpollWait(p.epfd, p.Events)
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

// Add, Mod and Del change the interest in fd.
func (p *Poller) Add(fd int32, events uint32, tag int32) error {
	return p.sys.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, events, tag)
}

func (p *Poller) Mod(fd int32, events uint32, tag int32) error {
	return p.sys.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, events, tag)
}

func (p *Poller) Del(fd int32) error {
	return p.sys.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, 0, 0)
}

// NeedsSignal reports whether a wake-up must be written: the loop waits
// and none is pending. A true answer claims the pending wake-up.
func (p *Poller) NeedsSignal() bool {
	return !p.awake.Load() && p.wakeSet.CompareAndSwap(false, true)
}

// Signal writes a wake-up; the eventfd must be open.
func (p *Poller) Signal() { p.sys.Signal(p.wakefd) }

// Woken reads the wake-up back; loop goroutine.
func (p *Poller) Woken() {
	p.sys.DrainSignal(p.wakefd)
	p.wakeSet.Store(false)
}

// CloseEpoll closes the epoll instance.
func (p *Poller) CloseEpoll() { p.pfile.Close() }

// CloseWake closes the eventfd; Signal must not run afterwards.
func (p *Poller) CloseWake() { p.sys.Close(p.wakefd) }
