package procenv

import (
	"fmt"
	"strconv"
)

// MasterEnv is what a master process reads from its own environment at
// start: set by the CLI that daemonized it (Daemon, NotifyFD), or by the
// operator (CloseOnDrain). A master that a reload starts inherits Daemon
// and CloseOnDrain, never NotifyFD (SuccessorEnv.Apply unsets it).
type MasterEnv struct {
	// Daemon: this master runs detached, its stderr is the log file
	// (GOES_DAEMON).
	Daemon bool
	// NotifyFD is the descriptor on which a daemon reports its start
	// (GOES_DAEMON_NOTIFY); 0: none, else at least 3.
	NotifyFD int
	// CloseOnDrain is passed on to the workers (WorkerEnv.CloseOnDrain).
	CloseOnDrain bool
}

// Encode returns e as KEY=VALUE entries; false and zero fields are left
// out, so that the result can be appended to an inherited environment
// without unsetting anything there.
func (e MasterEnv) Encode() []string {
	var env []string
	if e.Daemon {
		env = append(env, keyDaemon+"=1")
	}
	if e.NotifyFD != 0 {
		env = append(env, keyNotify+"="+strconv.Itoa(e.NotifyFD))
	}
	if e.CloseOnDrain {
		env = append(env, keyCloseOnDrain+"=1")
	}
	return env
}

// DecodeMasterEnv reads a master's environment.
func DecodeMasterEnv(getenv func(string) string) (MasterEnv, error) {
	var e MasterEnv
	var err error
	if e.Daemon, err = parseBool(getenv, keyDaemon); err != nil {
		return MasterEnv{}, err
	}
	if e.CloseOnDrain, err = parseBool(getenv, keyCloseOnDrain); err != nil {
		return MasterEnv{}, err
	}
	if v := getenv(keyNotify); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return MasterEnv{}, malformed(keyNotify, v, fmt.Sprintf("a descriptor number from 3 (%d when Daemonize sets it)", DaemonNotifyFD))
		}
		e.NotifyFD = fd
	}
	return e, nil
}
