package websocket_test

import (
	"net"

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
