//go:build unix

package goes

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/goes-project/goes/internal/ctl"
	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/master"
)

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

func (r *Runner) app() *cli.App {
	daemon := &cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run detached in the background"}
	graceful := &cli.BoolFlag{Name: "graceful", Aliases: []string{"g"}, Usage: "let connections finish (bounded by the stop timeout)"}
	asJSON := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	timeout := &cli.DurationFlag{Name: "timeout", Value: DefaultAnswerTimeout,
		Usage: "give up when the master does not answer within this; a long drain goes on while the master reports its progress (stop, reload)"}
	return &cli.App{
		Name:            r.Name,
		Usage:           "a goes server: master and workers",
		Version:         r.Version,
		Writer:          r.Stdout,
		ErrWriter:       r.Stderr,
		Flags:           commonFlags(),
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // Run returns errors, RunAll exits
		Commands: []*cli.Command{
			{
				Name: "start", Usage: "start serving (foreground; -d: as a daemon)",
				Flags:  withCommon(daemon),
				Action: func(c *cli.Context) error { return r.start(c, c.Bool("daemon")) },
			},
			{
				Name: "stop", Usage: "stop (fast; -g: graceful)",
				Flags:  withCommon(graceful, timeout),
				Action: func(c *cli.Context) error { return r.stop(c, c.Bool("graceful"), false) },
			},
			{
				Name: "restart", Usage: "stop, then start (a config that cannot start is refused first)",
				Flags: withCommon(daemon, graceful, timeout),
				Action: func(c *cli.Context) error {
					// What cannot start is refused before what serves stops.
					cfg, _, err := r.resolve(c)
					if err == nil {
						err = r.check(cfg)
					}
					if err != nil {
						return fmt.Errorf("goes: restart refused, nothing was stopped: %w", err)
					}
					if err := r.stop(c, c.Bool("graceful"), true); err != nil {
						return err
					}
					return r.start(c, c.Bool("daemon"))
				},
			},
			{
				Name: "reload", Usage: "upgrade to the binary now on disk without dropping connections (SIGHUP); -g: let old connections finish without a time bound; " +
					"--config FILE: the new generation runs FILE (checked first)",
				Flags:  withCommon(graceful, timeout),
				Action: r.reload,
			},
			r.checkCommand(),
			{
				Name: "status", Usage: "show the master and its workers",
				Flags: withCommon(
					&cli.BoolFlag{Name: "d", Usage: "refresh every second until Ctrl-C"},
					asJSON, timeout),
				Action: r.status,
			},
			{
				Name: "connections", Usage: "list the open connections",
				Flags:  withCommon(asJSON, timeout),
				Action: r.connections,
			},
		},
	}
}

// resolve loads the config and finds the run directory.
func (r *Runner) resolve(c *cli.Context) (*Config, master.Paths, error) {
	cfg, paths, _, err := r.resolveFile(c)
	return cfg, paths, err
}

// resolveFile is resolve, and the absolute path of the config file it read
// ("" for the program's default). In a master that a reload started, the
// config file and the run directory handed on by the previous master
// (procenv.SuccessorEnv) win over the arguments.
func (r *Runner) resolveFile(c *cli.Context) (*Config, master.Paths, string, error) {
	succ, err := procenv.DecodeSuccessorEnv(os.Getenv)
	if err != nil {
		return nil, master.Paths{}, "", fmt.Errorf("goes: %w", err)
	}
	cfg := &Config{}
	path := flagString(c, "config")
	if succ.ConfigFile != "" {
		path = succ.ConfigFile
	}
	switch {
	case path != "":
		if path, err = filepath.Abs(path); err != nil {
			return nil, master.Paths{}, "", fmt.Errorf("goes: config: %w", err)
		}
		if cfg, err = LoadConfig(path); err != nil {
			return nil, master.Paths{}, "", err
		}
	case r.DefaultConfig != nil:
		if cfg, err = ParseConfig(r.DefaultConfig); err != nil {
			return nil, master.Paths{}, "", err
		}
	}
	dir := flagString(c, "run-dir")
	if dir == "" {
		dir = cfg.RunDir
	}
	if dir == "" {
		dir = defaultRunDir(r.Name)
	}
	if succ.RunDir != "" {
		dir = succ.RunDir
	}
	paths, err := master.PathsIn(dir)
	return cfg, paths, path, err
}

// check builds the program's listeners from cfg as a master would, but
// starts nothing: the errors a start would meet first (a listen URI, a
// handler, a TLS setting, a log level).
func (r *Runner) check(cfg *Config) error {
	if _, err := launch.NewLogger(io.Discard, false, cfg.LogLevel, "master", -1); err != nil {
		return err
	}
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	for _, g := range goers {
		if err := g.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) start(c *cli.Context, daemon bool) error {
	menv, err := procenv.DecodeMasterEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("goes: start: %w", err)
	}
	// A daemon reports every failure to the CLI that started it.
	notifier := master.TakeNotifier(menv.NotifyFD)
	cfg, paths, cfgPath, err := r.resolveFile(c)
	if err != nil {
		notifier.Fail(err)
		return err
	}
	// A process that will run the master checks this in runMaster, once
	// it knows whether a reload started it.
	if daemon && !menv.Daemon {
		if h, err := ctl.Ping(paths); err == nil {
			return fmt.Errorf("%w: %s (pid %d, run dir %s); stop it first", ErrAlreadyRunning, r.Name, h.PID, paths.Dir)
		}
	}
	if err := paths.EnsureDir(); err != nil {
		notifier.Fail(err)
		return err
	}
	if daemon && !menv.Daemon {
		logFile := cfg.LogFile
		if logFile == "" {
			logFile = paths.Log
		}
		args, err := launch.AbsArgs(os.Args[1:], paths.Dir)
		if err != nil {
			return err
		}
		wait := 30 * time.Second
		if cfg.ReadyTimeout > 0 {
			wait = time.Duration(cfg.ReadyTimeout)
		}
		pid, err := master.Daemonize(args, logFile, wait+10*time.Second)
		if err != nil {
			return fmt.Errorf("goes: start: %w", err)
		}
		fmt.Fprintf(r.Stdout, "%s started (pid %d, run dir %s, log %s)\n", r.Name, pid, paths.Dir, logFile)
		return nil
	}
	err = r.runMaster(cfg, cfgPath, paths, menv, &notifier)
	if err != nil {
		notifier.Fail(err)
		if errors.Is(err, master.ErrRunning) {
			return fmt.Errorf("%w: %v", ErrAlreadyRunning, err)
		}
	}
	return err
}

func (r *Runner) ctl() ctl.CLI { return ctl.CLI{Name: r.Name, Stdout: r.Stdout, Stderr: r.Stderr} }

func (r *Runner) stop(c *cli.Context, graceful, quietIfStopped bool) error {
	_, paths, err := r.resolve(c)
	if err != nil {
		return err
	}
	return r.ctl().Stop(paths, graceful, quietIfStopped, answerTimeout(c))
}

// DefaultAnswerTimeout is how long the CLI waits for the master to answer
// (--timeout): a request, and, while a stop or reload drains, between two
// of the master's progress reports.
const DefaultAnswerTimeout = ctl.DefaultAnswerTimeout

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

func (r *Runner) reload(c *cli.Context) error {
	named := flagString(c, "config") != ""
	cfg, paths, path, err := r.resolveFile(c)
	if err == nil && named {
		// The new generation runs this file: refuse one that cannot start
		// before anything starts.
		err = r.check(cfg)
		if err == nil && cfg.RunDir != "" {
			if dir, aerr := filepath.Abs(cfg.RunDir); aerr != nil || dir != paths.Dir {
				err = fmt.Errorf("goes: %s: run_dir %q is not the master's run directory %s (a reload keeps it)", path, cfg.RunDir, paths.Dir)
			}
		}
	}
	if err != nil {
		if named {
			r.tellRefused(c, err) // the master logs and counts it
			return fmt.Errorf("goes: reload refused, nothing was started: %w", err)
		}
		return err
	}
	if !named {
		path = ""
	}
	return r.ctl().Reload(paths, c.Bool("graceful"), path, answerTimeout(c))
}

func (r *Runner) status(c *cli.Context) error {
	_, paths, err := r.resolve(c)
	if err != nil {
		return err
	}
	return r.ctl().Status(paths, c.Bool("json"), c.Bool("d"), answerTimeout(c))
}

func (r *Runner) connections(c *cli.Context) error {
	_, paths, err := r.resolve(c)
	if err != nil {
		return err
	}
	return r.ctl().Connections(paths, c.Bool("json"), answerTimeout(c))
}
