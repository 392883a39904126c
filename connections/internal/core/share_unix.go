//go:build unix

package core

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// NewAcceptShare makes a share of n slots (at least 1) in memory that
// the processes started with its File inherit: a memfd on Linux, an
// unlinked temporary file elsewhere. The caller closes it.
func NewAcceptShare(n int) (*AcceptShare, error) {
	if n < 1 {
		n = 1
	}
	f, err := newShareFile()
	if err != nil {
		return nil, fmt.Errorf("connections: accept share: %w", err)
	}
	if err := f.Truncate(int64(n * shareSlotSize)); err != nil {
		f.Close()
		return nil, fmt.Errorf("connections: accept share: %w", err)
	}
	a, err := mapShare(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// OpenAcceptShare maps the share whose descriptor f a process inherited
// (the File of a NewAcceptShare). It takes f over: the share closes it.
func OpenAcceptShare(f *os.File) (*AcceptShare, error) {
	a, err := mapShare(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func mapShare(f *os.File) (*AcceptShare, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("connections: accept share: %w", err)
	}
	size := int(fi.Size())
	if size == 0 || size%shareSlotSize != 0 {
		return nil, errBadShare
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("connections: accept share: mmap: %w", err)
	}
	slots, err := viewSlots(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return &AcceptShare{f: f, mem: mem, slots: slots}, nil
}

// File is the share's descriptor, to pass to a process (exec.Cmd's
// ExtraFiles); it stays a's.
func (a *AcceptShare) File() *os.File { return a.f.(*os.File) }

// Close unmaps the share and closes its descriptor. Nothing may use a
// afterwards; the other processes' mappings stay.
func (a *AcceptShare) Close() error {
	err := unix.Munmap(a.mem)
	a.f.Close()
	a.mem, a.slots = nil, nil
	return err
}
