//go:build unix

package master

import (
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/goes-project/goes/internal/procenv"
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

var osSpawner = spawner{start: startOS, socketpair: socketpair, dupFile: procenv.DupFile}

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

// Worker runtime defaults. Every worker is a Go runtime of its own, and a
// master may run many of them on few cores (a million connections at the
// open-file limit of 20,000 per process: 53 workers on 2 cores); what a
// runtime costs when idle (threads, wake-ups) is paid once per worker.
// When the workers outnumber the CPUs the master may use (its GOMAXPROCS),
// it gives every worker GOMAXPROCS=1, unless its environment sets
// GOMAXPROCS (then the workers get the value set): each worker schedules
// on one core instead of all of them, with fewer threads and wake-ups,
// one event loop (connections.Config.Loops defaults to GOMAXPROCS), and
// without the runtime's once-a-second check of the CPU limit (Go 1.25's
// updatemaxprocs, off when GOMAXPROCS is set). With no more workers than
// CPUs the runtime's default stands, as before. See bench/README.md, "The
// cost of a worker process", for what was measured (GOGC among it: no
// change is made there).

// workerRuntimeEnv returns env with the workers' runtime defaults added:
// GOMAXPROCS=1 when workers processes share fewer cpus and env does not
// set GOMAXPROCS.
func workerRuntimeEnv(env []string, workers, cpus int) []string {
	if workers <= cpus {
		return env
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "GOMAXPROCS=1")
}
