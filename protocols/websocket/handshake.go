package websocket

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
)

// keyGUID is appended to Sec-WebSocket-Key to compute the accept value
// (RFC 6455, section 1.3).
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey returns the Sec-WebSocket-Accept value for key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(keyGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// inputHandshake returns the length of the handshake head once it is
// complete. The server side parses it with the HTTP protocol's parser, so
// a malformed head gets the same 400/414/431/505 answers as HTTP.
func (p *Protocol) inputHandshake(c protocols.Conn, st *connState, buf []byte) (int, error) {
	if st.client {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return i + 4, nil
		}
		if len(buf) > http.DefaultMaxHeaderBytes {
			return 0, fmt.Errorf("websocket: handshake answer over %d bytes: %w", http.DefaultMaxHeaderBytes, ErrHandshake)
		}
		return 0, nil
	}
	if st.req == nil {
		st.req = new(http.Request)
	}
	n, err := http.ParseRequest(buf, st.req, p.Limits)
	if err != nil {
		return 0, handshakeError(err)
	}
	return n, nil
}

// handshakeError turns a parse error of the HTTP protocol into its answer.
func handshakeError(err error) error {
	var he *http.Error
	if errors.As(err, &he) {
		return &protocols.ReplyError{Err: fmt.Errorf("websocket: handshake: %w: %w", ErrHandshake, err), Reply: he.Reply()}
	}
	return httpError(400, fmt.Errorf("websocket: handshake: %w: %w", ErrHandshake, err), "")
}

func (p *Protocol) decodeHandshake(c protocols.Conn, st *connState, head []byte) error {
	if st.client {
		return p.clientResponse(c, st, head)
	}
	return p.serverHandshake(c, st, head)
}

// httpError is a handshake failure answered with an HTTP status.
func httpError(status int, err error, extra string) error {
	text := http.StatusText(status)
	body := text + "\n"
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s",
		status, text, len(body), extra, body)
	return &protocols.ReplyError{Err: err, Reply: []byte(b.String())}
}

// hasToken reports whether a comma-separated header value list contains
// token, compared without regard to case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (p *Protocol) serverHandshake(c protocols.Conn, st *connState, head []byte) error {
	req := st.req
	st.req = nil // the state keeps no request once open
	if req == nil {
		req = new(http.Request)
	}
	if _, err := http.ParseRequest(head, req, p.Limits); err != nil {
		return handshakeError(err)
	}
	fail := func(status int, extra, format string, args ...any) error {
		return httpError(status, fmt.Errorf("websocket: handshake: %s: %w", fmt.Sprintf(format, args...), ErrHandshake), extra)
	}
	if req.Method() != "GET" {
		return fail(405, "Allow: GET\r\n", "method %q", req.Method())
	}
	if req.ProtoMinor() < 1 {
		return fail(400, "", "protocol %q", req.Proto())
	}
	if req.ContentLength() != 0 {
		return fail(400, "", "handshake request with a body")
	}
	if !req.HasToken("Upgrade", "websocket") {
		return fail(426, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", "not a websocket upgrade")
	}
	if !req.HasToken("Connection", "upgrade") {
		return fail(400, "", "Connection header without upgrade")
	}
	if v := req.HeaderValues("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return fail(426, "Sec-WebSocket-Version: 13\r\n", "version %q", v)
	}
	keys := req.HeaderValues("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return fail(400, "", "no single Sec-WebSocket-Key")
	}
	key := strings.TrimSpace(keys[0])
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return fail(400, "", "bad Sec-WebSocket-Key %q", key)
	}
	if p.CheckOrigin != nil && !p.CheckOrigin(req.Header("Origin"), req) {
		return fail(403, "", "origin %q refused", req.Header("Origin"))
	}
	sub := p.selectSubprotocol(req.HeaderValues("Sec-WebSocket-Protocol"))
	var dfl deflateParams
	var extResp string
	if p.Compression.Enabled {
		dfl, extResp = p.Compression.negotiate(req.HeaderValues("Sec-WebSocket-Extensions"))
	}
	st.subprotocol, st.dfl = sub, dfl
	if p.OnWebSocketConnect != nil {
		if status := p.OnWebSocketConnect(c, req); status != 0 && status != 101 {
			return fail(status, "", "refused by OnWebSocketConnect with %d", status)
		}
	}
	var b []byte
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = append(b, acceptKey(key)...)
	if sub != "" {
		b = append(b, "\r\nSec-WebSocket-Protocol: "...)
		b = append(b, sub...)
	}
	if extResp != "" {
		b = append(b, "\r\nSec-WebSocket-Extensions: "...)
		b = append(b, extResp...)
	}
	b = append(b, "\r\n\r\n"...)
	if err := c.WriteRaw(b); err != nil {
		return fmt.Errorf("websocket: queue handshake answer: %w", err)
	}
	p.open(c, st)
	return protocols.ErrSkip
}

// open moves the connection to the open phase and runs the runtime's
// opened (client side: StartClient's) and OnOpen.
func (p *Protocol) open(c protocols.Conn, st *connState) {
	st.phase = phaseOpen
	st.flags.Or(flagOpen)
	if st.hs != nil && st.hs.opened != nil {
		st.hs.opened()
		st.hs.opened = nil
	}
	if p.OnOpen != nil {
		p.OnOpen(c)
	}
}

func (p *Protocol) selectSubprotocol(offers []string) string {
	for _, s := range p.Subprotocols {
		if hasToken(offers, s) {
			return s
		}
	}
	return ""
}

// Request is the handshake request given to the hooks: the HTTP
// protocol's request, valid only during the hook.
type Request = http.Request

// fieldList is an ordered list of header fields as received (client side).
type fieldList []http.Field

// get returns the first value of name (case-insensitive), or "".
func (h fieldList) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// values returns every value of name (case-insensitive).
func (h fieldList) values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// parseHead splits an HTTP head into its start line's three fields and its
// header fields.
func parseHead(head []byte) (a, b, c string, h fieldList, err error) {
	s := string(head)
	s = strings.TrimSuffix(s, "\r\n\r\n")
	line, rest, _ := strings.Cut(s, "\r\n")
	a, r, ok1 := strings.Cut(line, " ")
	b, c, _ = strings.Cut(r, " ")
	if !ok1 || a == "" || b == "" {
		return "", "", "", nil, fmt.Errorf("malformed start line %q", line)
	}
	for rest != "" {
		var l string
		l, rest, _ = strings.Cut(rest, "\r\n")
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return "", "", "", nil, fmt.Errorf("malformed header line %q", l)
		}
		h = append(h, http.Field{Name: name, Value: strings.TrimSpace(value)})
	}
	return a, b, c, h, nil
}

// parseStatus parses a response head's status line.
func parseStatus(head []byte) (status int, h fieldList, err error) {
	proto, code, _, h, err := parseHead(head)
	if err != nil {
		return 0, nil, err
	}
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, nil, fmt.Errorf("protocol %q", proto)
	}
	status, err = strconv.Atoi(code)
	if err != nil {
		return 0, nil, fmt.Errorf("status %q", code)
	}
	return status, h, nil
}
