// Package peercred admits the peer of a Unix socket by its credentials:
// root, or the effective user of this process. It is the one rule of the
// master's control socket, its admin socket and the orphans' worker
// sockets.
package peercred

import (
	"errors"
	"fmt"
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
