//go:build unix

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
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/timer"
	"github.com/goes-project/goes/worker"
)

// run runs the verb in args, or, in a process the master forked, the
// worker.
func (r *Runner) run(args []string) error {
	if procenv.IsWorker(os.Getenv) {
		return r.runWorker()
	}
	if r.Stdout == io.Writer(os.Stdout) && onJournal(1) {
		r.Stdout = newJournalText(os.Stdout) // under systemd: JSON lines only
	}
	err := r.app().Run(args)
	if err != nil && !r.served {
		// A master that a reload started tells the master that started it
		// why it fails, for reload to print.
		if succ, derr := procenv.DecodeSuccessorEnv(os.Getenv); derr == nil && succ.ParentControl != "" {
			master.ReportUpgradeFailure(succ.ParentControl, err)
		}
	}
	return err
}

// fatal writes err, which ends the process, to r.Stderr: as a JSON log
// line where the process logs JSON lines (a daemon master, a worker that
// does not log console lines), so that the log stays JSON lines; as plain
// text otherwise (a person or a script reads what the CLI says).
func (r *Runner) fatal(err error) {
	role, id, jsonLog := "master", -1, false
	if procenv.IsWorker(os.Getenv) {
		if w, derr := procenv.DecodeWorkerEnv(os.Getenv); derr == nil {
			role, id, jsonLog = "worker", w.Identity.ID, !w.LogConsole
		}
	} else if m, derr := procenv.DecodeMasterEnv(os.Getenv); derr == nil {
		jsonLog = m.Daemon
	}
	if r.Stderr == io.Writer(os.Stderr) && onJournal(2) {
		jsonLog = true // under systemd (a start, a check): a JSON line with its priority
	}
	if !jsonLog {
		fmt.Fprintln(r.Stderr, err)
		return
	}
	log, _ := newLogger(r.Stderr, false, "", role, id)
	log.Error().Err(err).Msg("exiting on error")
}

// killUnresponsive maps the config's kill_unresponsive to
// master.Options.KillUnresponsive: unset is the default, 0 never.
func killUnresponsive(cfg *Config) time.Duration {
	switch {
	case cfg.KillUnresponsive == nil:
		return 0
	case *cfg.KillUnresponsive <= 0:
		return -1
	}
	return time.Duration(*cfg.KillUnresponsive)
}

// pipeWriter is a worker's log output when its master copies it
// (procenv.WorkerEnv.LogPipe): the pipe on stderr until the master is gone,
// then the log file, which reopenLog puts on stdout and stderr. The worker
// says when the master is gone (detach, at EOF on its control channel),
// before it logs its drain: the dying master's end of the pipe may still
// be open a moment, and what goes into it then is lost. A write that
// fails with EPIPE (SIGPIPE being caught) detaches too. Safe for
// concurrent use.
type pipeWriter struct {
	file     string
	mu       sync.Mutex
	detached atomic.Bool
}

func (p *pipeWriter) Write(b []byte) (int, error) {
	n, err := os.Stderr.Write(b)
	if err == nil || !errors.Is(err, syscall.EPIPE) || p.file == "" || p.detach() != nil {
		return n, err
	}
	return os.Stderr.Write(b) // to the file now
}

// detach points stdout and stderr at the log file, once (nil when that is
// done, or there is no file).
func (p *pipeWriter) detach() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.detached.Load() || p.file == "" {
		return nil
	}
	if err := reopenLog(p.file); err != nil {
		return err
	}
	p.detached.Store(true)
	return nil
}

// orphanTimeout maps the config's orphan_timeout to
// master.Options.OrphanTimeout: unset is the default, 0 off.
func orphanTimeout(cfg *Config) time.Duration {
	switch {
	case cfg.OrphanTimeout == nil:
		return 0
	case *cfg.OrphanTimeout <= 0:
		return -1
	}
	return time.Duration(*cfg.OrphanTimeout)
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
func (r *Runner) runMaster(cfg *Config, cfgPath string, paths master.Paths, menv procenv.MasterEnv, notifier *master.Notifier) error {
	daemon := menv.Daemon
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
	mo := master.Options{ReadyTimeout: time.Duration(cfg.ReadyTimeout), UpgradeTimeout: time.Duration(cfg.UpgradeTimeout)}
	upg, err := master.NewUpgrader(mo)
	if err != nil {
		return err
	}
	defer upg.Stop() // when master.Run does not
	// A master started by a reload runs next to its predecessor.
	if h, err := ping(paths); err == nil && !upg.HasParent() {
		return fmt.Errorf("%w: %s (pid %d, run dir %s); stop it first", ErrAlreadyRunning, r.Name, h.PID, paths.Dir)
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
	token, err := readAdminToken(cfg.AdminTokenFile)
	if err != nil {
		return err
	}
	setProfileRates(cfg)
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("goes: config: %w", err)
	}
	workerEnv := procenv.WorkerEnv{ConfigJSON: string(cfgJSON), LogConsole: consoleOut, LogFile: logFile, CloseOnDrain: menv.CloseOnDrain}
	var reopen func() error
	if logFile != "" {
		reopen = func() error { return reopenLog(logFile) }
	}
	cl, err := startCluster(cfg, goers, log, upg)
	if err != nil {
		return err
	}
	defer cl.stop() // after the workers: their Nodes drain first
	if cl != nil {
		workerEnv.ClusterURL = cl.url
	}
	return master.Run(context.Background(), master.Options{
		Cluster:          cl.info,
		OnPreviousExited: cl.previousExited,
		Listeners:        listeners,
		Paths:            paths,
		Version:          r.Version,
		Worker:           workerEnv,
		Credential:       cred,
		ReadyTimeout:     time.Duration(cfg.ReadyTimeout),
		Signals:          true,
		Upgrader:         upg,
		ClusterRoute:     cl.routeURL(),
		Logger:           log,
		OnUpgraded: func(pid int) {
			if !daemon && !onJournal(1) {
				fmt.Fprintf(r.Stdout, "%s upgraded: master pid %d serves now, detached from this terminal (stop it with `%s stop`); "+
					"this process exits once its workers have drained\n", r.Name, pid, r.Name)
			}
		},
		Reopen: reopen,
		Admin:  r.adminAddr(cfg, goers),
		// The control plane's bounds.
		AdminMaxConnections: cfg.AdminMaxConnections,
		AdminToken:          token,
		// Operations.
		WatchdogInterval:    time.Duration(cfg.WatchdogInterval),
		UnresponsiveTimeout: time.Duration(cfg.UnresponsiveTimeout),
		KillUnresponsive:    killUnresponsive(cfg),
		OrphanTimeout:       orphanTimeout(cfg),
		ConfigFile:          cfgPath,
		WrapOutput:          logFile != "" && !consoleOut,
		OnReady: func() {
			r.served = true
			notifier.Ready(os.Getpid())
			switch {
			case daemon:
			case onJournal(1):
				// Under systemd: the journal takes JSON lines only, and the
				// log's "master ready" says it.
			case upg.HasParent():
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
// goes away, when its protocol has a way to say so
// (protocols.GoingAwayer: WebSocket peers get close code 1001).
func goingAway(c connections.Connection) {
	if p, ok := c.Protocol().(protocols.GoingAwayer); ok {
		p.GoingAway(c)
	}
}

// workerOrphan reads the worker socket its master passed on
// procenv.OrphanFD: with it the worker outlives its master
// (worker.Orphan).
func workerOrphan(wenv procenv.WorkerEnv, g *Goer, ln net.Listener, pc net.PacketConn) (*worker.Orphan, error) {
	f := os.NewFile(procenv.OrphanFD, "worker-socket")
	if f == nil {
		return nil, errors.New("goes: worker started without its worker socket")
	}
	fl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("goes: worker socket: %w", err)
	}
	ul, ok := fl.(*net.UnixListener)
	if !ok {
		fl.Close()
		return nil, fmt.Errorf("goes: worker socket is a %T", fl)
	}
	ul.SetUnlinkOnClose(false)
	var sock syscall.Conn
	bound := ""
	if ln != nil {
		sock, bound = ln.(syscall.Conn), ln.Addr().String()
	} else {
		sock, bound = pc.(syscall.Conn), pc.LocalAddr().String()
	}
	id := wenv.Identity
	return &worker.Orphan{
		Listener: ul,
		Timeout:  wenv.OrphanTimeout,
		Info: orphan.Info{
			MasterPID: os.Getppid(), ID: id.ID, Generation: id.Generation, Route: id.Route,
			Listener: id.Listener, Name: g.name(), Network: network(g.Transport), Addr: g.Addr,
			Key: master.ListenerKey(id.Listener, g.Addr), Bound: bound,
		},
		Socket: func() (*os.File, error) { return orphan.DupSocket(sock) },
	}, nil
}

// runWorker serves this worker's Goer over the sockets the master passed.
func (r *Runner) runWorker() error {
	wenv, err := procenv.DecodeWorkerEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("goes: worker: %w", err)
	}
	id := wenv.Identity
	cfg := &Config{}
	if s := wenv.ConfigJSON; s != "" {
		if cfg, err = ParseConfig([]byte(s)); err != nil {
			return err
		}
	}
	setProfileRates(cfg)
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	if id.Listener >= len(goers) {
		return fmt.Errorf("goes: worker of listener %d, but the program has %d", id.Listener, len(goers))
	}
	g := goers[id.Listener]
	setComm(workerComm(id.ID, g)) // for ps -o comm and top: "goes: w3 web" (procname_linux.go); a failure costs only the name
	var (
		logOut     io.Writer = os.Stderr
		masterGone func()
	)
	if wenv.LogPipe {
		// Once the master is gone the log goes to the file, and a write
		// to its pipe fails (EPIPE) rather than killing the worker.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
		pw := &pipeWriter{file: wenv.LogFile}
		logOut, masterGone = pw, func() { pw.detach() }
	}
	log, err := newLogger(logOut, wenv.LogConsole, cfg.LogLevel, "worker", id.ID)
	if err != nil {
		return err
	}
	sockFile := os.NewFile(procenv.SocketFD, "listener")
	ctlFile := os.NewFile(procenv.CtlFD, "control")
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
	var orphanOpts *worker.Orphan
	if wenv.OrphanTimeout > 0 {
		orphanOpts, err = workerOrphan(wenv, g, ln, pc)
		if err != nil {
			// The worker serves; without its socket it drains as soon as
			// its master is gone, as before.
			log.Warn().Err(err).Msg("no worker socket: this worker will not outlive its master")
		}
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
		if g.node, route, err = startNode(cfg, g, id, wenv.ClusterURL, log); err != nil {
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
	if wenv.AcceptShare {
		// Without it (an error) the worker accepts without balancing.
		if f := os.NewFile(procenv.AcceptShareFD, "accept-share"); f != nil {
			sh, err := connections.OpenAcceptShare(f)
			if err != nil {
				log.Warn().Err(err).Msg("accept balancing off")
			} else {
				// Mapped until the process exits: a wheel timer of a
				// paused loop may still look at it after Run returns.
				cc.AcceptShare, cc.AcceptSlot = sh, wenv.AcceptSlot
			}
		}
	}
	g.idBase, g.log = cc.IDBase, log
	logFile := wenv.LogFile
	return worker.Run(context.Background(), worker.Options{
		Cluster:      nodeStatus,
		ID:           id.ID,
		Ctl:          ctl,
		Listener:     ln,
		PacketConn:   pc,
		Config:       cc,
		StopTimeout:  g.StopTimeout,
		CloseOnDrain: wenv.CloseOnDrain,
		GoingAway:    goingAway,
		Version:      r.Version,
		Logger:       log,
		Reopen: func() error {
			if wenv.LogPipe {
				return nil // the master reopens the file it copies to
			}
			return reopenLog(logFile)
		},
		MasterGone:  masterGone,
		Orphan:      orphanOpts,
		Timers:      g.wheel.LenUser,
		MaxRequests: g.MaxRequests,
		MaxMemory:   g.MaxMemory,
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
