//go:build unix

package goes

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections"
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
	return r.app().Run(args)
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
func (r *Runner) runMaster(cfg *Config, paths master.Paths, menv procenv.MasterEnv, notifier *master.Notifier) error {
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
			if !daemon {
				fmt.Fprintf(r.Stdout, "%s upgraded: master pid %d serves now, detached from this terminal (stop it with `%s stop`); "+
					"this process exits once its workers have drained\n", r.Name, pid, r.Name)
			}
		},
		Reopen: reopen,
		Admin:  r.adminAddr(cfg, goers),
		OnReady: func() {
			notifier.Ready(os.Getpid())
			switch {
			case daemon:
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
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	if id.Listener >= len(goers) {
		return fmt.Errorf("goes: worker of listener %d, but the program has %d", id.Listener, len(goers))
	}
	g := goers[id.Listener]
	log, err := newLogger(os.Stderr, wenv.LogConsole, cfg.LogLevel, "worker", id.ID)
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
		Reopen:       func() error { return reopenLog(logFile) },
		Timers:       g.wheel.LenUser,
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
