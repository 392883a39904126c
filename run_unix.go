//go:build unix

package goes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/accesslog"
	"github.com/goes-project/goes/internal/ctl"
	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/timer"
	"github.com/goes-project/goes/worker"
)

// run runs the verb in args, or, in a process the master forked, the
// worker.
func (r *Runner) run(args []string) error {
	if procenv.IsWorker(os.Getenv) {
		return r.runWorker()
	}
	if r.Stdout == io.Writer(os.Stdout) && launch.OnJournal(1) {
		r.Stdout = launch.NewJournalText(os.Stdout) // under systemd: JSON lines only
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
	if r.Stderr == io.Writer(os.Stderr) && launch.OnJournal(2) {
		jsonLog = true // under systemd (a start, a check): a JSON line with its priority
	}
	if !jsonLog {
		fmt.Fprintln(r.Stderr, err)
		return
	}
	log, _ := launch.NewLogger(r.Stderr, false, "", role, id)
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
	for i, g := range goers {
		if err := g.validate(); err != nil {
			return err
		}
		if g.Transport == TransportTLS && g.tlsFilesRegular() {
			// The workers read the files when they start: one that cannot
			// fails this master's start (a reload) with the file's name
			// rather than as a worker that exited. Files that are not
			// regular (a FIFO a secret is served on once) are the
			// workers' alone to read.
			if _, err := g.buildTLSConfig(); err != nil {
				return fmt.Errorf("goes: listeners[%d] (%s): %w", i, g.name(), err)
			}
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
	cred, err := launch.Credential(cfg.User, cfg.Group)
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
	if h, err := ctl.Ping(paths); err == nil && !upg.HasParent() {
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
	consoleOut := !daemon && ctl.IsTerminal(2)
	log, err := launch.NewLogger(os.Stderr, consoleOut, cfg.LogLevel, "master", -1)
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
		reopen = func() error { return worker.ReopenLog(logFile) }
	}
	cl, err := startCluster(cfg, goers, log, upg)
	if err != nil {
		return err
	}
	defer cl.Stop() // after the workers: their Nodes drain first
	if cl != nil {
		workerEnv.ClusterURL = cl.URL
	}
	return master.Run(context.Background(), master.Options{
		Cluster:          cl.Info,
		OnPreviousExited: cl.PreviousExited,
		Listeners:        listeners,
		Paths:            paths,
		Version:          r.Version,
		Worker:           workerEnv,
		Credential:       cred,
		ReadyTimeout:     time.Duration(cfg.ReadyTimeout),
		Signals:          true,
		Upgrader:         upg,
		ClusterRoute:     cl.RouteURL(),
		Logger:           log,
		OnUpgraded: func(pid int) {
			if !daemon && !launch.OnJournal(1) {
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
		TicketKeyRotation:   time.Duration(cfg.TicketKeyRotation),
		ConfigFile:          cfgPath,
		WrapOutput:          logFile != "" && !consoleOut,
		OnReady: func() {
			r.served = true
			notifier.Ready(os.Getpid())
			switch {
			case daemon:
			case launch.OnJournal(1):
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
	launch.SetComm(workerComm(id.ID, g)) // for ps -o comm and top: "goes: w3 web" (procname_linux.go); a failure costs only the name
	var (
		logOut     io.Writer = os.Stderr
		masterGone func()
	)
	if wenv.LogPipe {
		// Once the master is gone the log goes to the file, and a write
		// to its pipe fails (EPIPE) rather than killing the worker.
		logOut, masterGone = worker.PipeLog(wenv.LogFile)
	}
	log, err := launch.NewLogger(logOut, wenv.LogConsole, cfg.LogLevel, "worker", id.ID)
	if err != nil {
		return err
	}
	in, err := worker.Inherit(wenv, g.Transport == TransportUDP, orphan.Info{
		ID: id.ID, Generation: id.Generation, Route: id.Route, Listener: id.Listener,
		Name: g.name(), Network: network(g.Transport), Addr: g.Addr, Key: master.ListenerKey(id.Listener, g.Addr),
	}, log)
	if err != nil {
		return err
	}
	ln := in.Listener
	var tl worker.TLS
	if g.Transport == TransportTLS {
		conf, err := g.buildTLSConfig()
		if err != nil {
			return fmt.Errorf("goes: worker %d: tls: %w", id.ID, err)
		}
		if tl, err = worker.TLSListener(ln, conf, in.TicketKeys, log); err == nil {
			ln = tl.Listener
		}
		if err != nil {
			return fmt.Errorf("goes: worker %d: %w", id.ID, err)
		}
	}
	g.workerID = id.Index
	g.wheel = timer.New(timer.Options{Logger: log})
	g.wheel.Start()
	defer g.wheel.Stop()
	route := id.Route
	var nodeStatus func() *ipc.NodeStats
	if clusterOn(cfg, g) {
		if g.node, route, err = launch.StartNode(wenv.ClusterURL, cfg.Cluster.prefix(), g.name(), id, log); err != nil {
			return err
		}
		// Closed once the connections are gone (worker.Run returned), so
		// that they are reached until the end of a drain.
		defer g.node.Close()
		nodeStatus = func() *ipc.NodeStats { return launch.NodeStats(g.node) }
	}
	cc := g.connConfig()
	cc.Logger = log
	var alog *accesslog.Writer
	if g.AccessLog != "" {
		hp, ok := g.Protocol.(*http.Protocol)
		if !ok {
			return fmt.Errorf("goes: worker %d: access_log needs the http protocol", id.ID)
		}
		if alog, err = accesslog.Open(g.AccessLog, id.ID, 0); err != nil {
			return fmt.Errorf("goes: worker %d: %w", id.ID, err)
		}
		defer alog.Close() // after worker.Run: the drained connections' lines too
		hp.AccessLog = alog
		cc.AccessLogDropped = alog.Dropped
	}
	cc.IDBase = uint64(route) << 32
	cc.AcceptShare, cc.AcceptSlot = in.AcceptShare, in.AcceptSlot
	g.idBase, g.log = cc.IDBase, log
	logFile := wenv.LogFile
	return worker.Run(context.Background(), worker.Options{
		Cluster:      nodeStatus,
		ID:           id.ID,
		Ctl:          in.Ctl,
		Listener:     ln,
		PacketConn:   in.PacketConn,
		Config:       cc,
		StopTimeout:  g.StopTimeout,
		CloseOnDrain: wenv.CloseOnDrain,
		GoingAway:    goingAway,
		Version:      r.Version,
		Logger:       log,
		Reopen: func() error {
			if alog != nil {
				if err := alog.Reopen(); err != nil {
					return err
				}
			}
			if wenv.LogPipe {
				return nil // the master reopens the file it copies to
			}
			return worker.ReopenLog(logFile)
		},
		MasterGone:  masterGone,
		TicketKeys:  tl.SetKeys,
		TLSCounts:   tl.Counts,
		Orphan:      in.Orphan,
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
