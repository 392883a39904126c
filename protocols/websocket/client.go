package websocket

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"strings"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
)

// NewClient returns the client side of the protocol, for outgoing
// connections: frames it sends are masked, frames it receives must not be,
// and the connection opens when the server's 101 answer checks out. Call
// StartClient on each connection once it is established.
func NewClient() *Protocol { return &Protocol{client: true} }

// ClientRequest describes a client's opening handshake.
type ClientRequest struct {
	Host         string       // Host header, "host:port"
	Path         string       // request target, "/" when empty
	Origin       string       // Origin header, omitted when empty
	Subprotocols []string     // offered subprotocols, most preferred first
	Header       []http.Field // extra header fields
}

// StartClient queues the opening handshake on a freshly connected client
// connection of a NewClient protocol. Sends fail with ErrNotOpen until the
// server's answer arrives; OnOpen runs then. Call it from the connection's
// goroutine (OnConnect).
func (p *Protocol) StartClient(c protocols.Conn, r ClientRequest) error {
	if !p.client {
		return fmt.Errorf("websocket: StartClient on a server protocol")
	}
	st := p.state(c)
	if st.phase != phaseHandshake || st.acceptKey != "" {
		return fmt.Errorf("websocket: StartClient twice")
	}
	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	st.acceptKey = acceptKey(key)
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
	st.offered = r.Subprotocols
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
	if st.acceptKey == "" {
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
	if got := h.get("Sec-WebSocket-Accept"); got != st.acceptKey {
		return fmt.Errorf("websocket: handshake answer with accept %q, want %q: %w", got, st.acceptKey, ErrHandshake)
	}
	if sub := h.get("Sec-WebSocket-Protocol"); sub != "" {
		if !hasToken([]string{strings.Join(st.offered, ",")}, sub) {
			return fmt.Errorf("websocket: server chose subprotocol %q not offered: %w", sub, ErrHandshake)
		}
		st.subprotocol = sub
	}
	d, err := p.Compression.parseServerResponse(h.values("Sec-WebSocket-Extensions"))
	if err != nil {
		return err
	}
	st.dfl = d
	st.offered = nil
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
