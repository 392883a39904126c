//go:build unix

package procenv

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// DupFile duplicates the socket of c (close-on-exec) into a new *os.File,
// to pass to a child (ExtraFiles) or to another process (SCM_RIGHTS). It
// goes through SyscallConn().Control so that the socket stays
// non-blocking: File() gives an *os.File whose Fd() (which os/exec calls)
// may switch the shared open file description to blocking mode for every
// process that holds it.
func DupFile(c syscall.Conn, name string) (*os.File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup %s: %w", name, derr)
	}
	return os.NewFile(uintptr(fd), name), nil
}
