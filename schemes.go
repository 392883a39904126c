package goes

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

// scheme is one row of the URI scheme table: what "name://" means to a
// listener (NewGoer, a config file's "listen") and to an outgoing
// connection (NewClient, Goer.NewAsyncConnection). Adding a built-in
// protocol, or a TLS variant of one, is one row.
type scheme struct {
	// listen is a listener's transport; "" when the scheme cannot listen
	// (NewGoer reports it as unknown).
	listen string
	// protocol makes the scheme's protocol, for listeners and clients
	// alike; nil: raw bytes, or the caller's.
	protocol func() protocols.Protocol
	// dial is the transport URI scheme a client of this scheme connects
	// over (connections.NewClient's: tcp, tls, unix, udp); "" takes the
	// URI as it is.
	dial string
	// client, when set, maps a client URI itself (a protocol with a
	// handshake of its own, as WebSocket): it returns the transport URI
	// and sets cfg.Protocol.
	client func(uri string, cfg *connections.ClientConfig) (string, error)
	// noClient, when set, is why the scheme has no client side.
	noClient string
}

func newText() protocols.Protocol      { return text.New() }
func newFrame() protocols.Protocol     { return frame.New() }
func newHTTP() protocols.Protocol      { return http.NewHttpProtocol() }
func newWebSocket() protocols.Protocol { return websocket.New() }

const noHTTPClient = "the http protocol has no client side here; use net/http"

// schemes is the table, by lower-case scheme name.
var schemes = map[string]scheme{
	// Transports: raw bytes, or the protocol the caller gives.
	"tcp":  {listen: TransportTCP},
	"udp":  {listen: TransportUDP},
	"unix": {listen: TransportUnix},
	"tls":  {listen: TransportTLS},
	"ssl":  {listen: TransportTLS},
	// Protocols.
	"text":      {listen: TransportTCP, protocol: newText, dial: "tcp"},
	"frame":     {listen: TransportTCP, protocol: newFrame, dial: "tcp"},
	"http":      {listen: TransportTCP, protocol: newHTTP, noClient: noHTTPClient},
	"https":     {noClient: noHTTPClient},
	"websocket": {listen: TransportTCP, protocol: newWebSocket, client: webSocketClient},
	"ws":        {listen: TransportTCP, protocol: newWebSocket, client: webSocketClient},
	"wss":       {client: webSocketClient},
}

// lookupScheme returns the row of scheme (any case).
func lookupScheme(name string) (scheme, bool) {
	s, ok := schemes[strings.ToLower(name)]
	return s, ok
}

// schemeDefaults maps a listen URI's scheme to its transport and protocol.
func schemeDefaults(name string) (transport string, p protocols.Protocol, err error) {
	s, ok := lookupScheme(name)
	if !ok || s.listen == "" {
		return "", nil, fmt.Errorf("%w: unknown scheme %q", ErrBadAddress, name)
	}
	if s.protocol != nil {
		p = s.protocol()
	}
	return s.listen, p, nil
}

// clientURI maps a client URI to connections.NewClient's transport URI,
// setting cfg.Protocol when the scheme names a protocol (a cfg.Protocol
// given wins, except where the scheme's client says otherwise). A scheme
// not in the table goes to connections.NewClient as it is, which says
// what is wrong.
func clientURI(uri string, cfg *connections.ClientConfig) (string, error) {
	name, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri, nil
	}
	s, ok := lookupScheme(name)
	switch {
	case !ok:
		return uri, nil
	case s.noClient != "":
		return "", fmt.Errorf("%w: %q: %s", connections.ErrBadURI, uri, s.noClient)
	case s.client != nil:
		return s.client(uri, cfg)
	}
	if cfg.Protocol == nil && s.protocol != nil {
		cfg.Protocol = s.protocol()
	}
	if s.dial == "" {
		return uri, nil
	}
	return s.dial + "://" + rest, nil
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
