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
	"strings"
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
		scheme, _, _ := strings.Cut(lc.Listen, "://")
		scheme = strings.ToLower(scheme)
		var g *goes.Goer
		switch scheme {
		case "websocket", "ws":
			if g = goes.NewGoer(lc.Listen, nil, ""); g.Protocol == nil {
				// No protocol package for the scheme in this build: a
				// stand-in that answers raw reads.
				g = goes.NewGoer("tcp://"+g.Addr, nil, "")
				g.OnMessage = standIn(scheme)
			}
		default:
			g = goes.NewGoer(lc.Listen, nil, "")
		}
		g.Name = lc.Name
		g.Count = lc.Count
		g.CertFile, g.KeyFile = lc.CertFile, lc.KeyFile
		g.StopTimeout = time.Duration(lc.StopTimeout)
		g.MaxPackageSize = lc.MaxPackageSize
		g.MaxSendBufferSize = lc.MaxSendBufferSize
		g.IdleTimeout = time.Duration(lc.IdleTimeout)
		if g.OnMessage == nil {
			h, err := handler(lc.Handler)
			if err != nil {
				return nil, fmt.Errorf("goes-master: listener %d (%s): %w", i, lc.Listen, err)
			}
			g.OnMessage = h
		}
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

const (
	noWebSocket = "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 57\r\n\r\nwebsocket is not supported by this build of goes-master.\n"
)

// standIn serves the websocket scheme while this build has no WebSocket
// protocol: it refuses the upgrade with a clear HTTP answer.
func standIn(string) func(connections.Connection, []byte) {
	return func(c connections.Connection, _ []byte) {
		c.Send(noWebSocket, true)
		c.Close()
	}
}
