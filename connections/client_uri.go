package connections

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// target is where a Client connects, parsed from its URI.
type target struct {
	network   string // "tcp", "unix" or "udp", for net.Dial
	addr      string // host:port or socket path
	transport string // "tcp", "tls", "unix" or "udp": Connection.Transport
	server    string // the host name, for TLS verification
}

// transports is the client's scheme table: the transport URIs, by
// lower-case scheme (the protocol schemes are goes.NewClient's, in the
// root package's schemes.go).
var transports = map[string]struct{ network, transport string }{
	"tcp":  {"tcp", "tcp"},
	"tls":  {"tcp", "tls"},
	"ssl":  {"tcp", "tls"},
	"udp":  {"udp", "udp"},
	"unix": {"unix", "unix"},
}

// parseTarget parses a transport URI: scheme://host:port for tcp, tls (or
// ssl) and udp; unix:///path/to/socket. Protocol URIs (text://, frame://,
// ws://, wss://) are not the runtime's: the layer that knows the protocols
// (goes.NewClient, websocket.NewClientFor) maps them to a transport URI
// and a protocol.
func parseTarget(uri string) (target, error) {
	var t target
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return t, fmt.Errorf("%w: %q: want scheme://host:port", ErrBadURI, uri)
	}
	tr, ok := transports[strings.ToLower(scheme)]
	if !ok {
		return t, fmt.Errorf("%w: %q: %s:// names no transport: connections.NewClient takes a transport URI "+
			"(tcp, tls, unix or udp) and the protocol in ClientConfig.Protocol (goes.NewClient maps protocol URIs: text, frame, ws...)", ErrBadURI, uri, scheme)
	}
	t.network, t.transport = tr.network, tr.transport
	if t.network == "unix" {
		if rest == "" {
			return t, fmt.Errorf("%w: %q: no socket path", ErrBadURI, uri)
		}
		t.addr = rest
		return t, nil
	}
	u, err := url.Parse("x://" + rest)
	if err != nil {
		return t, fmt.Errorf("%w: %q: %w", ErrBadURI, uri, err)
	}
	if u.User != nil || u.Fragment != "" || u.Path != "" || u.RawQuery != "" {
		return t, fmt.Errorf("%w: %q: want %s://host:port, nothing more", ErrBadURI, uri, scheme)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return t, fmt.Errorf("%w: %q: want host:port", ErrBadURI, uri)
	}
	t.server = u.Hostname()
	t.addr = net.JoinHostPort(u.Hostname(), u.Port())
	return t, nil
}

// clientAddr is a Client's remote address while it has no connection.
type clientAddr struct{ network, addr string }

func (a clientAddr) Network() string { return a.network }
func (a clientAddr) String() string  { return a.addr }

// overTransport applies ClientConfig.Transport: "udp" turns a tcp://
// target into a UDP one (as NewGoer's transport argument does for
// listeners); any other value is ignored (the URI names the transport).
func (t *target) overTransport(uri, transport string) error {
	if !strings.EqualFold(transport, "udp") || t.network == "udp" {
		return nil
	}
	if t.network != "tcp" || t.transport != "tcp" {
		return fmt.Errorf("%w: %q: transport udp takes only tcp:// or udp:// URIs", ErrBadURI, uri)
	}
	t.network, t.transport = "udp", "udp"
	return nil
}
