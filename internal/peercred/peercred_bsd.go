//go:build darwin || freebsd

package peercred

import (
	"net"

	"golang.org/x/sys/unix"
)

// Check returns nil when c's peer runs as root or as this process's
// effective user (LOCAL_PEERCRED: its effective uid when it connected),
// an error wrapping ErrRefused for another user, or the error of reading
// the credentials.
func Check(c *net.UnixConn) error {
	return check(c, func(fd int) (uint32, int32, error) {
		cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if err != nil {
			return 0, 0, err
		}
		return cred.Uid, 0, nil
	})
}
