//go:build unix

package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/internal/tlsconf"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
)

// Program is a goes program as its command line sees it: the root
// package's Runner, with its config type C (*goes.Config) and its Goers
// behind two funcs. Run runs a verb of it.
type Program[C any] struct {
	CLI
	// Version is shown by --version and status.
	Version string
	// Load reads the config file at path (absolute), or the program's
	// default config when path is "", and the settings the command line
	// reads of it.
	Load func(path string) (C, Settings, error)
	// Plan builds the program's Goers for cfg and checks them (listen
	// addresses, transports), as a master would: what the master of cfg
	// serves.
	Plan func(cfg C) (Plan, error)

	served bool // this process ran a master that served (OnReady)
}

// Settings are the config's settings that the command line reads before
// it builds the listeners (Program.Load).
type Settings struct {
	// RunDir is the config's run_dir ("": the default run directory).
	RunDir string
	// LogLevel and LogFile are the config's log_level and log_file.
	LogLevel, LogFile string
	// ReadyTimeout is the config's ready_timeout (0: the default).
	ReadyTimeout time.Duration
}

// Plan is what the master of a config serves (Program.Plan).
type Plan struct {
	// Options are the master's options that the config and the Goers
	// set: the listeners, the version, the admin endpoint, the timeouts
	// and bounds. The master's start-up adds the rest (paths, logger,
	// upgrader, cluster, workers' environment).
	Options master.Options
	// TLS describes listener i's TLS configuration (for transport "tls";
	// zero otherwise).
	TLS []tlsconf.Files
	// User and Group run the workers (the config's user and group).
	User, Group string
	// AdminTokenFile is the config's admin_token_file.
	AdminTokenFile string
	// BlockProfileRate and MutexProfileFraction are the config's.
	BlockProfileRate, MutexProfileFraction int
	// Cluster is on when some listener's workers get a cluster Node;
	// NATSURL and ClusterPrefix are the config's.
	Cluster                bool
	NATSURL, ClusterPrefix string
	// Files are the access_log and root of the config's listeners, by
	// position (check).
	Files []ListenerFiles
}

// ListenerFiles are the paths of a config's listener that only a running
// worker opens (check names them first).
type ListenerFiles struct{ AccessLog, Root string }

// Run runs the verb in args (os.Args-like).
func (p *Program[C]) Run(args []string) error {
	if p.Stdout == io.Writer(os.Stdout) && launch.OnJournal(1) {
		p.Stdout = launch.NewJournalText(os.Stdout) // under systemd: JSON lines only
	}
	err := p.app().Run(args)
	if err != nil && !p.served {
		// A master that a reload started tells the master that started it
		// why it fails, for reload to print.
		if succ, derr := procenv.DecodeSuccessorEnv(os.Getenv); derr == nil && succ.ParentControl != "" {
			master.ReportUpgradeFailure(succ.ParentControl, err)
		}
	}
	return err
}

// Fatal writes err, which ends the process, to stderr: as a JSON log
// line where the process logs JSON lines (a daemon master, a worker that
// does not log console lines), so that the log stays JSON lines; as plain
// text otherwise (a person or a script reads what the CLI says).
func Fatal(stderr io.Writer, err error) {
	role, id, jsonLog := "master", -1, false
	if procenv.IsWorker(os.Getenv) {
		if w, derr := procenv.DecodeWorkerEnv(os.Getenv); derr == nil {
			role, id, jsonLog = "worker", w.Identity.ID, !w.LogConsole
		}
	} else if m, derr := procenv.DecodeMasterEnv(os.Getenv); derr == nil {
		jsonLog = m.Daemon
	}
	if stderr == io.Writer(os.Stderr) && launch.OnJournal(2) {
		jsonLog = true // under systemd (a start, a check): a JSON line with its priority
	}
	if !jsonLog {
		fmt.Fprintln(stderr, err)
		return
	}
	log, _ := launch.NewLogger(stderr, false, "", role, id)
	log.Error().Err(err).Msg("exiting on error")
}

func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "run-dir", Usage: "directory of the pid file, control socket and log (default $XDG_RUNTIME_DIR/goes/NAME or /tmp/goes-UID/NAME)", EnvVars: []string{"GOES_RUN_DIR"}},
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "JSON config file", EnvVars: []string{"GOES_CONFIG"}},
	}
}

func withCommon(fs ...cli.Flag) []cli.Flag { return append(commonFlags(), fs...) }

// flagString returns the innermost set value of a flag defined both on
// the app and on the command.
func flagString(c *cli.Context, name string) string {
	for _, x := range c.Lineage() {
		if x.IsSet(name) {
			return x.String(name)
		}
	}
	return ""
}

// app is the verb table: one entry per verb. A verb that only talks to a
// running master has its body in ctl.go (CLI); start, check, restart and
// reload build the listeners through Program.Plan.
func (p *Program[C]) app() *cli.App {
	daemon := &cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run detached in the background"}
	graceful := &cli.BoolFlag{Name: "graceful", Aliases: []string{"g"}, Usage: "let connections finish (bounded by the stop timeout)"}
	asJSON := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	timeout := &cli.DurationFlag{Name: "timeout", Value: DefaultAnswerTimeout,
		Usage: "give up when the master does not answer within this; a long drain goes on while the master reports its progress (stop, reload)"}
	return &cli.App{
		Name:            p.Name,
		Usage:           "a goes server: master and workers",
		Version:         p.Version,
		Writer:          p.Stdout,
		ErrWriter:       p.Stderr,
		Flags:           commonFlags(),
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // Run returns errors, RunAll exits
		Commands: []*cli.Command{
			{
				Name: "start", Usage: "start serving (foreground; -d: as a daemon)",
				Flags:  withCommon(daemon),
				Action: func(c *cli.Context) error { return p.start(c, c.Bool("daemon")) },
			},
			{
				Name: "stop", Usage: "stop (fast; -g: graceful)",
				Flags:  withCommon(graceful, timeout),
				Action: func(c *cli.Context) error { return p.stop(c, c.Bool("graceful"), false) },
			},
			{
				Name: "restart", Usage: "stop, then start (a config that cannot start is refused first)",
				Flags: withCommon(daemon, graceful, timeout),
				Action: func(c *cli.Context) error {
					// What cannot start is refused before what serves stops.
					cfg, s, _, _, err := p.resolveFile(c)
					if err == nil {
						_, err = p.check(cfg, s)
					}
					if err != nil {
						return fmt.Errorf("goes: restart refused, nothing was stopped: %w", err)
					}
					if err := p.stop(c, c.Bool("graceful"), true); err != nil {
						return err
					}
					return p.start(c, c.Bool("daemon"))
				},
			},
			{
				Name: "reload", Usage: "upgrade to the binary now on disk without dropping connections (SIGHUP); -g: let old connections finish without a time bound; " +
					"--config FILE: the new generation runs FILE (checked first)",
				Flags:  withCommon(graceful, timeout),
				Action: p.reload,
			},
			p.checkCommand(),
			{
				Name: "status", Usage: "show the master and its workers",
				Flags: withCommon(
					&cli.BoolFlag{Name: "d", Usage: "refresh every second until Ctrl-C"},
					asJSON, timeout),
				Action: func(c *cli.Context) error {
					paths, err := p.resolve(c)
					if err != nil {
						return err
					}
					return p.Status(paths, c.Bool("json"), c.Bool("d"), answerTimeout(c))
				},
			},
			{
				Name: "connections", Usage: "list the open connections",
				Flags: withCommon(asJSON, timeout),
				Action: func(c *cli.Context) error {
					paths, err := p.resolve(c)
					if err != nil {
						return err
					}
					return p.Connections(paths, c.Bool("json"), answerTimeout(c))
				},
			},
		},
	}
}

// resolve loads the config and finds the run directory.
func (p *Program[C]) resolve(c *cli.Context) (master.Paths, error) {
	_, _, paths, _, err := p.resolveFile(c)
	return paths, err
}

// resolveFile is resolve, the config and its settings, and the absolute
// path of the config file it read ("" for the program's default). In a
// master that a reload started, the config file and the run directory
// handed on by the previous master (procenv.SuccessorEnv) win over the
// arguments.
func (p *Program[C]) resolveFile(c *cli.Context) (cfg C, s Settings, paths master.Paths, path string, err error) {
	succ, err := procenv.DecodeSuccessorEnv(os.Getenv)
	if err != nil {
		return cfg, s, paths, "", fmt.Errorf("goes: %w", err)
	}
	path = flagString(c, "config")
	if succ.ConfigFile != "" {
		path = succ.ConfigFile
	}
	if path != "" {
		if path, err = filepath.Abs(path); err != nil {
			return cfg, s, paths, "", fmt.Errorf("goes: config: %w", err)
		}
	}
	if cfg, s, err = p.Load(path); err != nil {
		return cfg, s, paths, "", err
	}
	dir := flagString(c, "run-dir")
	if dir == "" {
		dir = s.RunDir
	}
	if dir == "" {
		dir = DefaultRunDir(p.Name)
	}
	if succ.RunDir != "" {
		dir = succ.RunDir
	}
	paths, err = master.PathsIn(dir)
	return cfg, s, paths, path, err
}

// DefaultRunDir is $XDG_RUNTIME_DIR/goes/NAME or /tmp/goes-UID/NAME.
func DefaultRunDir(name string) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "goes", name)
	}
	return filepath.Join(os.TempDir(), "goes-"+strconv.Itoa(os.Geteuid()), name)
}

// check builds the program's listeners from cfg as a master would, but
// starts nothing: the errors a start would meet first (a listen URI, a
// handler, a TLS setting, a log level).
func (p *Program[C]) check(cfg C, s Settings) (Plan, error) {
	if _, err := launch.NewLogger(io.Discard, false, s.LogLevel, "master", -1); err != nil {
		return Plan{}, err
	}
	return p.Plan(cfg)
}

func (p *Program[C]) start(c *cli.Context, daemon bool) error {
	menv, err := procenv.DecodeMasterEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("goes: start: %w", err)
	}
	// A daemon reports every failure to the CLI that started it.
	notifier := master.TakeNotifier(menv.NotifyFD)
	cfg, s, paths, cfgPath, err := p.resolveFile(c)
	if err != nil {
		notifier.Fail(err)
		return err
	}
	// A process that will run the master checks this in runMaster, once
	// it knows whether a reload started it.
	if daemon && !menv.Daemon {
		if h, err := Ping(paths); err == nil {
			return fmt.Errorf("%w: %s (pid %d, run dir %s); stop it first", ErrAlreadyRunning, p.Name, h.PID, paths.Dir)
		}
	}
	if err := paths.EnsureDir(); err != nil {
		notifier.Fail(err)
		return err
	}
	if daemon && !menv.Daemon {
		logFile := s.LogFile
		if logFile == "" {
			logFile = paths.Log
		}
		args, err := launch.AbsArgs(os.Args[1:], paths.Dir)
		if err != nil {
			return err
		}
		wait := 30 * time.Second
		if s.ReadyTimeout > 0 {
			wait = s.ReadyTimeout
		}
		pid, err := master.Daemonize(args, logFile, wait+10*time.Second)
		if err != nil {
			return fmt.Errorf("goes: start: %w", err)
		}
		fmt.Fprintf(p.Stdout, "%s started (pid %d, run dir %s, log %s)\n", p.Name, pid, paths.Dir, logFile)
		return nil
	}
	err = p.runMaster(cfg, s, cfgPath, paths, menv, &notifier)
	if err != nil {
		notifier.Fail(err)
		if errors.Is(err, master.ErrRunning) {
			return fmt.Errorf("%w: %v", ErrAlreadyRunning, err)
		}
	}
	return err
}

func (p *Program[C]) stop(c *cli.Context, graceful, quietIfStopped bool) error {
	paths, err := p.resolve(c)
	if err != nil {
		return err
	}
	return p.Stop(paths, graceful, quietIfStopped, answerTimeout(c))
}

func answerTimeout(c *cli.Context) time.Duration {
	for _, x := range c.Lineage() {
		if x.IsSet("timeout") {
			if d := x.Duration("timeout"); d > 0 {
				return d
			}
		}
	}
	return DefaultAnswerTimeout
}

func (p *Program[C]) reload(c *cli.Context) error {
	named := flagString(c, "config") != ""
	cfg, s, paths, path, err := p.resolveFile(c)
	if err == nil && named {
		// The new generation runs this file: refuse one that cannot start
		// before anything starts.
		_, err = p.check(cfg, s)
		if err == nil && s.RunDir != "" {
			if dir, aerr := filepath.Abs(s.RunDir); aerr != nil || dir != paths.Dir {
				err = fmt.Errorf("goes: %s: run_dir %q is not the master's run directory %s (a reload keeps it)", path, s.RunDir, paths.Dir)
			}
		}
	}
	if err != nil {
		if named {
			p.tellRefused(c, err) // the master logs and counts it
			return fmt.Errorf("goes: reload refused, nothing was started: %w", err)
		}
		return err
	}
	if !named {
		path = ""
	}
	return p.Reload(paths, c.Bool("graceful"), path, answerTimeout(c))
}

// checkCommand is the check verb: `NAME check [--config F]` validates the
// config as start would, starting nothing, like nginx -t. It names the
// field or the file at fault and exits non-zero. With --reload (the
// systemd unit's ExecReload) a config it refuses is a refused reload: the
// master serving in the run directory logs it and counts it in
// goes_master_reloads_total{result="refused"}.
func (p *Program[C]) checkCommand() *cli.Command {
	return &cli.Command{
		Name: "check", Usage: "validate the config as start would (fields, addresses, files, certificates, handlers), starting nothing; --reload: a refusal is a refused reload, told to the master",
		Flags: withCommon(&cli.BoolFlag{Name: "reload", Usage: "this check precedes a reload: tell the running master when the config is refused"}),
		Action: func(c *cli.Context) error {
			cfg, s, _, path, err := p.resolveFile(c)
			if err == nil {
				err = p.checkFull(cfg, s)
			}
			if path == "" {
				path = "the default config"
			}
			if err != nil {
				if c.Bool("reload") {
					p.tellRefused(c, err)
				}
				return fmt.Errorf("goes: check: %s: %w", path, err)
			}
			if !launch.OnJournal(1) { // under systemd (ExecStartPre): no plain-text line
				fmt.Fprintf(p.Stdout, "%s: %s is ok\n", p.Name, path)
			}
			return nil
		},
	}
}

// tellRefused tells the master serving in the run directory (if one
// answers) that a reload with the config file of c's flags was refused,
// and why: the master logs it and counts it (ipc.ReloadRequest.Refused).
// The run directory is found as resolve finds it, but from the flags
// only when the config does not parse. It is best effort: a master that
// does not answer misses it, and the CLI prints the refusal anyway.
func (p *Program[C]) tellRefused(c *cli.Context, why error) {
	_, _, paths, path, err := p.resolveFile(c)
	if err != nil {
		dir := flagString(c, "run-dir")
		if dir == "" {
			dir = DefaultRunDir(p.Name)
		}
		if paths, err = master.PathsIn(dir); err != nil {
			return
		}
		path, _ = filepath.Abs(flagString(c, "config"))
	}
	// Only a master that knows the request for what it is: an older one
	// would start the reload it refuses.
	if h, err := Ping(paths); err != nil || !h.RefusedReloads {
		return
	}
	req, err := ipc.New(ipc.TypeReload, 1, ipc.ReloadRequest{Config: path, Refused: why.Error()})
	if err != nil {
		return
	}
	paths.Request(req, 2*time.Second)
}
