package goes

import (
	"errors"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/scheme"
)

// ErrNotInWorker is returned by the calls that need a worker process
// (NewAsyncConnection) when made elsewhere, e.g. in the master.
var ErrNotInWorker = errors.New("goes: not in a worker (call from OnWorkerStart or a callback)")

// NewAsyncConnection returns an outgoing connection from this worker to
// uri (workerman's AsyncTcpConnection), as NewClient does: "tcp://",
// "tls://", "unix://", "text://", "frame://", "ws://" or "wss://"; or, as
// workerman's AsyncUdpConnection, "udp://" (raw datagrams or
// cfg.Protocol; "text://" and "frame://" with cfg.Transport "udp" too),
// one datagram per message (see connections.Client). It has the
// Connection API and the events of accepted connections (cfg's Handler)
// and is not connected until its Connect method is called; Reconnect
// after a delay, and connections.Pipe to forward between it and another
// connection with backpressure. Its id carries this worker's route, and
// it logs to the worker's logger (cfg's IDBase and Logger are
// overwritten); its timeouts run on the worker's timer wheel unless
// cfg.Wheel says otherwise. It lives as long as the worker process unless
// closed. Call it in a worker: from OnWorkerStart or any callback. Safe
// for concurrent use.
func (g *Goer) NewAsyncConnection(uri string, cfg connections.ClientConfig) (*connections.Client, error) {
	if g.wheel == nil {
		return nil, ErrNotInWorker
	}
	cfg.IDBase = g.idBase
	if cfg.Wheel == nil {
		cfg.Wheel = g.wheel // its timeouts run on the worker's clock
	}
	cfg.Logger = g.log
	return NewClient(uri, cfg)
}

// NewClient returns an outgoing connection to uri, not yet connected (call
// its Connect), outside a worker or in one (Goer.NewAsyncConnection adds
// the worker's route, logger and timer wheel). It is connections.NewClient
// with the protocol URIs on top:
//
//   - tcp://host:port, tls://host:port (ssl://), unix:///path and
//     udp://host:port name a transport; the protocol is cfg.Protocol
//     (nil: raw bytes);
//   - text://host:port and frame://host:port speak that protocol over TCP
//     (over UDP with cfg.Transport "udp"); a cfg.Protocol wins;
//   - ws://host[:port][/path][?query] and wss://... open a WebSocket with
//     the default client settings (websocket.NewClientFor): messages sent
//     before the server's 101 answer are queued, cfg.OnOpen runs once it
//     came. cfg.Protocol must be nil; for subprotocols, compression, an
//     Origin or extra header fields, build the websocket.Client with
//     websocket.NewClientFor and pass its transport URI and the Client
//     as cfg.Protocol.
//
// http:// has no client here (use net/http). A URI it cannot use fails
// with an error wrapping connections.ErrBadURI.
func NewClient(uri string, cfg connections.ClientConfig) (*connections.Client, error) {
	uri, err := scheme.ClientURI(uri, &cfg)
	if err != nil {
		return nil, err
	}
	return connections.NewClient(uri, cfg)
}
