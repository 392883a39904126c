// Command tcp is the seed's first example: raw TCP on 127.0.0.1:8080,
// answering every message with "hello, goer".
//
//	go run ./examples/tcp start
//	nc 127.0.0.1 8080
package main

import (
	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	// Raw TCP (no application protocol), listening on port 8080.
	goer := goes.NewGoer("127.0.0.1:8080", nil, "tcp")
	// Answer every message from a client with 'hello, goer'.
	goer.OnMessage = func(connection connections.Connection, data []byte) {
		connection.Send("hello, goer", false)
	}
	// Start the service.
	goer.RunAll()
}
