package websocket_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	ws "github.com/goes-project/goes/protocols/websocket"
	"github.com/goes-project/goes/timer"
	"github.com/rs/zerolog"
)

const goodKey = "dGhlIHNhbXBsZSBub25jZQ=="

// handshake sends head and returns the answer's head.
func handshake(t *testing.T, addr, head string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	nc.Write([]byte(head))
	br := bufio.NewReader(nc)
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	if !strings.HasPrefix(b.String(), "HTTP/1.1 101") {
		// Refusals close the connection after the answer.
		if _, err := io.ReadAll(br); err != nil {
			t.Fatalf("after refusal: %v", err)
		}
	}
	return b.String()
}

func request(lines ...string) string {
	return "GET /chat?room=1 HTTP/1.1\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
}

func TestHandshake(t *testing.T) {
	var mu sync.Mutex
	var seenPath, seenQuery string
	p := &ws.Protocol{
		Subprotocols: []string{"chat.v2", "chat.v1"},
		CheckOrigin:  func(origin string, _ *ws.Request) bool { return origin == "" || origin == "http://good.example" },
		OnWebSocketConnect: func(c protocols.Conn, req *ws.Request) int {
			mu.Lock()
			seenPath, seenQuery = req.Path(), req.Query("room")
			mu.Unlock()
			if req.Header("Authorization") == "no" {
				return 401
			}
			return 0
		},
		Compression: ws.Compression{Enabled: true},
	}
	addr := serveGoes(t, p, echoHandler())
	std := []string{"Host: example", "Upgrade: websocket", "Connection: keep-alive, Upgrade", "Sec-WebSocket-Key: " + goodKey, "Sec-WebSocket-Version: 13"}
	with := func(extra ...string) []string { return append(append([]string{}, std...), extra...) }
	without := func(name string) []string {
		var out []string
		for _, l := range std {
			if !strings.HasPrefix(l, name+":") {
				out = append(out, l)
			}
		}
		return out
	}
	tests := []struct {
		name string
		head string
		want []string // substrings of the answer head
		not  []string
	}{
		{name: "rfc sample", head: request(std...), want: []string{"HTTP/1.1 101 ", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Upgrade: websocket"}, not: []string{"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"}},
		{name: "upper case tokens", head: request("Host: x", "Upgrade: WebSocket", "Connection: UPGRADE", "Sec-WebSocket-Key: "+goodKey, "Sec-WebSocket-Version: 13"), want: []string{"HTTP/1.1 101 "}},
		{name: "post", head: strings.Replace(request(std...), "GET", "POST", 1), want: []string{"HTTP/1.1 405 ", "Allow: GET"}},
		{name: "http/1.0", head: strings.Replace(request(std...), "HTTP/1.1", "HTTP/1.0", 1), want: []string{"HTTP/1.1 400 "}},
		{name: "no upgrade", head: request(without("Upgrade")...), want: []string{"HTTP/1.1 426 ", "Upgrade: websocket"}},
		{name: "no connection upgrade", head: request(append(without("Connection"), "Connection: keep-alive")...), want: []string{"HTTP/1.1 400 "}},
		{name: "no key", head: request(without("Sec-WebSocket-Key")...), want: []string{"HTTP/1.1 400 "}},
		{name: "short key", head: request(append(without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: c2hvcnQ=")...), want: []string{"HTTP/1.1 400 "}},
		{name: "two keys", head: request(with("Sec-WebSocket-Key: " + goodKey)...), want: []string{"HTTP/1.1 400 "}},
		{name: "version 8", head: request(append(without("Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8")...), want: []string{"HTTP/1.1 426 ", "Sec-WebSocket-Version: 13"}},
		{name: "no version", head: request(without("Sec-WebSocket-Version")...), want: []string{"HTTP/1.1 426 ", "Sec-WebSocket-Version: 13"}},
		{name: "no host", head: request(without("Host")...), want: []string{"HTTP/1.1 400 "}},
		{name: "bad origin", head: request(with("Origin: http://evil.example")...), want: []string{"HTTP/1.1 403 "}},
		{name: "good origin", head: request(with("Origin: http://good.example")...), want: []string{"HTTP/1.1 101 "}},
		{name: "hook refuses", head: request(with("Authorization: no")...), want: []string{"HTTP/1.1 401 "}},
		{name: "subprotocol by server preference", head: request(with("Sec-WebSocket-Protocol: chat.v1, chat.v2")...), want: []string{"Sec-WebSocket-Protocol: chat.v2\r\n"}},
		{name: "subprotocol none shared", head: request(with("Sec-WebSocket-Protocol: other")...), want: []string{"HTTP/1.1 101 "}, not: []string{"Sec-WebSocket-Protocol"}},
		{name: "deflate default", head: request(with("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")...),
			want: []string{"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"}},
		{name: "deflate window bits", head: request(with("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits=12")...),
			want: []string{"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12\r\n"}},
		{name: "deflate bad offer then good", head: request(with("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover")...),
			want: []string{"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"}},
		{name: "deflate unknown param declined", head: request(with("Sec-WebSocket-Extensions: permessage-deflate; foo=1")...), want: []string{"HTTP/1.1 101 "}, not: []string{"Sec-WebSocket-Extensions"}},
		{name: "deflate repeated param declined", head: request(with("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_no_context_takeover")...), want: []string{"HTTP/1.1 101 "}, not: []string{"Sec-WebSocket-Extensions"}},
		{name: "unknown extension", head: request(with("Sec-WebSocket-Extensions: x-webkit-deflate-frame")...), want: []string{"HTTP/1.1 101 "}, not: []string{"Sec-WebSocket-Extensions"}},
		{name: "garbage", head: "HELLO\r\n\r\n", want: []string{"HTTP/1.1 400 "}},
		{name: "huge head", head: request(with("X-Big: " + strings.Repeat("a", 20<<10))...), want: []string{"HTTP/1.1 431 "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := handshake(t, addr, tc.head)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer %q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("answer %q has %q", got, n)
				}
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if seenPath != "/chat" || seenQuery != "1" {
		t.Errorf("hook saw path %q query %q", seenPath, seenQuery)
	}
}

// TestSendBeforeOpen: a Send from OnConnect, before the handshake, fails
// clearly instead of writing a frame ahead of the 101.
func TestSendBeforeOpen(t *testing.T) {
	errc := make(chan error, 1)
	opened := make(chan string, 1)
	p := &ws.Protocol{OnOpen: func(c protocols.Conn) {
		ws.SetBinary(c, true)
		opened <- "open"
	}}
	addr := serveGoes(t, p, connections.Handler{
		OnConnect: func(c connections.Connection) { errc <- c.Send("too early", false) },
		OnMessage: func(c connections.Connection, data []byte) { c.SendBytes(data, false) },
	})
	cl := dialRaw(t, addr, "", false)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), ws.ErrNotOpen.Error()) {
		t.Fatalf("Send before the handshake: %v, want ErrNotOpen", err)
	}
	<-opened
	cl.write(txt("hi"))
	if got := cl.next(); got.Op != ws.OpBinary || got.Payload != "hi" {
		t.Fatalf("got %v, want a binary echo (SetBinary in OnOpen)", got)
	}
}

// TestServerClose: Close sends the code and reason, refuses later sends and
// closes the connection once the client answers.
func TestServerClose(t *testing.T) {
	sendErr := make(chan error, 1)
	var gotCode int
	closed := make(chan struct{})
	p := &ws.Protocol{OnClose: func(c protocols.Conn, code int, reason string) { gotCode = code }}
	addr := serveGoes(t, p, connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) {
			if err := ws.Close(c, ws.CloseGoingAway, "server going down"); err != nil {
				t.Errorf("Close: %v", err)
			}
			sendErr <- c.Send("after close", false)
		},
		OnClose: func(c connections.Connection) { close(closed) },
	})
	cl := dialRaw(t, addr, "", false)
	cl.write(txt("bye"))
	got := cl.next()
	if got.Op != ws.OpClose || got.Code != ws.CloseGoingAway || got.Payload != "server going down" {
		t.Fatalf("got %v %q, want close(1001) with the reason", got, got.Payload)
	}
	if err := <-sendErr; err == nil || !strings.Contains(err.Error(), ws.ErrClosing.Error()) {
		t.Fatalf("Send after Close: %v, want ErrClosing", err)
	}
	cl.write(closeFrame(ws.CloseGoingAway, ""))
	if got := cl.next(); !got.EOF {
		t.Fatalf("got %v, want EOF after the close handshake", got)
	}
	<-closed
	if gotCode != ws.CloseGoingAway {
		t.Errorf("OnClose saw code %d", gotCode)
	}
}

// TestServerCloseTimeout: a client that never answers Close is dropped
// after CloseTimeout.
func TestServerCloseTimeout(t *testing.T) {
	p := &ws.Protocol{CloseTimeout: 50 * time.Millisecond}
	addr := serveGoes(t, p, connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) { ws.Close(c, 0, "") },
	})
	cl := dialRaw(t, addr, "", false)
	cl.write(txt("bye"))
	if got := cl.next(); got.Op != ws.OpClose || got.Code != ws.CloseNormal {
		t.Fatalf("got %v, want close(1000)", got)
	}
	if got := cl.next(); !got.EOF {
		t.Fatalf("got %v, want EOF after the close timeout", got)
	}
}

// TestPingHook: OnPing sees the payload and the pong went out first.
func TestPingHook(t *testing.T) {
	pings := make(chan string, 1)
	p := &ws.Protocol{OnPing: func(c protocols.Conn, payload []byte) { pings <- string(payload) }}
	addr := serveGoes(t, p, echoHandler())
	cl := dialRaw(t, addr, "", true)
	cl.write(ping("are you there"))
	if got := cl.next(); got.Op != ws.OpPong || got.Payload != "are you there" {
		t.Fatalf("got %v", got)
	}
	if got := <-pings; got != "are you there" {
		t.Fatalf("OnPing saw %q", got)
	}
}

// TestCloseTimeoutOnWheel: inside a worker (a server given the worker's
// timer wheel) the closing handshake's bound is a timer of that wheel,
// next to the connection's own (its timeouts); it drops the silent client
// and leaves nothing pending.
func TestCloseTimeoutOnWheel(t *testing.T) {
	w := timer.New(timer.Options{})
	w.Start()
	t.Cleanup(w.Stop)
	p := &ws.Protocol{CloseTimeout: 500 * time.Millisecond, MaxMessageSize: testLimit}
	srv := connections.NewServer(connections.Config{
		Protocol: p,
		Wheel:    w,
		Handler: connections.Handler{
			OnMessage: func(c connections.Connection, data []byte) { ws.Close(c, 0, "") },
		},
		Logger: testkit.Logger(t).Level(zerolog.InfoLevel),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cl := dialRaw(t, ln.Addr().String(), "", false)
	cl.write(txt("bye"))
	if got := cl.next(); got.Op != ws.OpClose || got.Code != ws.CloseNormal {
		t.Fatalf("got %v, want close(1000)", got)
	}
	if n := w.Len(); n != 2 {
		t.Fatalf("%d timers pending on the wheel during the closing handshake, want 2 (the connection's and the close's)", n)
	}
	if got := cl.next(); !got.EOF {
		t.Fatalf("got %v, want EOF after the close timeout", got)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "no timer pending after the close", func() error {
		if n := w.Len(); n != 0 {
			return fmt.Errorf("%d timers pending", n)
		}
		return nil
	})
}
