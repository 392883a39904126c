package websocket_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	ws "github.com/goes-project/goes/protocols/websocket"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLimit is the message size limit of the servers under test.
const testLimit = 256 << 10

// echoHandler echoes every message with the type it came with.
func echoHandler() connections.Handler {
	return connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
		ws.SetBinary(c, ws.MessageType(c) == ws.OpBinary)
		c.SendBytes(data, false)
	}}
}

// serveGoes serves p with h on a loopback listener and returns the address.
func serveGoes(t testing.TB, p *ws.Protocol, h connections.Handler) string {
	t.Helper()
	return serveOn(t, connections.NewServer(goesConfig(t, p, h)))
}

// goesConfig is the configuration of the servers under test: p (its
// message limit testLimit unless set) with h.
func goesConfig(t testing.TB, p *ws.Protocol, h connections.Handler) connections.Config {
	if p.MaxMessageSize == 0 {
		p.MaxMessageSize = testLimit
	}
	return connections.Config{
		Protocol:       p,
		Handler:        h,
		MaxPackageSize: max(2*testLimit, p.MaxMessageSize+1024),
		Logger:         testkit.Logger(t).Level(zerolog.InfoLevel),
	}
}

// serveGoesTLS is serveGoes over TLS (wss): a connections.TLSListener,
// which the event loops serve themselves (on Linux), as goes-master's
// wss:// workers do.
func serveGoesTLS(t testing.TB, p *ws.Protocol, h connections.Handler) (string, *connections.Server) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{testkit.SelfSigned(t)}}
	cfg := goesConfig(t, p, h)
	cfg.Transport = "tls"
	srv := connections.NewServer(cfg)
	return serveLn(t, srv, &tlsListener{Listener: tls.NewListener(raw, conf), raw: raw, conf: conf}), srv
}

// tlsListener is a connections.TLSListener over a loopback listener.
type tlsListener struct {
	net.Listener
	raw  net.Listener
	conf *tls.Config
}

func (l *tlsListener) TLS() (net.Listener, connections.TLSServing) {
	return l.raw, connections.TLSServing{Config: l.conf}
}

// serveOn serves srv on a loopback listener until the test ends and
// returns the address.
func serveOn(t testing.TB, srv *connections.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveLn(t, srv, ln)
}

// serveLn serves srv on ln until the test ends and returns its address.
func serveLn(t testing.TB, srv *connections.Server, ln net.Listener) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

// serveReference serves a coder/websocket echo server on net/http: the
// known-good implementation the conformance expectations are checked
// against. coder/websocket leaves UTF-8 checks to the application, so the
// echo handler checks whole text messages and closes with 1007, as an
// application on it would.
func serveReference(t testing.TB, compress bool) string {
	t.Helper()
	mode := websocket.CompressionDisabled
	if compress {
		mode = websocket.CompressionContextTakeover
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: mode, CompressionThreshold: 1})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(testLimit)
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageText && !utf8.Valid(data) {
				c.Close(websocket.StatusInvalidFramePayloadData, "invalid utf-8")
				return
			}
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		hs.Close()
	})
	return ln.Addr().String()
}

// rawClient is a hand-driven WebSocket client that writes frames exactly
// as the test builds them, whole or a byte at a time.
type rawClient struct {
	t        testing.TB
	nc       net.Conn
	br       *bufio.Reader
	bytewise bool
	resp     string // the handshake answer head
	inflate  bool   // permessage-deflate negotiated: inflate RSV1 messages
	window   []byte // server compression window (context takeover)
}

// dialRaw connects and sends a handshake with the extra header lines.
func dialRaw(t testing.TB, addr, extra string, bytewise bool) *rawClient {
	t.Helper()
	return dialRawTLS(t, addr, nil, extra, bytewise)
}

// dialRawTLS is dialRaw over TLS when conf is not nil (wss): in bytewise
// mode each byte then travels in a record of its own.
func dialRawTLS(t testing.TB, addr string, conf *tls.Config, extra string, bytewise bool) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // the TLS handshake's too
	if conf != nil {
		tc := tls.Client(nc, conf)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		nc = tc
	}
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), bytewise: bytewise}
	var key [16]byte
	rand.Read(key[:])
	req := "GET /chat HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	c.write([]byte(req))
	c.resp = c.readHead()
	if !strings.HasPrefix(c.resp, "HTTP/1.1 101") {
		t.Fatalf("handshake answered %q", c.resp)
	}
	c.inflate = strings.Contains(strings.ToLower(c.resp), "permessage-deflate")
	return c
}

func (c *rawClient) readHead() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read handshake answer: %v (got %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String()
		}
	}
}

// write sends b whole, or byte by byte in bytewise mode (bytes past the
// first 4 KiB of a write go in 1 KiB pieces, to keep large cases quick).
func (c *rawClient) write(b []byte) {
	c.t.Helper()
	// Write errors are ignored: a server that fails the connection may
	// close it while the rest is on its way; reads report the outcome.
	if !c.bytewise {
		c.nc.Write(b)
		return
	}
	for i := 0; i < len(b); {
		n := 1
		if i >= 4<<10 {
			n = min(1<<10, len(b)-i)
		}
		if _, err := c.nc.Write(b[i : i+n]); err != nil {
			// The server may close after a failing byte; the reader reports it.
			return
		}
		i += n
	}
}

// frame builds one client frame, masked with a random key.
func frame(fin bool, rsv byte, op ws.Opcode, payload []byte) []byte {
	return buildFrame(fin, rsv, op, payload, true)
}

func buildFrame(fin bool, rsv byte, op ws.Opcode, payload []byte, masked bool) []byte {
	b0 := byte(op) | rsv<<4
	if fin {
		b0 |= 0x80
	}
	var mbit byte
	if masked {
		mbit = 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = append(out, mbit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	var key [4]byte
	rand.Read(key[:])
	out = append(out, key[:]...)
	for i, p := range payload {
		out = append(out, p^key[i%4])
	}
	return out
}

// closeFrame builds a client close frame with code and reason (code 0: no body).
func closeFrame(code int, reason string) []byte {
	if code == 0 {
		return frame(true, 0, ws.OpClose, nil)
	}
	return frame(true, 0, ws.OpClose, append([]byte{byte(code >> 8), byte(code)}, reason...))
}

// compress returns the permessage-deflate payload of msg (no context takeover).
func compress(t testing.TB, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	fw.Write(msg)
	fw.Flush()
	z := b.Bytes()
	return z[:len(z)-4]
}

// event is what the client saw: a message (reassembled), a pong, a close
// frame (Code set), or the end of the connection (EOF).
type event struct {
	Op      ws.Opcode
	Payload string
	Code    int // close frames: the status code, 1005 when absent
	EOF     bool
}

func (e event) String() string {
	switch {
	case e.EOF:
		return "EOF"
	case e.Op == ws.OpClose:
		return fmt.Sprintf("close(%d)", e.Code)
	}
	p := e.Payload
	if len(p) > 40 {
		p = fmt.Sprintf("%s...(%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("op%d(%q)", e.Op, p)
}

// next reads the next event; server frames must be unmasked.
func (c *rawClient) next() event {
	c.t.Helper()
	var msg []byte
	var msgOp ws.Opcode
	compressed := false
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || testkit.IsReset(err) {
				return event{EOF: true}
			}
			c.t.Fatalf("read frame: %v", err)
		}
		if h[1]&0x80 != 0 {
			c.t.Fatalf("server sent a masked frame")
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(c.br, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(c.br, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			c.t.Fatalf("read payload: %v", err)
		}
		fin, op := h[0]&0x80 != 0, ws.Opcode(h[0]&0x0f)
		if rsv := h[0] & 0x70; rsv != 0 && (rsv != 0x40 || !c.inflate) {
			c.t.Fatalf("server set reserved bits %#x", rsv)
		}
		switch op {
		case ws.OpClose:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			return event{Op: op, Code: code, Payload: string(payload[min(2, len(payload)):])}
		case ws.OpPing, ws.OpPong:
			return event{Op: op, Payload: string(payload)}
		case ws.OpText, ws.OpBinary:
			msgOp, msg = op, payload
			compressed = h[0]&0x40 != 0
		default:
			msg = append(msg, payload...)
		}
		if fin {
			if compressed {
				msg = c.inflateMsg(msg)
			}
			return event{Op: msgOp, Payload: string(msg)}
		}
	}
}

func (c *rawClient) inflateMsg(z []byte) []byte {
	c.t.Helper()
	fr := flate.NewReaderDict(io.MultiReader(bytes.NewReader(z), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})), c.window)
	out, err := io.ReadAll(fr)
	if err != nil {
		c.t.Fatalf("inflate server message: %v", err)
	}
	if !strings.Contains(c.resp, "server_no_context_takeover") {
		c.window = append(c.window, out...)
		if len(c.window) > 32<<10 {
			c.window = c.window[len(c.window)-32<<10:]
		}
	}
	return out
}

var _ protocols.Protocol = ws.New()
