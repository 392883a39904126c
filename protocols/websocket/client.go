package websocket

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
)

// NewClient returns the client side of the codec, for outgoing
// connections: frames it sends are masked, frames it receives must not be,
// and a connection opens when the server's 101 answer checks out. Give it
// to a Client (or use NewClientFor), which sends the opening handshake.
// Like any Protocol it may be shared by many connections, and its fields
// (Compression, MaxMessageSize, CloseTimeout, OnPing, OnClose, ...) must
// not change once it serves.
func NewClient() *Protocol { return &Protocol{client: true} }

// ClientRequest describes a client's opening handshake.
type ClientRequest struct {
	Host         string       // Host header, "host" or "host:port"
	Path         string       // request target, "/" when empty
	Origin       string       // Origin header, omitted when empty
	Subprotocols []string     // offered subprotocols, most preferred first
	Header       []http.Field // extra header fields
}

// Client is the protocol of an outgoing WebSocket connection: the client
// codec (a NewClient Protocol) bound to the handshake request of one URI.
// It implements protocols.ClientHandshaker, so a connections.Client made
// with it over a stream transport sends Request once connected, holds
// back the messages sent before the server's 101 answer and delivers them
// once the answer checks out; the ClientConfig's OnOpen runs then. A
// refused upgrade is reported to OnError as ErrHandshake and closes the
// connection.
//
// Set its fields before the first connection; then a Client is read-only
// and safe for concurrent use, and may serve every reconnection of its
// connections.Client.
type Client struct {
	// Protocol is the codec; it must come from NewClient. Its fields
	// configure compression (Compression), the message limit
	// (MaxMessageSize), the closing handshake's bound (CloseTimeout) and
	// the control-frame hooks.
	*Protocol
	// Request is the opening handshake: Host and Path come from the URI
	// (NewClientFor), Origin, Subprotocols and Header are yours.
	Request ClientRequest
	// Binary makes Send send binary frames from the start (SetBinary
	// changes it per connection).
	Binary bool
}

var (
	_ protocols.Protocol         = (*Client)(nil)
	_ protocols.ClientHandshaker = (*Client)(nil)
)

// NewClientFor returns the Client for uri, ws://host[:port][/path][?query]
// or wss://... (port 80 and 443 by default; a user part or a fragment is
// refused), with a fresh NewClient codec, and transport, the URI of the
// stream to open for it: tcp://host:port for ws://, tls://host:port for
// wss://. Give both to connections.NewClient, or to goes.NewClient and
// Goer.NewAsyncConnection, which accept ws:// and wss:// themselves when
// the defaults will do:
//
//	transport, ws, err := websocket.NewClientFor("wss://example.com/chat")
//	ws.Request.Subprotocols = []string{"chat.v1"}
//	ws.Compression.Enabled = true
//	cl, err := connections.NewClient(transport, connections.ClientConfig{
//		Config: connections.Config{Protocol: ws, Handler: h},
//		OnOpen: func(c connections.Connection) { c.Send("hello", false) },
//	})
func NewClientFor(uri string) (transport string, c *Client, err error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "", nil, fmt.Errorf("websocket: client uri %q: want ws://host[:port][/path] or wss://...", uri)
	}
	var tr, port string
	switch strings.ToLower(scheme) {
	case "ws", "websocket":
		tr, port = "tcp", "80"
	case "wss":
		tr, port = "tls", "443"
	default:
		return "", nil, fmt.Errorf("websocket: client uri %q: scheme %q is not ws or wss", uri, scheme)
	}
	u, err := url.Parse("x://" + rest)
	if err != nil {
		return "", nil, fmt.Errorf("websocket: client uri %q: %w", uri, err)
	}
	if u.User != nil || u.Fragment != "" {
		return "", nil, fmt.Errorf("websocket: client uri %q: user info and fragments are not allowed", uri)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	if u.Hostname() == "" {
		return "", nil, fmt.Errorf("websocket: client uri %q: no host", uri)
	}
	c = &Client{Protocol: NewClient(), Request: ClientRequest{Host: u.Host, Path: u.RequestURI()}}
	return tr + "://" + net.JoinHostPort(u.Hostname(), port), c, nil
}

// StartClient queues the opening handshake on c, a freshly connected
// connection, and makes the connection call opened once the server's
// answer checks out (before OnOpen of the codec). Sends fail with
// ErrNotOpen until then. The runtime calls it from the connection's
// goroutine (protocols.ClientHandshaker); opened may be nil.
func (cl *Client) StartClient(c protocols.Conn, opened func()) error {
	p := cl.Protocol
	if p == nil || !p.client {
		return fmt.Errorf("websocket: Client without a NewClient codec")
	}
	st := p.state(c)
	if st.phase != phaseHandshake || st.hs != nil {
		return fmt.Errorf("websocket: StartClient twice")
	}
	r := &cl.Request
	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	st.hs = &clientHandshake{acceptKey: acceptKey(key), opened: opened}
	if cl.Binary {
		st.flags.Or(flagBinary)
	}
	path := r.Path
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, r.Host, key)
	if r.Origin != "" {
		fmt.Fprintf(&b, "Origin: %s\r\n", r.Origin)
	}
	if len(r.Subprotocols) > 0 {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(r.Subprotocols, ", "))
	}
	if p.Compression.Enabled {
		fmt.Fprintf(&b, "Sec-WebSocket-Extensions: %s\r\n", p.Compression.clientOffer())
	}
	st.hs.offered = r.Subprotocols
	for _, f := range r.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", f.Name, f.Value)
	}
	b.WriteString("\r\n")
	if err := c.WriteRaw([]byte(b.String())); err != nil {
		return fmt.Errorf("websocket: queue handshake: %w", err)
	}
	return nil
}

// clientResponse checks the server's answer to StartClient.
func (p *Protocol) clientResponse(c protocols.Conn, st *connState, head []byte) error {
	if st.hs == nil {
		return fmt.Errorf("websocket: data from server before StartClient: %w", ErrHandshake)
	}
	status, h, err := parseStatus(head)
	if err != nil {
		return fmt.Errorf("websocket: handshake answer: %w: %w", ErrHandshake, err)
	}
	if status != 101 {
		return fmt.Errorf("websocket: handshake answered with status %d: %w", status, ErrHandshake)
	}
	if !hasToken(h.values("Upgrade"), "websocket") || !hasToken(h.values("Connection"), "upgrade") {
		return fmt.Errorf("websocket: handshake answer without upgrade headers: %w", ErrHandshake)
	}
	if got := h.get("Sec-WebSocket-Accept"); got != st.hs.acceptKey {
		return fmt.Errorf("websocket: handshake answer with accept %q, want %q: %w", got, st.hs.acceptKey, ErrHandshake)
	}
	if sub := h.get("Sec-WebSocket-Protocol"); sub != "" {
		if !hasToken([]string{strings.Join(st.hs.offered, ",")}, sub) {
			return fmt.Errorf("websocket: server chose subprotocol %q not offered: %w", sub, ErrHandshake)
		}
		st.subprotocol = sub
	}
	d, err := p.Compression.parseServerResponse(h.values("Sec-WebSocket-Extensions"))
	if err != nil {
		return err
	}
	st.dfl = d
	st.hs.offered = nil
	p.open(c, st)
	return protocols.ErrSkip
}

// newMaskKey returns a fresh mask key for client frames, or a zero key
// when masked is false. RFC 6455 asks for unpredictable keys: they come
// from the runtime's ChaCha8 generator, which is seeded from the system.
func newMaskKey(masked bool) [4]byte {
	if !masked {
		return [4]byte{}
	}
	v := mrand.Uint32()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}
