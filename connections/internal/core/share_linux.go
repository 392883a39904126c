//go:build linux

package core

import (
	"os"

	"golang.org/x/sys/unix"
)

// newShareFile returns an anonymous memory file, close-on-exec.
func newShareFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("goes-accept-share", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "goes-accept-share"), nil
}
