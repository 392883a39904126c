//go:build unix

package goes

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/goes-project/goes/internal/ctl"
	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
)

// checkCommand is the check verb: `NAME check [--config F]` validates the
// config as start would, starting nothing, like nginx -t. It names the
// field or the file at fault and exits non-zero. With --reload (the
// systemd unit's ExecReload) a config it refuses is a refused reload: the
// master serving in the run directory logs it and counts it in
// goes_master_reloads_total{result="refused"}.
func (r *Runner) checkCommand() *cli.Command {
	return &cli.Command{
		Name: "check", Usage: "validate the config as start would (fields, addresses, files, certificates, handlers), starting nothing; --reload: a refusal is a refused reload, told to the master",
		Flags: withCommon(&cli.BoolFlag{Name: "reload", Usage: "this check precedes a reload: tell the running master when the config is refused"}),
		Action: func(c *cli.Context) error {
			cfg, _, path, err := r.resolveFile(c)
			if err == nil {
				err = r.checkFull(cfg)
			}
			if path == "" {
				path = "the default config"
			}
			if err != nil {
				if c.Bool("reload") {
					r.tellRefused(c, err)
				}
				return fmt.Errorf("goes: check: %s: %w", path, err)
			}
			if !launch.OnJournal(1) { // under systemd (ExecStartPre): no plain-text line
				fmt.Fprintf(r.Stdout, "%s: %s is ok\n", r.Name, path)
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
func (r *Runner) tellRefused(c *cli.Context, why error) {
	_, paths, path, err := r.resolveFile(c)
	if err != nil {
		dir := flagString(c, "run-dir")
		if dir == "" {
			dir = defaultRunDir(r.Name)
		}
		if paths, err = master.PathsIn(dir); err != nil {
			return
		}
		path, _ = filepath.Abs(flagString(c, "config"))
	}
	// Only a master that knows the request for what it is: an older one
	// would start the reload it refuses.
	if h, err := ctl.Ping(paths); err != nil || !h.RefusedReloads {
		return
	}
	req, err := ipc.New(ipc.TypeReload, 1, ipc.ReloadRequest{Config: path, Refused: why.Error()})
	if err != nil {
		return
	}
	paths.Request(req, 2*time.Second)
}

// checkFull is check and what only a running master meets later: the
// admin address and token file, the TLS certificates, a static handler's
// root, the log file's directory.
func (r *Runner) checkFull(cfg *Config) error {
	if err := r.check(cfg); err != nil {
		return err
	}
	goers, err := r.goers(cfg)
	if err != nil {
		return err
	}
	if err := checkAdminAddr(r.adminAddr(cfg, goers)); err != nil {
		return err
	}
	if _, err := readAdminToken(cfg.AdminTokenFile); err != nil {
		return err
	}
	for i, g := range goers {
		if g.Transport != TransportTLS {
			continue
		}
		if _, err := g.buildTLSConfig(); err != nil {
			return fmt.Errorf("listeners[%d] (%s): %w", i, g.name(), err)
		}
	}
	for i, lc := range cfg.Listeners {
		if lc.AccessLog != "" {
			if fi, err := os.Stat(filepath.Dir(lc.AccessLog)); err != nil {
				return fmt.Errorf("listeners[%d]: access_log: %w", i, err)
			} else if !fi.IsDir() {
				return fmt.Errorf("listeners[%d]: access_log %s: %s is not a directory", i, lc.AccessLog, filepath.Dir(lc.AccessLog))
			}
		}
		if lc.Root == "" {
			continue
		}
		if fi, err := os.Stat(lc.Root); err != nil {
			return fmt.Errorf("listeners[%d]: root: %w", i, err)
		} else if !fi.IsDir() {
			return fmt.Errorf("listeners[%d]: root %s is not a directory", i, lc.Root)
		}
	}
	if cfg.LogFile != "" {
		if fi, err := os.Stat(filepath.Dir(cfg.LogFile)); err != nil {
			return fmt.Errorf("log_file: %w", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("log_file %s: %s is not a directory", cfg.LogFile, filepath.Dir(cfg.LogFile))
		}
	}
	if cfg.BlockProfileRate < 0 {
		return fmt.Errorf("block_profile_rate %d: want 0 (off) or more", cfg.BlockProfileRate)
	}
	if cfg.MutexProfileFraction < 0 {
		return fmt.Errorf("mutex_profile_fraction %d: want 0 (off) or more", cfg.MutexProfileFraction)
	}
	return nil
}

// checkAdminAddr checks the admin endpoint's address: host:port, or
// unix:///PATH in an existing directory.
func checkAdminAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("admin %q: want unix:///ABSOLUTE/PATH", addr)
		}
		return nil // its directory may be the run directory, made at start
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("admin %q: want host:port or unix:///PATH: %w", addr, err)
	}
	if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
		return fmt.Errorf("admin %q: %w", addr, err)
	}
	return nil
}

// readAdminToken reads the admin token from path ("": none). A file that
// is missing, unreadable, empty or readable by other users (not owner or
// group) is an error that names it: a start refuses to serve the admin
// endpoint unprotected by mistake.
func readAdminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin_token_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("admin_token_file %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("admin_token_file %s: readable by every user (mode %v); chmod o-r it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin_token_file %s: empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("admin_token_file " + path + ": the token is one word on one line")
	}
	return tok, nil
}

// setProfileRates applies the config's block and mutex profile rates to
// this process (master or worker).
func setProfileRates(cfg *Config) {
	if cfg.BlockProfileRate > 0 {
		runtime.SetBlockProfileRate(cfg.BlockProfileRate)
	}
	if cfg.MutexProfileFraction > 0 {
		runtime.SetMutexProfileFraction(cfg.MutexProfileFraction)
	}
}
