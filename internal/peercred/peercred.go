// Package peercred admits the peer of a Unix socket by its credentials:
// root, or the effective user of this process. It is the one rule of the
// master's control socket, its admin socket and the orphans' worker
// sockets.
package peercred

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ErrRefused is wrapped by Check's error for a peer of another user.
var ErrRefused = errors.New("peer refused")

// refused is Check's error for a peer of another user: its uid, and its
// pid where the platform tells (0 where not).
func refused(uid uint32, pid int32) error {
	if pid > 0 {
		return fmt.Errorf("%w: uid %d (pid %d)", ErrRefused, uid, pid)
	}
	return fmt.Errorf("%w: uid %d", ErrRefused, uid)
}

// check is Check over the platform's reading of a socket's peer: its uid,
// and its pid where the platform tells (0 where not).
func check(c *net.UnixConn, peer func(fd int) (uid uint32, pid int32, err error)) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var (
		uid  uint32
		pid  int32
		perr error
	)
	if err := rc.Control(func(fd uintptr) { uid, pid, perr = peer(int(fd)) }); err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("peer credentials: %w", perr)
	}
	if uid == 0 || int(uid) == os.Geteuid() {
		return nil
	}
	return refused(uid, pid)
}
