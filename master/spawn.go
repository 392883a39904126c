//go:build unix

package master

import (
	"os"
	"os/exec"
	"strconv"
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
// runtime costs when idle (threads, wake-ups, heap headroom) is paid once
// per worker. Unless the master's environment sets them (then the workers
// get the value set), the master gives every worker:
//
//   - GOMAXPROCS: the master's GOMAXPROCS (the CPUs it may use) divided
//     among the workers, rounded up, at least 1: the workers share the
//     cores instead of each scheduling on all of them. It sets the epoll
//     engine's loops per worker too (connections.Config.Loops, default
//     GOMAXPROCS). Set, it also stops the runtime's once-a-second check of
//     the CPU limit (Go 1.25's updatemaxprocs).
//   - GOGC: DefaultWorkerGOGC.
const (
	// DefaultWorkerGOGC is the workers' GOGC unless the environment sets
	// one: the heap may grow to (1 + GOGC/100) times what is live before a
	// collection. The live heap of a push server is mostly its idle
	// connections; the default of the runtime (100) doubles it.
	DefaultWorkerGOGC = 50
)

// workerRuntimeEnv returns env with the workers' runtime defaults
// (GOMAXPROCS for workers processes sharing cpus, GOGC) added where env
// does not set them.
func workerRuntimeEnv(env []string, workers, cpus int) []string {
	set := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	out := append([]string(nil), env...)
	if !set("GOMAXPROCS") {
		out = append(out, "GOMAXPROCS="+strconv.Itoa(max(1, (cpus+workers-1)/max(workers, 1))))
	}
	if !set("GOGC") {
		out = append(out, "GOGC="+strconv.Itoa(DefaultWorkerGOGC))
	}
	return out
}
