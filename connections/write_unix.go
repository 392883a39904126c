//go:build unix

package connections

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// tryWrite makes one non-blocking write attempt of b on rc and returns how
// much the kernel took; a full socket buffer is not an error.
func tryWrite(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), b)
			if werr != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return 0, nil
	}
	if n < 0 {
		n = 0
	}
	return n, werr
}
