//go:build unix

package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/cluster"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/accesslog"
	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/internal/tlsconf"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/timer"
)

// Setup is what the root package tells a worker process about the
// listener it serves (its Goer) and the config (Serve).
type Setup struct {
	// Env is what the master passed across exec.
	Env procenv.WorkerEnv
	// Name is the listener's display name; Comm the process's name
	// (ps -o comm, top), "" to keep it.
	Name, Comm string
	// Transport is "tcp", "udp", "unix" or "tls"; Network the socket
	// family ("tcp", "udp", "unix"); Addr the listen address; Key the
	// listener's key among its master's (master.ListenerKey), for the
	// orphan protocol.
	Transport, Network, Addr, Key string
	// TLS describes the TLS listener (transport "tls"), built when the
	// worker starts so that a reload serves renewed certificates.
	TLS tlsconf.Files
	// LogLevel is the config's log_level.
	LogLevel string
	// Cluster gives the worker a cluster Node, on the subjects of
	// ClusterPrefix.
	Cluster       bool
	ClusterPrefix string
	// AccessLog is the path of an HTTP listener's access log ("": none).
	AccessLog string
	// StopTimeout, MaxRequests, MaxMemory, Version, OnStart, OnReload
	// and OnStop are Options'.
	StopTimeout            time.Duration
	MaxRequests, MaxMemory uint64
	Version                string
	OnStart                func() error
	OnReload, OnStop       func()
	// Connections returns the connection runtime's configuration of the
	// listener (its protocol, limits and callbacks), called once the
	// worker's timer wheel, Node and logger exist; Serve sets its
	// Logger, IDBase and accept share.
	Connections func(Process) connections.Config
}

// Process is what a worker's start-up made, for the Goer it serves
// (Setup.Connections).
type Process struct {
	// Index is the worker's index among its listener's workers.
	Index int
	// Wheel is the worker's running timer wheel.
	Wheel *timer.Wheel
	// Node is the worker's cluster Node (nil without a cluster).
	Node *cluster.Node
	// IDBase is the worker's route, or-ed into connection ids.
	IDBase uint64
	// Log is the worker's logger.
	Log zerolog.Logger
}

// Serve is a worker process's start-up and life: it takes the sockets
// its master passed (Inherit), its logger, TLS listener, timer wheel,
// cluster Node and access log, and serves s's listener until Run
// returns.
func Serve(ctx context.Context, s Setup) error {
	wenv := s.Env
	id := wenv.Identity
	if s.Comm != "" {
		launch.SetComm(s.Comm) // for ps -o comm and top: "goes: w3 web"; a failure costs only the name
	}
	var (
		logOut     io.Writer = os.Stderr
		masterGone func()
	)
	if wenv.LogPipe {
		// Once the master is gone the log goes to the file, and a write
		// to its pipe fails (EPIPE) rather than killing the worker.
		logOut, masterGone = PipeLog(wenv.LogFile)
	}
	log, err := launch.NewLogger(logOut, wenv.LogConsole, s.LogLevel, "worker", id.ID)
	if err != nil {
		return err
	}
	in, err := Inherit(wenv, s.Transport == "udp", orphan.Info{
		ID: id.ID, Generation: id.Generation, Route: id.Route, Listener: id.Listener,
		Name: s.Name, Network: s.Network, Addr: s.Addr, Key: s.Key,
	}, log)
	if err != nil {
		return err
	}
	ln := in.Listener
	var tl TLS
	if s.Transport == "tls" {
		conf, err := tlsconf.Build(s.TLS)
		if err != nil {
			return fmt.Errorf("goes: worker %d: tls: %w", id.ID, err)
		}
		if tl, err = TLSListener(ln, conf, in.TicketKeys, TLSLimits{HandshakeTimeout: s.TLS.HandshakeTimeout, MaxHandshakes: s.TLS.MaxHandshakes}, log); err == nil {
			ln = tl.Listener
		}
		if err != nil {
			return fmt.Errorf("goes: worker %d: %w", id.ID, err)
		}
	}
	wheel := timer.New(timer.Options{Logger: log})
	wheel.Start()
	defer wheel.Stop()
	route := id.Route
	var (
		node       *cluster.Node
		nodeStatus func() *ipc.NodeStats
	)
	if s.Cluster {
		if node, route, err = launch.StartNode(wenv.ClusterURL, s.ClusterPrefix, s.Name, id, log); err != nil {
			return err
		}
		// Closed once the connections are gone (Run returned), so that
		// they are reached until the end of a drain.
		defer node.Close()
		nodeStatus = func() *ipc.NodeStats { return launch.NodeStats(node) }
	}
	idBase := uint64(route) << 32
	cc := s.Connections(Process{Index: id.Index, Wheel: wheel, Node: node, IDBase: idBase, Log: log})
	cc.Logger = log
	var alog *accesslog.Writer
	if s.AccessLog != "" {
		hp, ok := cc.Protocol.(*http.Protocol)
		if !ok {
			return fmt.Errorf("goes: worker %d: access_log needs the http protocol", id.ID)
		}
		if alog, err = accesslog.Open(s.AccessLog, id.ID, 0); err != nil {
			return fmt.Errorf("goes: worker %d: %w", id.ID, err)
		}
		defer alog.Close() // after Run: the drained connections' lines too
		hp.AccessLog = alog
		cc.AccessLogDropped = alog.Dropped
	}
	cc.IDBase = idBase
	cc.AcceptShare, cc.AcceptSlot = in.AcceptShare, in.AcceptSlot
	logFile := wenv.LogFile
	return Run(ctx, Options{
		Cluster:      nodeStatus,
		ID:           id.ID,
		Ctl:          in.Ctl,
		Listener:     ln,
		PacketConn:   in.PacketConn,
		Config:       cc,
		StopTimeout:  s.StopTimeout,
		CloseOnDrain: wenv.CloseOnDrain,
		GoingAway:    goingAway,
		Version:      s.Version,
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
			return ReopenLog(logFile)
		},
		MasterGone:  masterGone,
		TicketKeys:  tl.SetKeys,
		TLSCounts:   tl.Counts,
		Orphan:      in.Orphan,
		Timers:      wheel.LenUser,
		MaxRequests: s.MaxRequests,
		MaxMemory:   s.MaxMemory,
		OnStart:     s.OnStart,
		OnReload:    s.OnReload,
		OnStop:      s.OnStop,
	})
}

// goingAway tells a connection that outlived a drain that the server
// goes away, when its protocol has a way to say so
// (protocols.GoingAwayer: WebSocket peers get close code 1001).
func goingAway(c connections.Connection) {
	if p, ok := c.Protocol().(protocols.GoingAwayer); ok {
		p.GoingAway(c)
	}
}
