// Package scheme is goes's URI scheme table: what "name://" means to a
// listener (goes.NewGoer, a config file's "listen") and to an outgoing
// connection (goes.NewClient, Goer.NewAsyncConnection). Adding a
// built-in protocol, or a TLS variant of one, is one row of Table.
package scheme

import (
	"fmt"
	"strings"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/frame"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
	"github.com/goes-project/goes/protocols/websocket"
)

// Scheme is one row of the table.
type Scheme struct {
	// Listen is a listener's transport; "" when the scheme cannot listen
	// (goes.NewGoer reports it as unknown).
	Listen string
	// Protocol makes the scheme's protocol, for listeners and clients
	// alike; nil: raw bytes, or the caller's.
	Protocol func() protocols.Protocol
	// Dial is the transport URI scheme a client of this scheme connects
	// over (connections.NewClient's: tcp, tls, unix, udp); "" takes the
	// URI as it is.
	Dial string
	// Client, when set, maps a client URI itself (a protocol with a
	// handshake of its own, as WebSocket): it returns the transport URI
	// and sets cfg.Protocol.
	Client func(uri string, cfg *connections.ClientConfig) (string, error)
	// NoClient, when set, is why the scheme has no client side.
	NoClient string
}

func newText() protocols.Protocol      { return text.New() }
func newFrame() protocols.Protocol     { return frame.New() }
func newHTTP() protocols.Protocol      { return http.NewHttpProtocol() }
func newWebSocket() protocols.Protocol { return websocket.New() }

const noHTTPClient = "the http protocol has no client side here; use net/http"

// The transports of a listener (goes.Transport...).
const (
	tcp  = "tcp"
	udp  = "udp"
	unix = "unix"
	tls  = "tls"
)

// Table is the table, by lower-case scheme name.
var Table = map[string]Scheme{
	// Transports: raw bytes, or the protocol the caller gives.
	"tcp":  {Listen: tcp},
	"udp":  {Listen: udp},
	"unix": {Listen: unix},
	"tls":  {Listen: tls},
	"ssl":  {Listen: tls},
	// Protocols.
	"text":      {Listen: tcp, Protocol: newText, Dial: "tcp"},
	"frame":     {Listen: tcp, Protocol: newFrame, Dial: "tcp"},
	"http":      {Listen: tcp, Protocol: newHTTP, NoClient: noHTTPClient},
	"https":     {Listen: tls, Protocol: newHTTP, NoClient: noHTTPClient},
	"websocket": {Listen: tcp, Protocol: newWebSocket, Client: webSocketClient},
	"ws":        {Listen: tcp, Protocol: newWebSocket, Client: webSocketClient},
	"wss":       {Listen: tls, Protocol: newWebSocket, Client: webSocketClient},
}

// Lookup returns the row of scheme name (any case).
func Lookup(name string) (Scheme, bool) {
	s, ok := Table[strings.ToLower(name)]
	return s, ok
}

// Listen maps a listen URI's scheme to its transport and protocol; ok
// false for a scheme that cannot listen.
func Listen(name string) (transport string, p protocols.Protocol, ok bool) {
	s, ok := Lookup(name)
	if !ok || s.Listen == "" {
		return "", nil, false
	}
	if s.Protocol != nil {
		p = s.Protocol()
	}
	return s.Listen, p, true
}

// ClientURI maps a client URI to connections.NewClient's transport URI,
// setting cfg.Protocol when the scheme names a protocol (a cfg.Protocol
// given wins, except where the scheme's client says otherwise). A scheme
// not in the table goes to connections.NewClient as it is, which says
// what is wrong.
func ClientURI(uri string, cfg *connections.ClientConfig) (string, error) {
	name, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri, nil
	}
	s, ok := Lookup(name)
	switch {
	case !ok:
		return uri, nil
	case s.NoClient != "":
		return "", fmt.Errorf("%w: %q: %s", connections.ErrBadURI, uri, s.NoClient)
	case s.Client != nil:
		return s.Client(uri, cfg)
	}
	if cfg.Protocol == nil && s.Protocol != nil {
		cfg.Protocol = s.Protocol()
	}
	if s.Dial == "" {
		return uri, nil
	}
	return s.Dial + "://" + rest, nil
}

// webSocketClient is the client side of ws://, wss:// and websocket://:
// the default client settings of websocket.NewClientFor.
func webSocketClient(uri string, cfg *connections.ClientConfig) (string, error) {
	if cfg.Protocol != nil {
		return "", fmt.Errorf("%w: %q: ws:// and wss:// set up their own protocol; "+
			"for options give websocket.NewClientFor's transport URI and Client instead", connections.ErrBadURI, uri)
	}
	transport, ws, err := websocket.NewClientFor(uri)
	if err != nil {
		return "", fmt.Errorf("%w: %w", connections.ErrBadURI, err)
	}
	cfg.Protocol = ws
	return transport, nil
}
