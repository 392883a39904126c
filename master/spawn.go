//go:build unix

package master

import (
	"os"
	"os/exec"
	"syscall"
)

// spawner is how the master makes worker processes and the descriptors
// it hands them: every call of spawnProc that reaches the system goes
// through it. newMaster sets osSpawner; the unit tests (spawn_test.go)
// replace its funcs, so that exec failures, crash loops, back-off and
// the descriptors a worker gets are tested without processes.
type spawner struct {
	// start starts cmd (its Path, Args, Env, ExtraFiles and SysProcAttr
	// set) and returns the process.
	start func(cmd *exec.Cmd) (process, error)
	// socketpair returns a connected pair of close-on-exec Unix stream
	// sockets: the control channel.
	socketpair func() ([2]int, error)
	// dupFile duplicates a socket as a file to pass on.
	dupFile func(c syscall.Conn, name string) (*os.File, error)
}

// process is a started worker process.
type process interface {
	// Pid is its process id.
	Pid() int
	// Wait waits until it has exited and returns how it ended, as
	// os.ProcessState.String says ("exit status 1", "signal: killed";
	// "unknown" when that cannot be told). The wait goroutine owns it.
	Wait() (status string, err error)
	// Kill kills it (SIGKILL); the run loop calls it.
	Kill() error
}

var osSpawner = spawner{start: startOS, socketpair: socketpair, dupFile: dupFile}

func startOS(cmd *exec.Cmd) (process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return osProcess{cmd}, nil
}

type osProcess struct{ cmd *exec.Cmd }

func (p osProcess) Pid() int    { return p.cmd.Process.Pid }
func (p osProcess) Kill() error { return p.cmd.Process.Kill() }
func (p osProcess) Wait() (string, error) {
	err := p.cmd.Wait()
	if ps := p.cmd.ProcessState; ps != nil {
		return ps.String(), err
	}
	return "unknown", err
}
