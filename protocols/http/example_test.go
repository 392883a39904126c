package http_test

import (
	"fmt"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

// The seed's HTTP program, grown a little: Send answers 200 with the
// protocol's defaults; Respond chooses status, fields and body.
func Example() {
	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
	goer.OnMessage = func(c connections.Connection, body []byte) {
		req := http.RequestOf(c)
		switch req.Path() {
		case "/":
			c.Send("hello, goer", false)
		case "/api/echo":
			http.Respond(c, &http.Response{
				ContentType: "application/json",
				Header:      []http.Field{{Name: "Cache-Control", Value: "no-store"}},
				Body:        body,
			})
		default:
			http.Respond(c, &http.Response{Status: 404, Body: []byte("not found")})
		}
	}
	goer.RunAll()
}

// ParseRequest reads a head without a connection (the WebSocket handshake
// is read this way).
func ExampleParseRequest() {
	buf := []byte("GET /chat?room=go%20ers HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"\r\n")
	var req http.Request
	n, err := http.ParseRequest(buf, &req, http.Limits{})
	fmt.Println(n == len(buf), err)
	fmt.Println(req.Method(), req.Path(), req.Query("room"), req.Host())
	fmt.Println(req.HasToken("Connection", "upgrade"), req.Header("sec-websocket-key"))

	_, err = http.ParseRequest([]byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), &req, http.Limits{})
	fmt.Println(err)
	// Output:
	// true <nil>
	// GET /chat go ers example.com
	// true dGhlIHNhbXBsZSBub25jZQ==
	// http: 400 Bad Request: conflicting content-length values
}
