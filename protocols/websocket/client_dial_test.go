package websocket_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// dialMsg is one message a dialled client got.
type dialMsg struct {
	data []byte
	op   ws.Opcode
}

// dialed is a connections.Client of a websocket.Client for a ws:// or
// wss:// URI (NewClientFor) with its events turned into channels.
type dialed struct {
	cl     *connections.Client
	opened chan struct{}
	msgs   chan dialMsg
	errs   chan error
	closed chan struct{}
}

// dialClient makes the client for uri; configure, when set, adjusts the
// websocket.Client, onOpen runs in OnOpen.
func dialClient(t testing.TB, uri string, configure func(*ws.Client), onOpen func(connections.Connection), tlsCfg *tls.Config) *dialed {
	t.Helper()
	d := &dialed{opened: make(chan struct{}), msgs: make(chan dialMsg, 64), errs: make(chan error, 8), closed: make(chan struct{})}
	transport, wc, err := ws.NewClientFor(uri)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(wc)
	}
	cl, err := connections.NewClient(transport, connections.ClientConfig{
		Config: connections.Config{
			Protocol:       wc,
			MaxPackageSize: 2 * testLimit,
			Logger:         testkit.Logger(t).Level(zerolog.InfoLevel),
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, data []byte) {
					d.msgs <- dialMsg{data: bytes.Clone(data), op: ws.MessageType(c)}
				},
				OnError: func(c connections.Connection, err error) { d.errs <- err },
				OnClose: func(c connections.Connection) { close(d.closed) },
			},
		},
		TLSConfig: tlsCfg,
		OnOpen: func(c connections.Connection) {
			if onOpen != nil {
				onOpen(c)
			}
			close(d.opened)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, cl)
	d.cl = cl
	return d
}

// stopOnCleanup destroys cl when the test ends and waits until its
// goroutines are gone (they log through t).
func stopOnCleanup(t testing.TB, cl *connections.Client) {
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		cl.Shutdown(ctx)
	})
}

func (d *dialed) wait(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case err := <-d.errs:
		t.Fatalf("waiting for %s: OnError %v", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func (d *dialed) next(t testing.TB) dialMsg {
	t.Helper()
	select {
	case m := <-d.msgs:
		return m
	case err := <-d.errs:
		t.Fatalf("OnError %v", err)
	case <-d.closed:
		select {
		case m := <-d.msgs: // delivered before the close
			return m
		default:
			t.Fatal("closed while waiting for a message")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return dialMsg{}
}

// exchange runs the common script against an echo server: a message
// queued before the upgrade, text of several sizes, binary, then the
// closing handshake from the client.
func (d *dialed) exchange(t *testing.T, compress bool) {
	t.Helper()
	if err := d.cl.Send("queued before the upgrade", false); err != nil {
		t.Fatal(err)
	}
	d.cl.Connect()
	d.wait(t, d.opened, "the upgrade")
	if ws.Compressed(d.cl) != compress {
		t.Fatalf("compression negotiated = %v, want %v", ws.Compressed(d.cl), compress)
	}
	if m := d.next(t); string(m.data) != "queued before the upgrade" || m.op != ws.OpText {
		t.Fatalf("first echo %q op %d", m.data, m.op)
	}
	msgs := [][]byte{[]byte("hello"), {}, []byte("κόσμε"), []byte(strings.Repeat("repeat me ", 10000))}
	for i, m := range msgs {
		if err := d.cl.SendBytes(m, false); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for i, m := range msgs {
		if g := d.next(t); !bytes.Equal(g.data, m) || g.op != ws.OpText {
			t.Fatalf("echo %d: %d bytes op %d, want %d bytes text", i, len(g.data), g.op, len(m))
		}
	}
	ws.SetBinary(d.cl, true)
	bin := []byte{0, 1, 0xfe, 0xff}
	d.cl.SendBytes(bin, false)
	if g := d.next(t); !bytes.Equal(g.data, bin) || g.op != ws.OpBinary {
		t.Fatalf("binary echo %x op %d", g.data, g.op)
	}
	if err := ws.Close(d.cl, ws.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	d.wait(t, d.closed, "OnClose after the closing handshake")
}

// TestDialGoesServer: a ws:// connections.Client against this package's
// server on a goes listener, with and without permessage-deflate; the
// URI's path and query reach the server.
func TestDialGoesServer(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[compress], func(t *testing.T) {
			var target atomic.Value
			p := &ws.Protocol{
				Compression: ws.Compression{Enabled: compress},
				OnWebSocketConnect: func(c protocols.Conn, req *ws.Request) int {
					target.Store(req.Target())
					return 0
				},
			}
			addr := serveGoes(t, p, echoHandler())
			d := dialClient(t, "ws://"+addr+"/chat?room=1", func(c *ws.Client) {
				c.Compression = ws.Compression{Enabled: compress, Threshold: -1}
			}, nil, nil)
			d.exchange(t, compress)
			if got := target.Load(); got != "/chat?room=1" {
				t.Fatalf("server saw target %v", got)
			}
		})
	}
}

// TestDialReference: a ws:// connections.Client against coder/websocket
// on net/http.
func TestDialReference(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[compress], func(t *testing.T) {
			addr := serveReference(t, compress)
			d := dialClient(t, "ws://"+addr+"/echo", func(c *ws.Client) {
				c.Compression = ws.Compression{Enabled: compress, Threshold: -1}
			}, nil, nil)
			d.exchange(t, compress)
		})
	}
}

// TestDialWSS: wss:// against coder/websocket behind net/http's TLS,
// verifying the server's certificate, with a subprotocol.
func TestDialWSS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"echo.v1"}})
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
				return
			}
			if c.Write(ctx, typ, data) != nil {
				return
			}
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	var sub atomic.Value
	d := dialClient(t, "wss://"+strings.TrimPrefix(srv.URL, "https://")+"/", func(c *ws.Client) {
		c.Request.Subprotocols = []string{"other", "echo.v1"}
	}, func(c connections.Connection) { sub.Store(ws.Subprotocol(c)) }, &tls.Config{RootCAs: roots})
	d.exchange(t, false)
	if d.cl.Transport() != "tls" || sub.Load() != "echo.v1" {
		t.Fatalf("transport %q subprotocol %v", d.cl.Transport(), sub.Load())
	}
}

// TestDialUpgradeRefused: a refused upgrade is reported to OnError as
// ErrHandshake, OnOpen never runs, OnClose does.
func TestDialUpgradeRefused(t *testing.T) {
	addr := serveGoes(t, &ws.Protocol{OnWebSocketConnect: func(protocols.Conn, *ws.Request) int { return 403 }}, echoHandler())
	d := dialClient(t, "ws://"+addr+"/", nil, nil, nil)
	d.cl.Send("never sent", false)
	d.cl.Connect()
	select {
	case err := <-d.errs:
		if !errors.Is(err, ws.ErrHandshake) {
			t.Fatalf("OnError %v, want ErrHandshake", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnError")
	}
	select {
	case <-d.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("no OnClose")
	}
	select {
	case <-d.opened:
		t.Fatal("OnOpen ran for a refused upgrade")
	default:
	}
}

// TestDialReconnect: the server ends every connection after one message;
// the Client reconnects from OnClose and shakes hands again each time.
func TestDialReconnect(t *testing.T) {
	addr := serveGoes(t, &ws.Protocol{}, connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
		c.SendBytes(data, false)
		ws.Close(c, ws.CloseGoingAway, "one each")
	}})
	var opens atomic.Int32
	got := make(chan string, 4)
	done := make(chan struct{})
	transport, wc, err := ws.NewClientFor("ws://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := connections.NewClient(transport, connections.ClientConfig{
		Config: connections.Config{
			Protocol: wc,
			Logger:   testkit.Logger(t).Level(zerolog.InfoLevel),
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
				OnClose: func(c connections.Connection) {
					if opens.Load() < 3 {
						c.(*connections.Client).Reconnect(time.Millisecond)
						return
					}
					close(done)
				},
			},
		},
		OnOpen: func(c connections.Connection) {
			c.Send("round "+string(rune('0'+opens.Add(1))), false)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, cl)
	cl.Connect()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
	close(got)
	var all []string
	for s := range got {
		all = append(all, s)
	}
	if strings.Join(all, ",") != "round 1,round 2,round 3" {
		t.Fatalf("got %q", all)
	}
}

// TestDialPipeBridge: a raw TCP listener whose connections are piped both
// ways to a ws:// Client of coder/websocket's echo server. Bytes from the
// TCP peer become WebSocket messages (through the Client's protocol), even
// those that arrive before the upgrade is accepted, and the echoes come
// back as raw bytes.
func TestDialPipeBridge(t *testing.T) {
	wsAddr := serveReference(t, false)
	clients := make(chan *connections.Client, 1)
	srv := connections.NewServer(connections.Config{
		Logger: testkit.Logger(t).Level(zerolog.InfoLevel),
		Handler: connections.Handler{OnConnect: func(c connections.Connection) {
			transport, wc, err := ws.NewClientFor("ws://" + wsAddr + "/")
			if err != nil {
				t.Error(err)
				c.Close()
				return
			}
			up, err := connections.NewClient(transport, connections.ClientConfig{
				Config: connections.Config{Protocol: wc, Logger: testkit.Logger(t).Level(zerolog.InfoLevel)},
			})
			if err != nil {
				t.Error(err)
				c.Close()
				return
			}
			clients <- up
			connections.Pipe(c, up)
			connections.Pipe(up, c)
			up.Connect()
		}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stopOnCleanup(t, <-clients)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	for _, m := range []string{"hello", "κόσμε", strings.Repeat("x", 3000)} {
		if _, err := io.WriteString(nc, m); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(m))
		if _, err := io.ReadFull(nc, got); err != nil || string(got) != m {
			t.Fatalf("bridge echoed %q, %v; want %q", got, err, m)
		}
	}
}

// TestNewClientFor maps ws:// and wss:// URIs to the transport to open
// and the handshake request.
func TestNewClientFor(t *testing.T) {
	cases := []struct {
		name, uri, transport, host, path string
		bad                              bool
	}{
		{name: "ws default port", uri: "ws://example.com/chat?room=1", transport: "tcp://example.com:80", host: "example.com", path: "/chat?room=1"},
		{name: "wss default port", uri: "wss://example.com", transport: "tls://example.com:443", host: "example.com", path: "/"},
		{name: "ws with port", uri: "ws://127.0.0.1:8081/", transport: "tcp://127.0.0.1:8081", host: "127.0.0.1:8081", path: "/"},
		{name: "websocket scheme", uri: "websocket://127.0.0.1:8081/x", transport: "tcp://127.0.0.1:8081", host: "127.0.0.1:8081", path: "/x"},
		{name: "ipv6", uri: "WSS://[::1]:9/a%20b", transport: "tls://[::1]:9", host: "[::1]:9", path: "/a%20b"},
		{name: "user info", uri: "ws://me@127.0.0.1:80/", bad: true},
		{name: "fragment", uri: "ws://127.0.0.1:80/#x", bad: true},
		{name: "no host", uri: "ws://:80/", bad: true},
		{name: "other scheme", uri: "tcp://127.0.0.1:80", bad: true},
		{name: "no scheme", uri: "127.0.0.1:80", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			transport, c, err := ws.NewClientFor(tc.uri)
			if tc.bad {
				if err == nil {
					t.Fatalf("NewClientFor(%q) = %q, %+v; want an error", tc.uri, transport, c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if transport != tc.transport || c.Request.Host != tc.host || c.Request.Path != tc.path || c.Name() != "websocket" {
				t.Fatalf("got %q host %q path %q name %q", transport, c.Request.Host, c.Request.Path, c.Name())
			}
		})
	}
	if err := (&ws.Client{Protocol: ws.New()}).StartClient(&sockConn{}, nil); err == nil {
		t.Fatal("StartClient with a server codec succeeded")
	}
}

// TestDialBinary: a Client with Binary sends binary frames from the
// first message on, those queued before the upgrade included.
func TestDialBinary(t *testing.T) {
	addr := serveGoes(t, &ws.Protocol{}, echoHandler())
	d := dialClient(t, "ws://"+addr+"/", func(c *ws.Client) { c.Binary = true }, nil, nil)
	d.cl.SendBytes([]byte{0xff, 0}, false) // not UTF-8: only a binary frame carries it
	d.cl.Connect()
	d.wait(t, d.opened, "the upgrade")
	if m := d.next(t); !bytes.Equal(m.data, []byte{0xff, 0}) || m.op != ws.OpBinary {
		t.Fatalf("echo % x op %d, want binary", m.data, m.op)
	}
}

// TestGoingAway: the codec is a protocols.GoingAwayer; called from
// another goroutine, as a draining worker does, it sends close 1001 and
// the peer's answer ends the connection.
func TestGoingAway(t *testing.T) {
	p := &ws.Protocol{}
	var _ protocols.GoingAwayer = p
	conns := make(chan connections.Connection, 1)
	addr := serveGoes(t, p, connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
		select {
		case conns <- c:
		default:
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("here")); err != nil {
		t.Fatal(err)
	}
	var sc connections.Connection
	select {
	case sc = <-conns:
	case <-ctx.Done():
		t.Fatal("the server never got the message")
	}
	go p.GoingAway(sc)
	_, _, err = c.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Fatalf("read %v (close status %d), want close 1001", err, code)
	}
}
