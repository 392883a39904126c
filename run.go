package goes

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
	"github.com/goes-project/goes/protocols/websocket"
	"github.com/goes-project/goes/timer"
	"github.com/goes-project/goes/worker"
)

// Runner runs a goes program: the command-line verbs (start, stop,
// restart, reload, status, connections), the master and, in the processes
// the master forks, the workers. RunAll and Run are shorthands for the
// common case; goes-master uses a Runner to build its listeners from a
// config file.
type Runner struct {
	// Name is the program's name in usage and in the default run
	// directory (default: the base name of args[0]).
	Name string
	// Version is shown by --version and status (default: the first
	// non-empty Goer.Version, else "dev").
	Version string
	// Goers are the listeners of a library program.
	Goers []*Goer
	// Build, when set, makes the Goers from the config instead (it is
	// called in the master and again, with the same config, in every
	// worker).
	Build func(cfg *Config) ([]*Goer, error)
	// DefaultConfig is the JSON config used when no --config is given.
	DefaultConfig []byte
	// Stdout and Stderr receive the CLI's output (default os.Stdout,
	// os.Stderr).
	Stdout, Stderr io.Writer
}

// Environment passed by the master to its workers.
const (
	envConfigJSON = "GOES_CONFIG_JSON"
	envLogConsole = "GOES_LOG_CONSOLE"
	envLogFile    = "GOES_LOG_FILE"
	// envClusterURL is the NATS the workers' cluster Nodes connect to.
	envClusterURL = "GOES_CLUSTER_URL"
	// envClusterRoute is the route URL of a master's embedded NATS
	// server, for the master that an upgrade starts: its server routes
	// to it while both generations run.
	envClusterRoute = "GOES_CLUSTER_ROUTE"
	// envCloseOnDrain (set to 1 for the master) makes draining workers
	// close their connections at once: unsafe, the negative control of the
	// reload tests.
	envCloseOnDrain = "GOES_UNSAFE_CLOSE_ON_DRAIN"
)

// ErrAlreadyRunning is returned by start when a master already serves
// from the run directory.
var ErrAlreadyRunning = errors.New("goes: already running")

// ErrNotRunning is returned by the verbs that need a running master.
var ErrNotRunning = errors.New("goes: not running")

// Run runs the verb in args (os.Args-like: args[0] is the program) for
// goers, and returns when the verb is done: for start in the foreground,
// when the master has stopped. In a worker process (forked by the
// master) it serves that worker's Goer instead.
func Run(args []string, goers ...*Goer) error {
	r := &Runner{Goers: goers}
	return r.Run(args)
}

// RunAll runs the command line of the process (os.Args) for goers and
// exits: 0 when the verb succeeded, 1 with the error on stderr when not.
// A program can serve several listeners: goes.RunAll(web, admin, udp).
func RunAll(goers ...*Goer) {
	if err := Run(os.Args, goers...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunAll runs the command line of the process for this one Goer and exits
// (see the package-level RunAll).
func (g *Goer) RunAll() { RunAll(g) }

// Run runs the verb in args; see the package-level Run.
func (r *Runner) Run(args []string) error {
	if len(args) == 0 {
		args = []string{"goes"}
	}
	if r.Name == "" {
		r.Name = strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0]))
	}
	if r.Version == "" {
		for _, g := range r.Goers {
			if g.Version != "" {
				r.Version = g.Version
				break
			}
		}
		if r.Version == "" {
			r.Version = "dev"
		}
	}
	if r.Stdout == nil {
		r.Stdout = os.Stdout
	}
	if r.Stderr == nil {
		r.Stderr = os.Stderr
	}
	if os.Getenv(master.EnvRole) == master.RoleWorker {
		return r.runWorker()
	}
	return r.app().Run(args)
}

// goers returns the program's Goers for cfg.
func (r *Runner) goers(cfg *Config) ([]*Goer, error) {
	if r.Build != nil {
		gs, err := r.Build(cfg)
		if err != nil {
			return nil, err
		}
		if len(gs) == 0 {
			return nil, errors.New("goes: the config has no listeners")
		}
		return gs, nil
	}
	if len(r.Goers) == 0 {
		return nil, errors.New("goes: no Goer to run")
	}
	if len(cfg.Listeners) > len(r.Goers) {
		return nil, fmt.Errorf("goes: config has %d listeners, the program %d", len(cfg.Listeners), len(r.Goers))
	}
	for i, lc := range cfg.Listeners {
		if err := r.Goers[i].apply(lc); err != nil {
			return nil, err
		}
	}
	return r.Goers, nil
}

// apply overrides g's settings with those lc sets.
func (g *Goer) apply(lc ListenerConfig) error {
	if lc.Listen != "" {
		n := NewGoer(lc.Listen, g.Protocol, "")
		if n.err != nil {
			return n.err
		}
		g.Addr, g.Transport = n.Addr, n.Transport
		if g.Protocol == nil {
			g.Protocol = n.Protocol
		}
	}
	if lc.Name != "" {
		g.Name = lc.Name
	}
	if lc.Count > 0 {
		g.Count = lc.Count
	}
	if lc.StopTimeout > 0 {
		g.StopTimeout = time.Duration(lc.StopTimeout)
	}
	if lc.CertFile != "" {
		g.CertFile = lc.CertFile
	}
	if lc.KeyFile != "" {
		g.KeyFile = lc.KeyFile
	}
	if lc.MaxPackageSize > 0 {
		g.MaxPackageSize = lc.MaxPackageSize
	}
	if lc.MaxSendBufferSize > 0 {
		g.MaxSendBufferSize = lc.MaxSendBufferSize
	}
	if lc.IdleTimeout > 0 {
		g.IdleTimeout = time.Duration(lc.IdleTimeout)
	}
	return nil
}

// defaultRunDir is $XDG_RUNTIME_DIR/goes/NAME or /tmp/goes-UID/NAME.
func defaultRunDir(name string) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "goes", name)
	}
	return filepath.Join(os.TempDir(), "goes-"+strconv.Itoa(os.Geteuid()), name)
}

// network is the socket family a transport listens on.
func network(transport string) string {
	switch transport {
	case TransportUDP:
		return "udp"
	case TransportUnix:
		return "unix"
	}
	return "tcp"
}

func protocolName(g *Goer) string {
	if g.Protocol == nil {
		return "raw"
	}
	return g.Protocol.Name()
}

// credential resolves the config's user and group.
func credential(cfg *Config) (*syscall.Credential, error) {
	if cfg.User == "" && cfg.Group == "" {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("goes: user/group %q/%q need the master to run as root", cfg.User, cfg.Group)
	}
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if cfg.User != "" {
		u, err := user.Lookup(cfg.User)
		if err != nil {
			return nil, fmt.Errorf("goes: user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if cfg.Group != "" {
		g, err := user.LookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("goes: group: %w", err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		cred.Gid = uint32(gid)
	}
	return cred, nil
}

// runMaster runs the master in this process until it stops.
func (r *Runner) runMaster(cfg *Config, paths master.Paths, daemon bool, notifier *master.Notifier) error {
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	stopTimeout := 30 * time.Second
	if cfg.StopTimeout > 0 {
		stopTimeout = time.Duration(cfg.StopTimeout)
	}
	listeners := make([]master.Listener, 0, len(goers))
	for _, g := range goers {
		if err := g.validate(); err != nil {
			return err
		}
		count := g.Count
		if count <= 0 {
			count = runtime.NumCPU()
		}
		st := g.StopTimeout
		if st <= 0 {
			st = stopTimeout
		}
		listeners = append(listeners, master.Listener{
			Name: g.name(), Network: network(g.Transport), Addr: g.Addr,
			Transport: g.Transport, Protocol: protocolName(g), Count: count, StopTimeout: st,
		})
	}
	cred, err := credential(cfg)
	if err != nil {
		return err
	}
	logFile := ""
	if daemon {
		logFile = cfg.LogFile
		if logFile == "" {
			logFile = paths.Log
		}
	}
	// Console lines for a person at a terminal; JSON for the log file,
	// journald or a pipe.
	consoleOut := !daemon && isTerminal(2)
	log, err := newLogger(os.Stderr, consoleOut, cfg.LogLevel, "master", -1)
	if err != nil {
		return err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("goes: config: %w", err)
	}
	console := "0"
	if consoleOut {
		console = "1"
	}
	workerEnv := []string{envConfigJSON + "=" + string(cfgJSON), envLogConsole + "=" + console, envLogFile + "=" + logFile}
	if os.Getenv(envCloseOnDrain) == "1" {
		workerEnv = append(workerEnv, envCloseOnDrain+"=1")
	}
	cl, err := startCluster(cfg, goers, log)
	if err != nil {
		return err
	}
	defer cl.stop() // after the workers: their Nodes drain first
	if cl != nil {
		workerEnv = append(workerEnv, envClusterURL+"="+cl.url)
	}
	return master.Run(context.Background(), master.Options{
		Cluster:          cl.info,
		OnPreviousExited: cl.previousExited,
		Listeners:        listeners,
		Paths:            paths,
		Version:          r.Version,
		WorkerEnv:        func(master.Identity) []string { return workerEnv },
		Credential:       cred,
		ReadyTimeout:     time.Duration(cfg.ReadyTimeout),
		UpgradeTimeout:   time.Duration(cfg.UpgradeTimeout),
		Signals:          true,
		Upgrades:         true,
		Logger:           log,
		OnUpgraded: func(pid int) {
			if !daemon {
				fmt.Fprintf(r.Stdout, "%s upgraded: master pid %d serves now, detached from this terminal (stop it with `%s stop`); "+
					"this process exits once its workers have drained\n", r.Name, pid, r.Name)
			}
		},
		Reopen: func() error { return reopenLog(logFile) },
		OnReady: func() {
			notifier.Ready(os.Getpid())
			switch {
			case daemon:
			case master.IsUpgrade():
				fmt.Fprintf(r.Stdout, "%s took over (pid %d, %d workers, run dir %s)\n",
					r.Name, os.Getpid(), countWorkers(listeners), paths.Dir)
			default:
				fmt.Fprintf(r.Stdout, "%s started (pid %d, %d workers, run dir %s); Ctrl-C stops it\n",
					r.Name, os.Getpid(), countWorkers(listeners), paths.Dir)
			}
		},
	})
}

func countWorkers(ls []master.Listener) int {
	n := 0
	for _, l := range ls {
		n += l.Count
	}
	return n
}

// goingAway tells a connection that outlived a drain that the server
// goes away: WebSocket peers get close code 1001.
func goingAway(c connections.Connection) {
	if p := c.Protocol(); p != nil && p.Name() == "websocket" {
		websocket.Close(c, websocket.CloseGoingAway, "server going away")
	}
}

// runWorker serves this worker's Goer over the sockets the master passed.
func (r *Runner) runWorker() error {
	id, err := master.ParseIdentity(os.Getenv(master.EnvWorker))
	if err != nil {
		return err
	}
	cfg := &Config{}
	if s := os.Getenv(envConfigJSON); s != "" {
		if cfg, err = ParseConfig([]byte(s)); err != nil {
			return err
		}
	}
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	if id.Listener >= len(goers) {
		return fmt.Errorf("goes: worker of listener %d, but the program has %d", id.Listener, len(goers))
	}
	g := goers[id.Listener]
	log, err := newLogger(os.Stderr, os.Getenv(envLogConsole) == "1", cfg.LogLevel, "worker", id.ID)
	if err != nil {
		return err
	}
	sockFile := os.NewFile(master.SocketFD, "listener")
	ctlFile := os.NewFile(master.CtlFD, "control")
	if sockFile == nil || ctlFile == nil {
		return errors.New("goes: worker started without its sockets")
	}
	ctl, err := net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		return fmt.Errorf("goes: worker %d: control channel: %w", id.ID, err)
	}
	var (
		ln net.Listener
		pc net.PacketConn
	)
	if g.Transport == TransportUDP {
		pc, err = net.FilePacketConn(sockFile)
	} else {
		ln, err = net.FileListener(sockFile)
	}
	sockFile.Close()
	if err != nil {
		return fmt.Errorf("goes: worker %d: listener: %w", id.ID, err)
	}
	if g.Transport == TransportTLS {
		conf := g.TLSConfig
		if conf == nil {
			cert, err := tls.LoadX509KeyPair(g.CertFile, g.KeyFile)
			if err != nil {
				return fmt.Errorf("goes: worker %d: tls: %w", id.ID, err)
			}
			conf = &tls.Config{Certificates: []tls.Certificate{cert}}
		}
		ln = tls.NewListener(ln, conf)
	}
	g.workerID = id.Index
	g.wheel = timer.New(timer.Options{Logger: log})
	g.wheel.Start()
	defer g.wheel.Stop()
	route := id.Route
	var nodeStatus func() *ipc.NodeStats
	if clusterOn(cfg, g) {
		if g.node, route, err = startNode(cfg, g, id, log); err != nil {
			return err
		}
		// Closed once the connections are gone (worker.Run returned), so
		// that they are reached until the end of a drain.
		defer g.node.Close()
		nodeStatus = func() *ipc.NodeStats { return nodeStats(g.node) }
	}
	cc := g.connConfig()
	cc.Logger = log
	cc.IDBase = uint64(route) << 32
	logFile := os.Getenv(envLogFile)
	return worker.Run(context.Background(), worker.Options{
		Cluster:      nodeStatus,
		ID:           id.ID,
		Ctl:          ctl,
		Listener:     ln,
		PacketConn:   pc,
		Config:       cc,
		StopTimeout:  g.StopTimeout,
		CloseOnDrain: os.Getenv(envCloseOnDrain) == "1",
		GoingAway:    goingAway,
		Version:      r.Version,
		Logger:       log,
		Reopen:       func() error { return reopenLog(logFile) },
		Timers:       g.wheel.Len,
		OnStart: func() error {
			if g.OnWorkerStart != nil {
				g.OnWorkerStart(g)
			}
			return nil
		},
		OnReload: func() {
			if g.OnWorkerReload != nil {
				g.OnWorkerReload(g)
			}
		},
		OnStop: func() {
			if g.OnWorkerStop != nil {
				g.OnWorkerStop(g)
			}
		},
	})
}
