//go:build unix

package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/internal/tlsconf"
	"github.com/goes-project/goes/master"
	"github.com/goes-project/goes/worker"
)

// runMaster runs the master of cfg in this process until it stops.
func (p *Program[C]) runMaster(cfg C, s Settings, cfgPath string, paths master.Paths, menv procenv.MasterEnv, notifier *master.Notifier) error {
	daemon := menv.Daemon
	plan, err := p.Plan(cfg)
	if err != nil {
		return err
	}
	listeners := plan.Options.Listeners
	for i, l := range listeners {
		if l.Transport == "tls" && tlsconf.Regular(plan.TLS[i]) {
			// The workers read the files when they start: one that cannot
			// fails this master's start (a reload) with the file's name
			// rather than as a worker that exited. Files that are not
			// regular (a FIFO a secret is served on once) are the
			// workers' alone to read.
			if _, err := tlsconf.Build(plan.TLS[i]); err != nil {
				return fmt.Errorf("goes: listeners[%d] (%s): %w", i, l.Name, err)
			}
		}
	}
	cred, err := launch.Credential(plan.User, plan.Group)
	if err != nil {
		return err
	}
	upg, err := master.NewUpgrader(master.Options{ReadyTimeout: plan.Options.ReadyTimeout, UpgradeTimeout: plan.Options.UpgradeTimeout})
	if err != nil {
		return err
	}
	defer upg.Stop() // when master.Run does not
	// A master started by a reload runs next to its predecessor.
	if h, err := Ping(paths); err == nil && !upg.HasParent() {
		return fmt.Errorf("%w: %s (pid %d, run dir %s); stop it first", ErrAlreadyRunning, p.Name, h.PID, paths.Dir)
	}
	logFile := ""
	if daemon {
		logFile = s.LogFile
		if logFile == "" {
			logFile = paths.Log
		}
	}
	// Console lines for a person at a terminal; JSON for the log file,
	// journald or a pipe.
	consoleOut := !daemon && IsTerminal(2)
	log, err := launch.NewLogger(os.Stderr, consoleOut, s.LogLevel, "master", -1)
	if err != nil {
		return err
	}
	token, err := readAdminToken(plan.AdminTokenFile)
	if err != nil {
		return err
	}
	launch.SetProfileRates(plan.BlockProfileRate, plan.MutexProfileFraction)
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("goes: config: %w", err)
	}
	workerEnv := procenv.WorkerEnv{ConfigJSON: string(cfgJSON), LogConsole: consoleOut, LogFile: logFile, CloseOnDrain: menv.CloseOnDrain}
	var reopen func() error
	if logFile != "" {
		reopen = func() error { return worker.ReopenLog(logFile) }
	}
	var cl *launch.Cluster
	if plan.Cluster {
		prevRoute := ""
		if upg.HasParent() {
			prevRoute = upg.Inherited().ClusterRoute
		}
		if cl, err = launch.StartCluster(plan.NATSURL, plan.ClusterPrefix, prevRoute, log); err != nil {
			return err
		}
	}
	defer cl.Stop() // after the workers: their Nodes drain first
	if cl != nil {
		workerEnv.ClusterURL = cl.URL
	}
	o := plan.Options
	o.Cluster, o.OnPreviousExited, o.ClusterRoute = cl.Info, cl.PreviousExited, cl.RouteURL()
	o.Paths, o.Worker, o.Credential, o.Signals, o.Upgrader, o.Logger = paths, workerEnv, cred, true, upg, log
	o.Reopen, o.AdminToken, o.ConfigFile, o.WrapOutput = reopen, token, cfgPath, logFile != "" && !consoleOut
	o.OnUpgraded = func(pid int) {
		if !daemon && !launch.OnJournal(1) {
			fmt.Fprintf(p.Stdout, "%s upgraded: master pid %d serves now, detached from this terminal (stop it with `%s stop`); "+
				"this process exits once its workers have drained\n", p.Name, pid, p.Name)
		}
	}
	o.OnReady = func() {
		p.served = true
		notifier.Ready(os.Getpid())
		switch {
		case daemon:
		case launch.OnJournal(1):
			// Under systemd: the journal takes JSON lines only, and the
			// log's "master ready" says it.
		case upg.HasParent():
			fmt.Fprintf(p.Stdout, "%s took over (pid %d, %d workers, run dir %s)\n",
				p.Name, os.Getpid(), countWorkers(listeners), paths.Dir)
		default:
			fmt.Fprintf(p.Stdout, "%s started (pid %d, %d workers, run dir %s); Ctrl-C stops it\n",
				p.Name, os.Getpid(), countWorkers(listeners), paths.Dir)
		}
	}
	return master.Run(context.Background(), o)
}

func countWorkers(ls []master.Listener) int {
	n := 0
	for _, l := range ls {
		n += l.Count
	}
	return n
}

// OptDuration maps a duration of the config that is on by default
// (kill_unresponsive, orphan_timeout) to master.Options': unset (nil) is
// the default (0), 0 or less is off (-1).
func OptDuration(d *time.Duration) time.Duration {
	switch {
	case d == nil:
		return 0
	case *d <= 0:
		return -1
	}
	return *d
}
