//go:build linux

package orphan

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// checkPeer admits root, this process's user, and allow's (the same rule
// as the master's control socket, master/creds_linux.go).
func checkPeer(c *net.UnixConn, allow func(uint32) bool) error {
	cred, err := ucred(c)
	if err != nil {
		return err
	}
	if cred.Uid == 0 || int(cred.Uid) == os.Geteuid() || allow != nil && allow(cred.Uid) {
		return nil
	}
	return fmt.Errorf("%w: uid %d (pid %d)", ErrPeer, cred.Uid, cred.Pid)
}

func peerPID(c *net.UnixConn) int {
	if cred, err := ucred(c); err == nil {
		return int(cred.Pid)
	}
	return 0
}

func ucred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, fmt.Errorf("orphan: peer credentials: %w", cerr)
	}
	return cred, nil
}
