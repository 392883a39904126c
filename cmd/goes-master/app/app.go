// Package app is goes-master: a goes program whose listeners come from a
// JSON config file (see goes.Config) and whose handlers are built in:
//
//   - "hello" answers every message with "hello, goer" (HTTP: 200 with
//     that body);
//   - "echo" (the default) sends every message back.
//
// Without --config it serves default.json, embedded in the binary.
package app

import (
	_ "embed"
	"fmt"
	"os"
	"time"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

//go:embed default.json
var defaultConfig []byte

// DefaultConfig returns the embedded default config.
func DefaultConfig() []byte { return append([]byte(nil), defaultConfig...) }

// Main runs goes-master's command line and exits.
func Main(version string) {
	r := &goes.Runner{
		Name:          "goes-master",
		Version:       version,
		Build:         Build,
		DefaultConfig: defaultConfig,
	}
	if err := r.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Build makes the Goers of cfg's listeners.
func Build(cfg *goes.Config) ([]*goes.Goer, error) {
	goers := make([]*goes.Goer, 0, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		if lc.Listen == "" {
			return nil, fmt.Errorf("goes-master: listener %d has no listen URI", i)
		}
		g := goes.NewGoer(lc.Listen, nil, "")
		g.Name = lc.Name
		g.Count = lc.Count
		g.CertFile, g.KeyFile = lc.CertFile, lc.KeyFile
		g.StopTimeout = time.Duration(lc.StopTimeout)
		g.MaxPackageSize = lc.MaxPackageSize
		g.MaxSendBufferSize = lc.MaxSendBufferSize
		g.IdleTimeout = time.Duration(lc.IdleTimeout)
		h, err := handler(lc.Handler)
		if err != nil {
			return nil, fmt.Errorf("goes-master: listener %d (%s): %w", i, lc.Listen, err)
		}
		g.OnMessage = h
		goers = append(goers, g)
	}
	return goers, nil
}

func handler(name string) (func(connections.Connection, []byte), error) {
	switch name {
	case "", "echo":
		return func(c connections.Connection, data []byte) { c.SendBytes(data, false) }, nil
	case "hello":
		return func(c connections.Connection, _ []byte) { c.Send("hello, goer", false) }, nil
	}
	return nil, fmt.Errorf("unknown handler %q (want echo or hello)", name)
}
