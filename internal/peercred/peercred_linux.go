//go:build linux

package peercred

import (
	"net"

	"golang.org/x/sys/unix"
)

// Check returns nil when c's peer runs as root or as this process's
// effective user (SO_PEERCRED: its credentials when it connected), an
// error wrapping ErrRefused for another user, or the error of reading
// the credentials.
func Check(c *net.UnixConn) error {
	return check(c, func(fd int) (uint32, int32, error) {
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			return 0, 0, err
		}
		return cred.Uid, cred.Pid, nil
	})
}
