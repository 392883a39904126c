package goes

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goes-project/goes/internal/ctl"
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
	// Admin is the host:port of the master's admin HTTP endpoint (see
	// Config.Admin, which overrides it; default: the first non-empty
	// Goer.Admin, else none).
	Admin string
	// Stdout and Stderr receive the CLI's output (default os.Stdout,
	// os.Stderr).
	Stdout, Stderr io.Writer
}

// ErrAlreadyRunning is returned by start when a master already serves
// from the run directory.
var ErrAlreadyRunning = ctl.ErrAlreadyRunning

// ErrNotRunning is returned by the verbs that need a running master.
var ErrNotRunning = ctl.ErrNotRunning

// ErrUnsupported is returned by Run on a platform goes does not run on:
// the master and workers need a Unix system (Linux, macOS, the BSDs).
var ErrUnsupported = errors.New("goes: not supported on this platform (goes needs Unix: Linux, macOS, BSD)")

// Run runs the verb in args (os.Args-like: args[0] is the program) for
// goers, and returns when the verb is done: for start in the foreground,
// when the master has stopped. In a worker process (forked by the
// master) it serves that worker's Goer instead.
func Run(args []string, goers ...*Goer) error {
	r := &Runner{Goers: goers}
	return r.Run(args)
}

// RunAll runs the command line of the process (os.Args) for goers and
// exits: 0 when the verb succeeded, 1 with the error on stderr when not
// (see Runner.Main). A program can serve several listeners:
// goes.RunAll(web, admin, udp).
func RunAll(goers ...*Goer) {
	r := &Runner{Goers: goers}
	r.Main(os.Args)
}

// Main runs the verb in args (os.Args) and exits the process: status 0
// when it succeeded, else 1 after writing the error to Stderr. A process
// whose stderr is a JSON log (a daemon master, its workers) writes the
// error as a JSON log line, so that the log file stays JSON lines; the
// CLI writes it as plain text.
func (r *Runner) Main(args []string) {
	if err := r.Run(args); err != nil {
		r.fatal(err)
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
	return r.run(args)
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
	if err := lc.applyTLS(g); err != nil {
		return err
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
	if lc.CallbackGoroutines > 0 {
		g.CallbackGoroutines = lc.CallbackGoroutines
	}
	if lc.NoIOUring {
		g.NoIOUring = true
	}
	// Recycling.
	if lc.MaxRequests > 0 {
		g.MaxRequests = lc.MaxRequests
	}
	if lc.MaxMemory > 0 {
		g.MaxMemory = lc.MaxMemory
	}
	if lc.AcceptMargin != 0 {
		g.AcceptMargin = lc.AcceptMargin
	}
	// Read and send timeouts: a value set (negative: off) overrides.
	if lc.HeaderTimeout != 0 {
		g.HeaderTimeout = time.Duration(lc.HeaderTimeout)
	}
	if lc.BodyTimeout != 0 {
		g.BodyTimeout = time.Duration(lc.BodyTimeout)
	}
	if lc.BodyMinRate != 0 {
		g.BodyMinRate = lc.BodyMinRate
	}
	if lc.KeepAliveTimeout != 0 {
		g.KeepAliveTimeout = time.Duration(lc.KeepAliveTimeout)
	}
	if lc.SendTimeout != 0 {
		g.SendTimeout = time.Duration(lc.SendTimeout)
	}
	if lc.MaxInputMemory != 0 {
		g.MaxInputMemory = lc.MaxInputMemory
	}
	if lc.AccessLog != "" {
		g.AccessLog = lc.AccessLog
	}
	return nil
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

// adminAddr is where the admin endpoint listens: the config's "admin"
// ("off": nowhere), else Runner.Admin, else the first Goer.Admin set.
func (r *Runner) adminAddr(cfg *Config, goers []*Goer) string {
	switch {
	case cfg.Admin == "off":
		return ""
	case cfg.Admin != "":
		return cfg.Admin
	case r.Admin != "":
		return r.Admin
	}
	for _, g := range goers {
		if g.Admin != "" {
			return g.Admin
		}
	}
	return ""
}
