// Command http is the seed's HTTP example: 127.0.0.1:8080 answers every
// request with 200 "hello, goer".
//
//	go run ./examples/http start
//	curl http://127.0.0.1:8080/
package main

import (
	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

func main() {
	// Serve HTTP on port 8080.
	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
	// Answer every request with 'hello, goer'.
	goer.OnMessage = func(connection connections.Connection, data []byte) {
		connection.Send("hello, goer", false)
	}
	// Start the service.
	goer.RunAll()
}
