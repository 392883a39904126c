//go:build unix

package goes

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/ctl"
	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/internal/tlsconf"
	"github.com/goes-project/goes/master"
	"github.com/goes-project/goes/worker"
)

// DefaultAnswerTimeout is how long the CLI waits for the master to answer
// (--timeout): a request, and, while a stop or reload drains, between two
// of the master's progress reports.
const DefaultAnswerTimeout = ctl.DefaultAnswerTimeout

// run runs the verb in args (internal/ctl: the verb table, the master's
// start-up), or, in a process the master forked, the worker.
func (r *Runner) run(args []string) error {
	if procenv.IsWorker(os.Getenv) {
		return r.runWorker()
	}
	p := &ctl.Program[*Config]{
		CLI:     ctl.CLI{Name: r.Name, Stdout: r.Stdout, Stderr: r.Stderr},
		Version: r.Version,
		Load:    r.load,
		Plan:    r.plan,
	}
	return p.Run(args)
}

// fatal writes err, which ends the process, to r.Stderr (see ctl.Fatal:
// a JSON log line where the process logs JSON lines, plain text
// otherwise).
func (r *Runner) fatal(err error) { ctl.Fatal(r.Stderr, err) }

// load reads the config file at path, or the program's default config
// when path is "".
func (r *Runner) load(path string) (*Config, ctl.Settings, error) {
	cfg, err := &Config{}, error(nil)
	switch {
	case path != "":
		cfg, err = LoadConfig(path)
	case r.DefaultConfig != nil:
		cfg, err = ParseConfig(r.DefaultConfig)
	}
	if err != nil {
		return nil, ctl.Settings{}, err
	}
	return cfg, ctl.Settings{RunDir: cfg.RunDir, LogLevel: cfg.LogLevel, LogFile: cfg.LogFile,
		ReadyTimeout: time.Duration(cfg.ReadyTimeout)}, nil
}

// plan builds the program's Goers for cfg, checks them, and turns them
// and cfg into what the master serves.
func (r *Runner) plan(cfg *Config) (ctl.Plan, error) {
	goers, err := r.goers(cfg)
	if err != nil {
		return ctl.Plan{}, err
	}
	stopTimeout := 30 * time.Second
	if cfg.StopTimeout > 0 {
		stopTimeout = time.Duration(cfg.StopTimeout)
	}
	p := ctl.Plan{
		User: cfg.User, Group: cfg.Group, AdminTokenFile: cfg.AdminTokenFile,
		BlockProfileRate: cfg.BlockProfileRate, MutexProfileFraction: cfg.MutexProfileFraction,
		NATSURL: cfg.Cluster.natsURL(), ClusterPrefix: cfg.Cluster.prefix(),
		Options: master.Options{
			Version:        r.Version,
			ReadyTimeout:   time.Duration(cfg.ReadyTimeout),
			UpgradeTimeout: time.Duration(cfg.UpgradeTimeout),
			Admin:          r.adminAddr(cfg, goers),
			// The control plane's bounds.
			AdminMaxConnections: cfg.AdminMaxConnections,
			// Operations.
			WatchdogInterval:    time.Duration(cfg.WatchdogInterval),
			UnresponsiveTimeout: time.Duration(cfg.UnresponsiveTimeout),
			KillUnresponsive:    ctl.OptDuration((*time.Duration)(cfg.KillUnresponsive)),
			OrphanTimeout:       ctl.OptDuration((*time.Duration)(cfg.OrphanTimeout)),
			TicketKeyRotation:   time.Duration(cfg.TicketKeyRotation),
		},
	}
	for _, g := range goers {
		if err := g.validate(); err != nil {
			return ctl.Plan{}, err
		}
		count := g.Count
		if count <= 0 {
			count = runtime.NumCPU()
		}
		st := g.StopTimeout
		if st <= 0 {
			st = stopTimeout
		}
		p.Options.Listeners = append(p.Options.Listeners, master.Listener{
			Name: g.name(), Network: network(g.Transport), Addr: g.Addr,
			Transport: g.Transport, Protocol: protocolName(g), Count: count, StopTimeout: st,
		})
		var tf tlsconf.Files
		if g.Transport == TransportTLS {
			tf = g.tlsFiles()
		}
		p.TLS = append(p.TLS, tf)
		p.Cluster = p.Cluster || clusterOn(cfg, g)
	}
	for _, lc := range cfg.Listeners {
		p.Files = append(p.Files, ctl.ListenerFiles{AccessLog: lc.AccessLog, Root: lc.Root})
	}
	return p, nil
}

// clusterOn reports whether g's workers get a cluster Node.
func clusterOn(cfg *Config, g *Goer) bool { return g.Cluster || cfg.Cluster.on() }

// runWorker serves this worker's Goer over the sockets the master passed
// (worker.Serve: the worker process's start-up).
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
	launch.SetProfileRates(cfg.BlockProfileRate, cfg.MutexProfileFraction)
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	if id.Listener >= len(goers) {
		return fmt.Errorf("goes: worker of listener %d, but the program has %d", id.Listener, len(goers))
	}
	g := goers[id.Listener]
	return worker.Serve(context.Background(), worker.Setup{
		Env: wenv, Name: g.name(), Comm: workerComm(id.ID, g),
		Transport: g.Transport, Network: network(g.Transport), Addr: g.Addr, Key: master.ListenerKey(id.Listener, g.Addr),
		TLS: g.tlsFiles(), LogLevel: cfg.LogLevel, Cluster: clusterOn(cfg, g), ClusterPrefix: cfg.Cluster.prefix(),
		AccessLog: g.AccessLog, StopTimeout: g.StopTimeout, MaxRequests: g.MaxRequests, MaxMemory: g.MaxMemory,
		Version: r.Version,
		Connections: func(p worker.Process) connections.Config {
			g.workerID, g.wheel, g.node, g.idBase, g.log = p.Index, p.Wheel, p.Node, p.IDBase, p.Log
			return g.connConfig() // after wheel and node: the connections join the Node
		},
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
