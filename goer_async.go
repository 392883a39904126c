package goes

import (
	"errors"

	"github.com/goes-project/goes/connections"
)

// ErrNotInWorker is returned by the calls that need a worker process
// (NewAsyncConnection) when made elsewhere, e.g. in the master.
var ErrNotInWorker = errors.New("goes: not in a worker (call from OnWorkerStart or a callback)")

// NewAsyncConnection returns an outgoing connection from this worker to
// uri (workerman's AsyncTcpConnection): "tcp://", "tls://", "unix://",
// "text://", "frame://", "ws://" or "wss://"; or, as workerman's
// AsyncUdpConnection, "udp://" (raw datagrams or cfg.Protocol; "text://"
// and "frame://" with cfg.Transport "udp" too), one datagram per message
// (see connections.Client). It has the Connection API
// and the events of accepted connections (cfg's Handler) and is not
// connected until its Connect method is called; Reconnect after a delay,
// and connections.Pipe to forward between it and another connection with
// backpressure. Its id carries this worker's route, and it logs to the
// worker's logger (cfg's IDBase and Logger are overwritten); its timeouts
// run on the worker's timer wheel unless cfg.Wheel says otherwise. It lives as
// long as the worker process unless closed. Call it in a worker: from
// OnWorkerStart or any callback. Safe for concurrent use.
func (g *Goer) NewAsyncConnection(uri string, cfg connections.ClientConfig) (*connections.Client, error) {
	if g.wheel == nil {
		return nil, ErrNotInWorker
	}
	cfg.IDBase = g.idBase
	if cfg.Wheel == nil {
		cfg.Wheel = g.wheel // its timeouts run on the worker's clock
	}
	cfg.Logger = g.log.With().Str("uri", uri).Logger()
	return connections.NewClient(uri, cfg)
}
