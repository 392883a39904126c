//go:build unix

// Package master is the supervisor of goes: it owns the listening
// sockets, forks the workers that serve them, replaces a worker that dies
// (same id, backoff, crash-loop limit), answers the CLI on a control
// socket in the run directory and handles the process signals.
//
// The master never accepts. Every worker of a listener inherits a
// duplicate of the same socket, so they all share ONE accept queue (no
// SO_REUSEPORT); the master's own copy stays non-blocking.
//
// All of the master's state is owned by the goroutine that runs Run; the
// other goroutines (one cmd.Wait and one control reader per worker, the
// control socket's accept loop) talk to it over a channel.
package master

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/ipc"
)

// Environment of a worker process.
const (
	// EnvRole is "worker" in a worker process.
	EnvRole = "GOES_ROLE"
	// EnvWorker holds the worker's identity: "id,listener,index,route,generation".
	EnvWorker = "GOES_WORKER"
	// RoleWorker is EnvRole's value in a worker.
	RoleWorker = "worker"

	// CtlFD is the worker's end of its control channel.
	CtlFD = 3
	// SocketFD is the shared listening socket (or datagram socket).
	SocketFD = 4

	tableflipEnv = "TABLEFLIP_HAS_PARENT_7DIU3"
)

// Worker and master states shown in status.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateDraining = "draining"
	StateStopping = "stopping"
	StateBackoff  = "backoff"
	StateFailed   = "failed"
)

// Listener is one listening address and the workers that serve it.
type Listener struct {
	// Name shows in status.
	Name string
	// Network is "tcp", "udp" or "unix" (TLS listens on tcp; the workers
	// wrap the socket).
	Network string
	// Addr is host:port or a socket path.
	Addr string
	// Transport and Protocol show in status ("tls", "http", ...).
	Transport, Protocol string
	// Count is the number of workers (default 1).
	Count int
	// StopTimeout bounds a graceful drain of this listener's workers
	// (default 30 s).
	StopTimeout time.Duration
}

// Identity is what a worker learns about itself from EnvWorker.
type Identity struct {
	ID       int // stable, unique among the master's workers
	Listener int // index in Options.Listeners
	Index    int // 0..Count-1 within the listener
	// Route is this worker process's route: the high 32 bits of its
	// connection ids (connections.Config.IDBase), and its address in a
	// cluster. Every worker start gets a new one from its master's
	// counter, which starts at a random value when a master starts cold,
	// continues across upgrades (the new master starts a reserve further,
	// so the old generation's respawns do not meet it) and is never 0.
	// Routes are unique among the live workers of a master and its
	// upgrades; masters that share a cluster draw them at random starts,
	// so a clash needs two 32-bit ranges of started workers to overlap
	// (cluster.NewNode refuses a route in use).
	Route      uint32
	Generation int // bumped by every reload
}

// ParseIdentity parses EnvWorker's value.
func ParseIdentity(s string) (Identity, error) {
	f := strings.Split(s, ",")
	if len(f) != 5 {
		return Identity{}, fmt.Errorf("master: bad %s %q", EnvWorker, s)
	}
	var n [5]int
	for i, x := range f {
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil || (i != 3 && v > math.MaxInt32) {
			return Identity{}, fmt.Errorf("master: bad %s %q", EnvWorker, s)
		}
		n[i] = int(v)
	}
	return Identity{ID: n[0], Listener: n[1], Index: n[2], Route: uint32(n[3]), Generation: n[4]}, nil
}

func (id Identity) String() string {
	return fmt.Sprintf("%d,%d,%d,%d,%d", id.ID, id.Listener, id.Index, id.Route, id.Generation)
}

// Options configure Run. The zero value of every field but Listeners and
// Paths works.
type Options struct {
	// Listeners to open and serve.
	Listeners []Listener
	// Paths of the run directory.
	Paths Paths
	// Version shows in status.
	Version string
	// Exe is the binary a worker runs (default: the master's own binary,
	// /proc/self/exe where it exists, so a binary replaced on disk does
	// not mix into this master's workers).
	Exe string
	// Args are the workers' arguments, Args[0] included (default os.Args).
	Args []string
	// Env is the workers' base environment (default os.Environ()); the
	// tableflip marker and the GOES_ variables are stripped from it.
	Env []string
	// WorkerEnv, when set, adds variables to one worker's environment.
	WorkerEnv func(Identity) []string
	// Credential, when set, runs the workers as another user.
	Credential *syscall.Credential
	// Stdout and Stderr are the workers' (default os.Stdout, os.Stderr).
	Stdout, Stderr *os.File
	// ReadyTimeout bounds a worker's start (default 30 s).
	ReadyTimeout time.Duration
	// KillTimeout bounds a fast stop before workers are killed (default 5 s).
	KillTimeout time.Duration
	// CrashLoopLimit is the number of quick deaths in a row after which a
	// worker id is given up (default 10).
	CrashLoopLimit int
	// QuickDeath makes a death quick: the worker died before it was ready
	// or within QuickDeath of becoming ready (default 1 s). It is counted
	// from ready, not from the start, so that a slow start (a loaded
	// machine, a long OnWorkerStart) does not hide a crash loop.
	QuickDeath time.Duration
	// Listen and ListenPacket open the sockets (default net.Listen,
	// net.ListenPacket). With Upgrades they are not used: the sockets come
	// from the previous master, or are opened through tableflip.
	Listen       func(network, addr string) (net.Listener, error)
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// OnReady runs once every worker of the first generation accepts,
	// after the pid file is written.
	OnReady func()
	// OnUpgraded runs when a new master (pid) has taken over after an
	// upgrade; this one then drains its workers and Run returns.
	OnUpgraded func(pid int)
	// OnPreviousExited runs in a master started by an upgrade once the
	// previous master has exited (its workers drained).
	OnPreviousExited func()
	// Cluster, when set, describes the cluster in status.
	Cluster func() *ipc.ClusterInfo
	// Reopen reopens the master's log file (SIGUSR1, reopen request); nil
	// when the master has none (foreground: it logs to stderr). The
	// workers are told to reopen theirs either way.
	Reopen func() error
	// Signals, when false, leaves process signals alone (tests running
	// masters inside one process).
	Signals bool
	// Upgrades makes reload replace the whole master with a new process
	// started from the binary now on disk (cloudflare/tableflip): it
	// inherits the sockets, forks its workers and takes over once they
	// accept; then this master drains its workers and exits. Without it,
	// reload is refused. Only one master per process may use it, once
	// (tableflip allows one upgrader per process, ever): masters run
	// inside a test process leave it off.
	Upgrades bool
	// UpgradeTimeout bounds a new master's start (default ReadyTimeout +
	// 10 s); past it the new master is killed and the reload fails.
	UpgradeTimeout time.Duration
	// Logger receives the master's events.
	Logger zerolog.Logger
}

// Run runs a master until it is stopped (signal or CLI). It returns an
// error when it cannot start: another master runs there (ErrRunning), a
// socket cannot be opened or a worker fails to start.
func Run(ctx context.Context, o Options) error {
	m, err := newMaster(o)
	if err != nil {
		return err
	}
	return m.run(ctx)
}
