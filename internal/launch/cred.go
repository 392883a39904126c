//go:build unix

package launch

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// Credential resolves the user and group the workers run as (nil: the
// master's own).
func Credential(userName, group string) (*syscall.Credential, error) {
	if userName == "" && group == "" {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("goes: user/group %q/%q need the master to run as root", userName, group)
	}
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			return nil, fmt.Errorf("goes: user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("goes: group: %w", err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		cred.Gid = uint32(gid)
	}
	return cred, nil
}
