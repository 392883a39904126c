package connections

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/frame"
	"github.com/goes-project/goes/protocols/text"
)

// target is where a Client connects, parsed from its URI.
type target struct {
	network   string // "tcp", "unix" or "udp", for net.Dial
	addr      string // host:port or socket path
	transport string // "tcp", "tls", "unix" or "udp": Connection.Transport
	host      string // the URI's host[:port]: the WebSocket Host field
	server    string // the host name, for TLS verification
	path      string // WebSocket request target
	ws        bool   // ws:// or wss://
	proto     protocols.Protocol
}

// parseTarget parses a client URI: scheme://host:port for tcp, tls (or
// ssl), text, frame and udp; ws://host[:port][/path][?query] and wss://...,
// whose port defaults to 80 and 443; unix:///path/to/socket.
func parseTarget(uri string) (target, error) {
	var t target
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return t, fmt.Errorf("%w: %q: want scheme://host:port", ErrBadURI, uri)
	}
	t.network, t.transport = "tcp", "tcp"
	defPort := ""
	switch strings.ToLower(scheme) {
	case "tcp":
	case "tls", "ssl":
		t.transport = "tls"
	case "text":
		t.proto = text.New()
	case "frame":
		t.proto = frame.New()
	case "udp":
		t.network, t.transport = "udp", "udp"
	case "ws", "websocket":
		t.ws, defPort = true, "80"
	case "wss":
		t.ws, defPort, t.transport = true, "443", "tls"
	case "unix":
		if rest == "" {
			return t, fmt.Errorf("%w: %q: no socket path", ErrBadURI, uri)
		}
		t.network, t.transport, t.addr = "unix", "unix", rest
		return t, nil
	case "http", "https":
		return t, fmt.Errorf("%w: %q: the http protocol has no client side here; use net/http", ErrBadURI, uri)
	default:
		return t, fmt.Errorf("%w: %q: unknown scheme %q (want tcp, tls, text, frame, ws, wss, unix or udp)", ErrBadURI, uri, scheme)
	}
	u, err := url.Parse("x://" + rest)
	if err != nil {
		return t, fmt.Errorf("%w: %q: %w", ErrBadURI, uri, err)
	}
	if u.User != nil || u.Fragment != "" {
		return t, fmt.Errorf("%w: %q: user info and fragments are not allowed", ErrBadURI, uri)
	}
	if !t.ws && (u.Path != "" || u.RawQuery != "") {
		return t, fmt.Errorf("%w: %q: only ws:// and wss:// take a path", ErrBadURI, uri)
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	if u.Hostname() == "" || port == "" {
		return t, fmt.Errorf("%w: %q: want host:port", ErrBadURI, uri)
	}
	t.host = u.Host
	t.server = u.Hostname()
	t.addr = net.JoinHostPort(u.Hostname(), port)
	t.path = u.RequestURI()
	return t, nil
}

// clientAddr is a Client's remote address while it has no connection.
type clientAddr struct{ network, addr string }

func (a clientAddr) Network() string { return a.network }
func (a clientAddr) String() string  { return a.addr }

// overTransport applies ClientConfig.Transport: "udp" turns a tcp://,
// text:// or frame:// target into a UDP one, keeping the scheme's
// protocol; any other value is ignored (the URI names the transport).
func (t *target) overTransport(uri, transport string) error {
	if !strings.EqualFold(transport, "udp") || t.network == "udp" {
		return nil
	}
	if t.network != "tcp" || t.transport != "tcp" || t.ws {
		return fmt.Errorf("%w: %q: transport udp takes only tcp://, text://, frame:// or udp:// URIs", ErrBadURI, uri)
	}
	t.network, t.transport = "udp", "udp"
	return nil
}
