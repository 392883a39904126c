//go:build linux

package epoll

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/internal/uring"
)

// Sys are the system calls of the epoll engine: every one it makes goes
// through these, so that a test can fault a single call (accept running
// out of descriptors, a read reset by the peer, a write the kernel does
// not take) that a real socket cannot be made to fail on cue. Each
// engine holds its own copy, made by Live and set before its first
// Serve; nothing swaps it afterwards, so the loops read it without locks.
//
// The signatures pass no pointer to the caller's stack (a call through a
// func value makes every such pointer escape): events, addresses and the
// eventfd's counter are passed or returned by value, and the byte slices
// are buffers that live on the heap anyway. A call costs one indirect
// call and no allocation.
type Sys struct {
	// EpollCreate returns a new close-on-exec, non-blocking epoll
	// instance.
	EpollCreate func() (int, error)
	// Eventfd returns a new non-blocking, close-on-exec eventfd.
	Eventfd func() (int, error)
	// EpollCtl is epoll_ctl for fd with an Event made of events, fd and
	// tag (its Pad).
	EpollCtl func(epfd, op int, fd int32, events uint32, tag int32) error
	// EpollWait polls epfd without blocking; EAGAIN is no events.
	EpollWait func(epfd int, events []Event) (int, unix.Errno)
	// Accept takes a connection from the listening socket fd, non-blocking
	// and close-on-exec, and returns it with the peer's address.
	Accept func(fd int) (int32, unix.RawSockaddrAny, unix.Errno)
	// Read and Write are read(2) and write(2); 0 is no error.
	Read  func(fd int32, p []byte) (int, unix.Errno)
	Write func(fd int32, p []byte) (int, unix.Errno)
	// NoDelay sets TCP_NODELAY on an accepted TCP socket.
	NoDelay func(fd int32) error
	// Shutdown is shutdown(2).
	Shutdown func(fd int32, how int) error
	// Close is close(2).
	Close func(fd int) error
	// Signal adds one to the eventfd's counter; DrainSignal reads it
	// back to zero.
	Signal      func(fd int)
	DrainSignal func(fd int)
	// NewRing sets up a loop's io_uring for batches of entries sends;
	// nil: none (write(2) only).
	NewRing func(entries int) (*uring.Ring, error)
}

// Live returns the real system calls.
func Live() Sys {
	return Sys{
		EpollCreate: liveEpollCreate,
		Eventfd:     liveEventfd,
		EpollCtl:    liveEpollCtl,
		EpollWait:   liveEpollWait,
		Accept:      liveAccept,
		Read:        liveRead,
		Write:       liveWrite,
		NoDelay:     liveNoDelay,
		Shutdown:    func(fd int32, how int) error { return unix.Shutdown(int(fd), how) },
		Close:       unix.Close,
		Signal:      liveSignal,
		DrainSignal: liveDrainSignal,
		NewRing:     uring.New,
	}
}
func liveEpollCreate() (int, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func liveEventfd() (int, error) { return unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC) }

func liveEpollCtl(epfd, op int, fd int32, events uint32, tag int32) error {
	if op == unix.EPOLL_CTL_DEL {
		return unix.EpollCtl(epfd, op, int(fd), nil)
	}
	ev := unix.EpollEvent{Events: events, Fd: fd, Pad: tag}
	return unix.EpollCtl(epfd, op, int(fd), &ev)
}

// liveEpollWait polls the epoll set without blocking. epoll_pwait with a
// nil signal mask is epoll_wait, and exists on every Linux architecture
// (arm64 has no epoll_wait).
func liveEpollWait(epfd int, events []Event) (int, unix.Errno) {
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

func liveAccept(fd int) (int32, unix.RawSockaddrAny, unix.Errno) {
	var rsa unix.RawSockaddrAny
	alen := uint32(unix.SizeofSockaddrAny)
	r, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)),
		uintptr(unsafe.Pointer(&alen)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, rsa, errno
	}
	return int32(r), rsa, 0
}

func liveRead(fd int32, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func liveWrite(fd int32, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func liveNoDelay(fd int32) error {
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

func liveSignal(fd int) {
	one := [8]byte{1}
	unix.Write(fd, one[:])
}

func liveDrainSignal(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}
