package goes_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/frame"
	"github.com/goes-project/goes/protocols/text"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// TestNewClientURIs: goes.NewClient maps the protocol URIs to a transport
// and a protocol and hands the transport URIs to connections.NewClient.
func TestNewClientURIs(t *testing.T) {
	cases := []struct {
		name, uri, remote, transport, proto string
		cfg                                 connections.ClientConfig
		bad                                 bool
	}{
		{name: "tcp", uri: "tcp://127.0.0.1:80", remote: "127.0.0.1:80", transport: "tcp"},
		{name: "tls", uri: "tls://example.com:443", remote: "example.com:443", transport: "tls"},
		{name: "unix", uri: "unix:///tmp/x.sock", remote: "/tmp/x.sock", transport: "unix"},
		{name: "udp", uri: "udp://127.0.0.1:80", remote: "127.0.0.1:80", transport: "udp"},
		{name: "text", uri: "text://localhost:7", remote: "localhost:7", transport: "tcp", proto: "text"},
		{name: "frame", uri: "frame://[::1]:9", remote: "[::1]:9", transport: "tcp", proto: "frame"},
		{name: "text over udp", uri: "TEXT://localhost:7", cfg: connections.ClientConfig{Config: connections.Config{Transport: "udp"}},
			remote: "localhost:7", transport: "udp", proto: "text"},
		{name: "frame over udp", uri: "frame://127.0.0.1:7", cfg: connections.ClientConfig{Config: connections.Config{Transport: "UDP"}},
			remote: "127.0.0.1:7", transport: "udp", proto: "frame"},
		{name: "protocol given wins", uri: "text://127.0.0.1:7", cfg: connections.ClientConfig{Config: connections.Config{Protocol: frame.New()}},
			remote: "127.0.0.1:7", transport: "tcp", proto: "frame"},
		{name: "ws default port", uri: "ws://example.com/chat?room=1", remote: "example.com:80", transport: "tcp", proto: "websocket"},
		{name: "wss default port", uri: "wss://example.com", remote: "example.com:443", transport: "tls", proto: "websocket"},
		{name: "ws with port", uri: "ws://127.0.0.1:8081/", remote: "127.0.0.1:8081", transport: "tcp", proto: "websocket"},
		{name: "websocket scheme", uri: "websocket://127.0.0.1:8081/", remote: "127.0.0.1:8081", transport: "tcp", proto: "websocket"},
		{name: "ws with own protocol", uri: "ws://127.0.0.1:1/", cfg: connections.ClientConfig{Config: connections.Config{Protocol: text.New()}}, bad: true},
		{name: "ws over udp", uri: "ws://127.0.0.1:7/", cfg: connections.ClientConfig{Config: connections.Config{Transport: "udp"}}, bad: true},
		{name: "ws user info", uri: "ws://me@127.0.0.1:80/", bad: true},
		{name: "text with a path", uri: "text://127.0.0.1:80/x", bad: true},
		{name: "text without port", uri: "text://127.0.0.1", bad: true},
		{name: "http", uri: "http://127.0.0.1:80", bad: true},
		{name: "unknown", uri: "gopher://127.0.0.1:70", bad: true},
		{name: "no scheme", uri: "127.0.0.1:80", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := goes.NewClient(tc.uri, tc.cfg)
			if tc.bad {
				if !errors.Is(err, connections.ErrBadURI) {
					t.Fatalf("NewClient(%q) = %v, want ErrBadURI", tc.uri, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.RemoteAddr().String(); got != tc.remote {
				t.Errorf("RemoteAddr = %q, want %q", got, tc.remote)
			}
			if got := cl.Transport(); got != tc.transport {
				t.Errorf("Transport = %q, want %q", got, tc.transport)
			}
			proto := ""
			if p := cl.Protocol(); p != nil {
				proto = p.Name()
			}
			if proto != tc.proto {
				t.Errorf("Protocol = %q, want %q", proto, tc.proto)
			}
		})
	}
}

// serveConns serves cfg on a loopback listener of network ("tcp" or
// "udp") until the test ends and returns the address.
func serveConns(t *testing.T, network string, cfg connections.Config) string {
	t.Helper()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	srv := connections.NewServer(cfg)
	done := make(chan error, 1)
	var addr string
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		go func() { done <- srv.ServePacket(pc) }()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		go func() { done <- srv.Serve(ln) }()
	}
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return addr
}

// exchange connects cl, sends msg once it is open and returns the first
// message back.
func exchange(t *testing.T, uri string, cfg connections.ClientConfig, msg string) string {
	t.Helper()
	got := make(chan string, 1)
	errs := make(chan error, 4)
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	cfg.Handler = connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) {
			select {
			case got <- string(data):
			default:
			}
		},
		OnError: func(c connections.Connection, err error) { errs <- err },
	}
	cfg.OnOpen = func(c connections.Connection) {
		if err := c.Send(msg, false); err != nil {
			errs <- err
		}
	}
	cl, err := goes.NewClient(uri, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		cl.Shutdown(ctx)
	})
	cl.Connect()
	select {
	case s := <-got:
		return s
	case err := <-errs:
		t.Fatalf("%s: OnError %v", uri, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer", uri)
	}
	return ""
}

func echoBack(c connections.Connection, data []byte) { c.Send("echo: "+string(data), false) }

// TestNewClientProtocolURIs talks over real sockets to servers of each
// protocol through its URI: text:// (TCP and UDP), frame://, ws:// (the
// URI's path and query reach the server) and wss:// (certificate
// verified).
func TestNewClientProtocolURIs(t *testing.T) {
	t.Run("text", func(t *testing.T) {
		addr := serveConns(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echoBack}})
		if got := exchange(t, "text://"+addr, connections.ClientConfig{}, "hi"); got != "echo: hi" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("text over udp", func(t *testing.T) {
		addr := serveConns(t, "udp", connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echoBack}})
		cfg := connections.ClientConfig{Config: connections.Config{Transport: "udp"}}
		if got := exchange(t, "text://"+addr, cfg, "hi"); got != "echo: hi" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("frame", func(t *testing.T) {
		addr := serveConns(t, "tcp", connections.Config{Protocol: frame.New(), Handler: connections.Handler{OnMessage: echoBack}})
		if got := exchange(t, "frame://"+addr, connections.ClientConfig{}, "a\nb"); got != "echo: a\nb" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("ws", func(t *testing.T) {
		var target atomic.Value
		p := &ws.Protocol{OnWebSocketConnect: func(c protocols.Conn, req *ws.Request) int {
			target.Store(req.Target())
			return 0
		}}
		addr := serveConns(t, "tcp", connections.Config{Protocol: p, Handler: connections.Handler{OnMessage: echoBack}})
		if got := exchange(t, "ws://"+addr+"/chat?room=1", connections.ClientConfig{}, "hi"); got != "echo: hi" {
			t.Fatalf("got %q", got)
		}
		if got := target.Load(); got != "/chat?room=1" {
			t.Fatalf("server saw target %v", got)
		}
	})
	t.Run("wss", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, append([]byte("echo: "), data...))
			c.Read(r.Context()) // until the client goes
		}))
		t.Cleanup(srv.Close)
		roots := x509.NewCertPool()
		roots.AddCert(srv.Certificate())
		cfg := connections.ClientConfig{TLSConfig: &tls.Config{RootCAs: roots}}
		uri := "wss://" + strings.TrimPrefix(srv.URL, "https://") + "/"
		if got := exchange(t, uri, cfg, "hi"); got != "echo: hi" {
			t.Fatalf("got %q", got)
		}
	})
}

// NewClient speaks the protocol URIs: a ws:// client of a goes WebSocket
// server, with a message sent once the upgrade is accepted (OnOpen).
func ExampleNewClient() {
	srv := connections.NewServer(connections.Config{
		Protocol: ws.NewWebsocketProtocol(),
		Handler:  connections.Handler{OnMessage: func(c connections.Connection, data []byte) { c.Send("echo: "+string(data), false) }},
		Logger:   zerolog.Nop(),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	got := make(chan string, 1)
	c, err := goes.NewClient("ws://"+ln.Addr().String()+"/chat", connections.ClientConfig{
		Config: connections.Config{Logger: zerolog.Nop(), Handler: connections.Handler{
			OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
			OnClose:   func(c connections.Connection) { c.(*connections.Client).Reconnect(time.Second) }, // not after Shutdown
		}},
		OnOpen: func(c connections.Connection) { c.Send("hello", false) }, // after the 101
	})
	if err != nil {
		panic(err)
	}
	c.Connect()
	fmt.Println(<-got)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Shutdown(ctx)
	// Output: echo: hello
}

// ExampleGoer_NewAsyncConnection is the README's outgoing connection: in
// a worker (OnWorkerStart or any callback) it gets the worker's route,
// logger and timer wheel.
func ExampleGoer_NewAsyncConnection() {
	goer := goes.NewGoer("text://127.0.0.1:8082", nil, "")
	goer.OnWorkerStart = func(g *goes.Goer) {
		c, err := g.NewAsyncConnection("ws://127.0.0.1:8081/chat", connections.ClientConfig{
			Config: connections.Config{Handler: connections.Handler{
				OnMessage: func(c connections.Connection, data []byte) { /* ... */ },
				OnClose:   func(c connections.Connection) { c.(*connections.Client).Reconnect(time.Second) },
			}},
			OnOpen: func(c connections.Connection) { c.Send("hello", false) }, // after the 101
		})
		if err != nil {
			return
		}
		c.Connect()
	}
	// goer.RunAll()
	_ = goer
}
