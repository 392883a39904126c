// Package uring is the least io_uring send path the fan-out benchmark's
// floor-uring server needs: one ring (io_uring_setup and mmap, raw system
// calls through golang.org/x/sys/unix), and SendAll, which queues one
// IORING_OP_SEND of one shared buffer per descriptor, submits each batch of
// up to the ring's size with one io_uring_enter that also waits for the
// batch's completions, and reports the sends that did not write the whole
// buffer (EAGAIN, a short write, a gone receiver) for the caller to finish
// as the floor does.
//
// Concurrency: a Ring is used by one goroutine. A ring set up with
// SINGLE_ISSUER (the "defer" and "single" modes) must be created and used
// on one OS thread: call New and SendAll from a goroutine that holds
// runtime.LockOSThread.
package uring

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	setupSQPoll       = 1 << 1
	setupCQSize       = 1 << 3
	setupClamp        = 1 << 4
	setupSubmitAll    = 1 << 7
	setupCoopTaskrun  = 1 << 8
	setupTaskrunFlag  = 1 << 9
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13

	featSingleMmap = 1 << 0

	enterGetEvents = 1 << 0
	enterSQWakeup  = 1 << 1

	sqNeedWakeup = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	opSend = 26

	sqeFixedFile = 1 << 0

	registerFiles   = 2
	unregisterFiles = 3

	sqeSize = 64
	cqeSize = 16
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// sqe is struct io_uring_sqe as the send operation fills it.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	msgFlags    uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   int32
	addr3       uint64
	pad         uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Options choose the ring's set-up.
type Options struct {
	Mode    string        // the mode string Options were parsed from
	Entries uint32        // submission queue entries: the batch size
	Flags   uint32        // IORING_SETUP_* flags
	SQIdle  time.Duration // SQPOLL: how long the kernel thread polls before it sleeps
	Fixed   bool          // register the descriptors (IOSQE_FIXED_FILE)
}

// ParseMode parses a mode: "+"-separated words, any order —
//
//	plain        no set-up flags
//	coop         IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG
//	single       IORING_SETUP_SINGLE_ISSUER
//	defer        IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN
//	sqpoll       IORING_SETUP_SQPOLL (a kernel thread submits), idle 1 ms
//	sqpollN      the same, idle N ms
//	fixed        descriptors registered with the ring
//	qN           N submission queue entries (default 4096)
//
// The empty mode is "defer".
func ParseMode(mode string) (Options, error) {
	if mode == "" {
		mode = "defer"
	}
	o := Options{Mode: mode, Entries: 4096}
	for _, w := range strings.Split(mode, "+") {
		switch {
		case w == "plain":
		case w == "coop":
			o.Flags |= setupCoopTaskrun | setupTaskrunFlag
		case w == "single":
			o.Flags |= setupSingleIssuer
		case w == "defer":
			o.Flags |= setupSingleIssuer | setupDeferTaskrun
		case strings.HasPrefix(w, "sqpoll"):
			o.Flags |= setupSQPoll
			o.SQIdle = time.Millisecond
			if n := strings.TrimPrefix(w, "sqpoll"); n != "" {
				ms, err := strconv.Atoi(n)
				if err != nil || ms < 0 {
					return o, fmt.Errorf("uring: mode %q: bad sqpoll idle %q", mode, n)
				}
				o.SQIdle = time.Duration(ms) * time.Millisecond
			}
		case w == "fixed":
			o.Fixed = true
		case strings.HasPrefix(w, "q"):
			n, err := strconv.Atoi(w[1:])
			if err != nil || n < 1 || n > 32768 {
				return o, fmt.Errorf("uring: mode %q: bad queue size %q", mode, w)
			}
			o.Entries = uint32(n)
		default:
			return o, fmt.Errorf("uring: mode %q: unknown word %q", mode, w)
		}
	}
	if o.Flags&setupSQPoll != 0 && o.Flags&setupDeferTaskrun != 0 {
		return o, fmt.Errorf("uring: mode %q: sqpoll and defer do not combine", mode)
	}
	return o, nil
}

// Ring is one io_uring instance. See the package comment for its
// concurrency rules.
type Ring struct {
	o       Options
	fd      int
	sqRing  []byte
	cqRing  []byte
	sqeMem  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqFlags *uint32
	sqMask  uint32
	sqArray []uint32
	sqes    []sqe
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []cqe
	entries uint32

	files []int // registered descriptors, in order (Options.Fixed)

	// Enters counts io_uring_enter calls; Sends the SQEs submitted.
	Enters, Sends int64
}

// Short is a send that did not write the whole buffer: Sent bytes went
// (0 for an error), Err is the error (nil for a short write).
type Short struct {
	FD   int
	Sent int
	Err  error
}

// New sets up a ring.
func New(o Options) (*Ring, error) {
	p := params{flags: o.Flags | setupClamp | setupSubmitAll | setupCQSize, cqEntries: 2 * o.Entries}
	if o.Flags&setupSQPoll != 0 {
		p.sqThreadIdle = uint32(o.SQIdle / time.Millisecond)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(o.Entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("uring: io_uring_setup (mode %s): %w", o.Mode, errno)
	}
	r := &Ring{o: o, fd: int(fd), entries: p.sqEntries}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *params) error {
	sqLen := int(p.sqOff.array + p.sqEntries*4)
	cqLen := int(p.cqOff.cqes + p.cqEntries*cqeSize)
	single := p.features&featSingleMmap != 0
	if single {
		sqLen = max(sqLen, cqLen)
	}
	var err error
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	if r.sqRing, err = unix.Mmap(r.fd, offSQRing, sqLen, prot, flags); err != nil {
		return fmt.Errorf("uring: mmap sq ring: %w", err)
	}
	r.cqRing = r.sqRing
	if !single {
		if r.cqRing, err = unix.Mmap(r.fd, offCQRing, cqLen, prot, flags); err != nil {
			return fmt.Errorf("uring: mmap cq ring: %w", err)
		}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, prot, flags); err != nil {
		return fmt.Errorf("uring: mmap sqes: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqFlags = u32(r.sqRing, p.sqOff.head), u32(r.sqRing, p.sqOff.tail), u32(r.sqRing, p.sqOff.flags)
	r.sqMask = *u32(r.sqRing, p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(r.sqRing, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail = u32(r.cqRing, p.cqOff.head), u32(r.cqRing, p.cqOff.tail)
	r.cqMask = *u32(r.cqRing, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.cqRing[p.cqOff.cqes])), p.cqEntries)
	// The SQ index array maps slot i to SQE i once and for all.
	for i := range r.sqArray {
		r.sqArray[i] = uint32(i)
	}
	return nil
}

// Close unmaps and closes the ring.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqRing != nil && len(r.sqRing) > 0 && &r.cqRing[0] != &r.sqRing[0] {
		unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		unix.Munmap(r.sqRing)
	}
	r.sqeMem, r.cqRing, r.sqRing = nil, nil, nil
	return unix.Close(r.fd)
}

// Entries is the submission queue's size: the most sends one
// io_uring_enter submits.
func (r *Ring) Entries() int { return int(r.entries) }

// register makes fds the ring's registered files (Options.Fixed), unless
// they already are.
func (r *Ring) register(fds []int) error {
	if len(r.files) == len(fds) && (len(fds) == 0 || &r.files[0] == &fds[0]) {
		return nil
	}
	if r.files != nil {
		if _, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), unregisterFiles, 0, 0, 0, 0); e != 0 {
			return fmt.Errorf("uring: unregister files: %w", e)
		}
		r.files = nil
	}
	if len(fds) == 0 {
		return nil
	}
	tab := make([]int32, len(fds))
	for i, fd := range fds {
		tab[i] = int32(fd)
	}
	if _, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerFiles, uintptr(unsafe.Pointer(&tab[0])), uintptr(len(tab)), 0, 0); e != 0 {
		return fmt.Errorf("uring: register %d files: %w", len(fds), e)
	}
	r.files = fds
	return nil
}

func (r *Ring) enter(submit, wait uint32, flags uint32) (int, error) {
	for {
		r.Enters++
		n, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait), uintptr(flags), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return int(n), e
		}
		return int(n), nil
	}
}

// SendAll sends buf to every descriptor of fds, one IORING_OP_SEND each
// (MSG_DONTWAIT | MSG_NOSIGNAL: a full socket buffer completes with EAGAIN
// rather than waiting in the kernel), and returns, appended to short, the
// sends that did not write all of buf. buf and fds must not change until
// SendAll returns. With Options.Fixed the descriptors are registered at the
// first call and again only when the length or backing array of fds
// changes: a registered descriptor must not be closed and reused.
func (r *Ring) SendAll(fds []int, buf []byte, short []Short) ([]Short, error) {
	if len(buf) == 0 || len(fds) == 0 {
		return short, nil
	}
	if r.o.Fixed {
		if err := r.register(fds); err != nil {
			return short, err
		}
	}
	// The kernel reads buf while SendAll runs: pinned, it stays put.
	var pin runtime.Pinner
	pin.Pin(&buf[0])
	defer pin.Unpin()
	addr := uint64(uintptr(unsafe.Pointer(&buf[0])))
	sqpoll := r.o.Flags&setupSQPoll != 0
	for base := 0; base < len(fds); base += int(r.entries) {
		batch := fds[base:min(base+int(r.entries), len(fds))]
		tail := atomic.LoadUint32(r.sqTail)
		for i, fd := range batch {
			s := &r.sqes[(tail+uint32(i))&r.sqMask]
			*s = sqe{opcode: opSend, fd: int32(fd), addr: addr, len: uint32(len(buf)),
				msgFlags: unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL, userData: uint64(base + i)}
			if r.o.Fixed {
				s.fd, s.flags = int32(base+i), sqeFixedFile
			}
		}
		atomic.StoreUint32(r.sqTail, tail+uint32(len(batch)))
		r.Sends += int64(len(batch))
		want := uint32(len(batch))
		if sqpoll {
			if atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
				if _, err := r.enter(0, 0, enterSQWakeup); err != nil {
					return short, fmt.Errorf("uring: io_uring_enter (wake-up): %w", err)
				}
			}
		}
		got := uint32(0)
		for got < want {
			if atomic.LoadUint32(r.cqTail) == atomic.LoadUint32(r.cqHead) {
				submit := uint32(0)
				if !sqpoll {
					submit = want // the kernel takes them all at the first call
					if got > 0 || atomic.LoadUint32(r.sqHead) == tail+want {
						submit = 0
					}
				}
				if _, err := r.enter(submit, want-got, enterGetEvents); err != nil {
					return short, fmt.Errorf("uring: io_uring_enter: %w", err)
				}
			}
			head, ctail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
			for ; head != ctail; head++ {
				c := r.cqes[head&r.cqMask]
				got++
				if int(c.res) == len(buf) {
					continue
				}
				s := Short{FD: fds[c.userData]}
				if c.res >= 0 {
					s.Sent = int(c.res)
				} else {
					s.Err = unix.Errno(-c.res)
				}
				short = append(short, s)
			}
			atomic.StoreUint32(r.cqHead, head)
		}
	}
	return short, nil
}
