// Command goeshttp is the seed's HTTP example on goes, answering the
// harness's 5-byte body: the HTTP protocol parses every request and
// encodes every response, through the full framework (master, workers,
// connection runtime, OnMessage). Run it with "goeshttp start".
package main

import (
	"os"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	goer := goes.NewGoer(addr, http.NewHttpProtocol(), "tcp")
	goer.OnMessage = func(connection connections.Connection, data []byte) {
		connection.Send("hello", false)
	}
	goer.RunAll()
}
