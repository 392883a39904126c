//go:build linux

package uring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	setupCQSize    = 1 << 3
	setupClamp     = 1 << 4
	setupSubmitAll = 1 << 7

	featSingleMmap = 1 << 0
	enterGetEvents = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	opSend  = 26
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

// sqe is struct io_uring_sqe as a send fills it.
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

// Op is one send: Buf to the socket FD. Send sets Res: the bytes written,
// or a negated errno (-EAGAIN: the socket's buffer is full).
type Op struct {
	FD  int32
	Res int32
	Buf []byte
}

// Ring is one io_uring instance.
type Ring struct {
	fd      int
	sqRing  []byte
	cqRing  []byte
	sqeMem  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqes    []sqe
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []cqe
	entries uint32
}

// New sets up a ring whose batches are at most entries sends (rounded to
// a power of two by the kernel). It fails where io_uring is not allowed
// (kernel.io_uring_disabled, a seccomp filter such as Docker's default):
// the caller then writes with write(2).
func New(entries int) (*Ring, error) {
	p := params{flags: setupClamp | setupSubmitAll | setupCQSize, cqEntries: uint32(2 * entries)}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("uring: io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), entries: p.sqEntries}
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
			r.cqRing = nil
			return fmt.Errorf("uring: mmap cq ring: %w", err)
		}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, prot, flags); err != nil {
		return fmt.Errorf("uring: mmap sqes: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail = u32(r.sqRing, p.sqOff.head), u32(r.sqRing, p.sqOff.tail)
	r.sqMask = *u32(r.sqRing, p.sqOff.ringMask)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail = u32(r.cqRing, p.cqOff.head), u32(r.cqRing, p.cqOff.tail)
	r.cqMask = *u32(r.cqRing, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.cqRing[p.cqOff.cqes])), p.cqEntries)
	// The SQ index array maps slot i to SQE i once and for all.
	array := unsafe.Slice(u32(r.sqRing, p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	return nil
}

// Close unmaps and closes the ring.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqRing != nil && &r.cqRing[0] != &r.sqRing[0] {
		unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		unix.Munmap(r.sqRing)
	}
	r.sqeMem, r.cqRing, r.sqRing = nil, nil, nil
	return unix.Close(r.fd)
}

// Entries is the most sends one io_uring_enter submits.
func (r *Ring) Entries() int { return int(r.entries) }

// Send sends every op's Buf to its FD (MSG_DONTWAIT|MSG_NOSIGNAL: a full
// socket buffer completes with -EAGAIN instead of waiting in the kernel)
// and sets each Res, submitting at most Entries sends per io_uring_enter
// and waiting for their completions before it returns: the kernel reads
// the buffers only while Send runs (Go's collector does not move heap
// objects, and ops keeps them reachable). An error of io_uring_enter
// itself leaves the Res of the ops not sent at 0 and returns it; the
// Ring must not be used after that.
func (r *Ring) Send(ops []Op) error {
	for base := 0; base < len(ops); base += int(r.entries) {
		batch := ops[base:min(base+int(r.entries), len(ops))]
		tail := atomic.LoadUint32(r.sqTail)
		for i := range batch {
			op := &batch[i]
			op.Res = 0
			s := &r.sqes[(tail+uint32(i))&r.sqMask]
			*s = sqe{opcode: opSend, fd: op.FD, len: uint32(len(op.Buf)),
				msgFlags: unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL, userData: uint64(base + i)}
			if len(op.Buf) > 0 {
				s.addr = uint64(uintptr(unsafe.Pointer(&op.Buf[0])))
			}
		}
		atomic.StoreUint32(r.sqTail, tail+uint32(len(batch)))
		want, got := uint32(len(batch)), uint32(0)
		submit := want
		for got < want {
			if atomic.LoadUint32(r.cqTail) == atomic.LoadUint32(r.cqHead) {
				_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(want-got), enterGetEvents, 0, 0)
				switch e {
				case 0:
					submit = 0 // SUBMIT_ALL: the kernel took them all
				case unix.EINTR:
					if atomic.LoadUint32(r.sqHead) == tail+want {
						submit = 0
					}
					continue
				default:
					return fmt.Errorf("uring: io_uring_enter: %w", e)
				}
			}
			head, ctail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
			for ; head != ctail; head++ {
				c := &r.cqes[head&r.cqMask]
				ops[c.userData].Res = c.res
				got++
			}
			atomic.StoreUint32(r.cqHead, head)
		}
	}
	return nil
}
