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
	"net"
	"os"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

// DefaultTicketKeyRotation is Options.TicketKeyRotation's default.
const DefaultTicketKeyRotation = time.Hour

// Worker and master states shown in status.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateDraining = "draining"
	StateStopping = "stopping"
	StateBackoff  = "backoff"
	StateFailed   = "failed"
	// StateUnresponsive: the worker has not answered its master for the
	// unresponsive timeout (Options.UnresponsiveTimeout); status shows its
	// last known figures.
	StateUnresponsive = "unresponsive"
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

// Identity is a worker's place among its master's workers, which it
// learns from its environment (procenv.WorkerEnv).
type Identity = procenv.Identity

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
	// Args are the master's arguments, Args[0] included (default
	// os.Args). A worker gets Args[1:] after its process title, which
	// names the program by Args[0]'s base name (see workerArgs).
	Args []string
	// Env is the workers' base environment (default os.Environ()); the
	// variables of goes and of tableflip are stripped from it
	// (procenv.WorkerEnv.Environ).
	Env []string
	// Worker is what every worker is told through its environment; the
	// master fills in Worker.Identity for each one.
	Worker procenv.WorkerEnv
	// WorkerEnv, when set, adds variables to one worker's environment,
	// after Env and Worker.
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
	// net.ListenPacket). With an Upgrader they are not used: the sockets
	// come from the previous master, or are opened through tableflip.
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
	// Upgrader, when set, makes reload replace the whole master with a
	// new process started from the binary now on disk
	// (cloudflare/tableflip): it inherits the sockets, forks its workers
	// and takes over once they accept; then this master drains its
	// workers and exits. A master started that way takes its sockets, its
	// run directory's lock and what its predecessor handed on
	// (Upgrader.Inherited) from it. Without an Upgrader, reload is
	// refused: masters run inside a test process go without (one
	// upgrader per process, ever). Run stops the Upgrader when it returns.
	Upgrader *Upgrader
	// ClusterRoute, when set, is handed to the master that a reload
	// starts (procenv.SuccessorEnv.ClusterRoute): the route URL of the
	// embedded NATS server that the new one joins.
	ClusterRoute string
	// UpgradeTimeout bounds a new master's start (default ReadyTimeout +
	// 10 s); past it the new master is killed and the reload fails. It is
	// read by NewUpgrader, not by Run.
	UpgradeTimeout time.Duration
	// Logger receives the master's events.
	Logger zerolog.Logger
	// Admin, when set, is the host:port of the admin HTTP endpoint
	// (Prometheus /metrics, /healthz, /readyz, /debug/pprof of the master
	// and of every worker; see admin.go), or "unix:///PATH" for an
	// owner-only Unix socket. Without AdminToken it has no
	// authentication: keep it on loopback or on an address only
	// operators reach. A reload hands its socket to the new master.
	Admin string
	// AdminMaxConnections caps the connections the admin endpoint holds
	// at once (default DefaultAdminMaxConnections, 64; negative: no cap).
	// One more is closed at once, so that a flood of connections cannot
	// take the master's descriptors.
	AdminMaxConnections int
	// AdminToken, when set, is the bearer token every admin request but
	// /healthz and /readyz must carry (Authorization: Bearer TOKEN);
	// others get 401. The goes package reads it from the config's
	// admin_token_file at every start, so a reload reads it again.
	AdminToken string

	// Operations: watchdog, reload hand-off, output.

	// WatchdogInterval is how often the master asks every ready worker
	// for its figures over its control channel (default 1 s): an answer
	// proves the worker alive, and status shows the last one when the
	// worker does not answer at once.
	WatchdogInterval time.Duration
	// UnresponsiveTimeout: a ready worker that has not answered for this
	// long is shown as unresponsive, with its last figures and how long
	// it has been silent; that is logged once and counted (default 5 s).
	UnresponsiveTimeout time.Duration
	// KillUnresponsive: a worker silent this long (at least
	// UnresponsiveTimeout) is killed and replaced under the same id
	// (default 30 s; negative: never). During a stop too (a hung worker
	// cannot drain; the drain of reload -g has no other bound), without a
	// respawn then.
	KillUnresponsive time.Duration
	// ConfigFile is the config file this generation runs (an absolute
	// path; empty: the program's default). A reload hands it to the new
	// master unless the reload names another (ipc.ReloadRequest.Config).
	ConfigFile string
	// WrapOutput gives every worker a pipe as stdout and stderr instead of
	// Stdout and Stderr; the master copies what the workers write to
	// Stderr, JSON lines as they are and any other line as a JSON entry
	// of Logger ("worker output"), so that a log file stays JSON lines
	// even with a panic's trace in it. The workers learn it from
	// procenv.WorkerEnv.LogPipe.
	WrapOutput bool
	// OrphanTimeout: when the master dies, its workers serve on, as
	// orphans, for this long (default DefaultOrphanTimeout, 10 min;
	// negative: they drain at once, as before). The next master started
	// in the run directory within that time takes their listening sockets
	// and tells them to drain once its own workers accept (orphans.go).
	// A master adopts orphans whatever its own OrphanTimeout.
	OrphanTimeout time.Duration
	// TicketKeyRotation is how often the master draws a new TLS session
	// ticket key for its workers (default DefaultTicketKeyRotation, 1 h).
	// The master holds one key set (internal/ticketkeys: the newest key
	// encrypts, the ticketkeys.Keep newest decrypt), hands it to every
	// worker it starts on a pipe, pushes each rotation over the control
	// channels, and hands it to the next master on reload: a TLS client
	// resumes whichever worker accepts it, and across reloads.
	TicketKeyRotation time.Duration
}

// Run runs a master until it is stopped (signal or CLI). It returns an
// error when it cannot start: another master runs there (ErrRunning), a
// socket cannot be opened or a worker fails to start.
func Run(ctx context.Context, o Options) error {
	defer o.Upgrader.Stop()
	m, err := newMaster(o)
	if err != nil {
		return err
	}
	return m.run(ctx)
}
