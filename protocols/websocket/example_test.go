package websocket_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// A chat-style echo server: compression negotiated when the client offers
// it, a subprotocol, an origin check, and a token check that refuses with
// 401 before the connection opens.
func ExampleProtocol() {
	p := &ws.Protocol{
		Subprotocols: []string{"chat"},
		CheckOrigin:  func(origin string, _ *ws.Request) bool { return origin == "" || origin == "https://example.com" },
		OnWebSocketConnect: func(c protocols.Conn, req *ws.Request) int {
			if req.Query("token") == "" {
				return 401
			}
			return 0
		},
		Compression: ws.Compression{Enabled: true},
	}
	srv := connections.NewServer(connections.Config{
		Protocol: p,
		Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
			ws.SetBinary(c, ws.MessageType(c) == ws.OpBinary) // answer in kind
			c.SendBytes(data, false)
			if string(data) == "bye" {
				ws.Close(c, ws.CloseNormal, "see you")
			}
		}},
		Logger: zerolog.Nop(),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	srv.Close()
}

// An outgoing WebSocket connection with options, through the generic
// connection API: NewClientFor gives the transport URI to open and the
// client protocol, whose handshake offers a subprotocol and compression.
// A message sent before the server's 101 answer waits for it.
func ExampleNewClientFor() {
	srv := connections.NewServer(connections.Config{
		Protocol: &ws.Protocol{Subprotocols: []string{"chat.v1"}, Compression: ws.Compression{Enabled: true}},
		Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
			c.Send("echo: "+string(data), false)
		}},
		Logger: zerolog.Nop(),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	transport, wc, err := ws.NewClientFor("ws://" + ln.Addr().String() + "/chat")
	if err != nil {
		panic(err)
	}
	wc.Request.Subprotocols = []string{"chat.v1"}
	wc.Compression.Enabled = true
	got := make(chan string, 1)
	cl, err := connections.NewClient(transport, connections.ClientConfig{
		Config: connections.Config{Protocol: wc, Logger: zerolog.Nop(), Handler: connections.Handler{
			OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
		}},
		OnOpen: func(c connections.Connection) {
			fmt.Println("open:", ws.Subprotocol(c), ws.Compressed(c))
		},
	})
	if err != nil {
		panic(err)
	}
	cl.Send("hello", false) // queued until the upgrade is accepted
	cl.Connect()
	fmt.Println(<-got)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.Shutdown(ctx)
	// Output:
	// open: chat.v1 true
	// echo: hello
}
