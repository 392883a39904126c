// Command goesraw is the seed's benchmark program on goes, unchanged but
// for the import path and the address: raw TCP through the full framework
// (master, workers, connection runtime, OnMessage), answering every read
// with the fixed keep-alive response. Run it with "goesraw start".
package main

import (
	"os"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	goer := goes.NewGoer(addr, nil, "tcp")
	goer.OnMessage = func(connection connections.Connection, data []byte) {
		connection.Send("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nServer: goes\\0.1\r\nContent-Length: 5\r\n\r\nhello", false)
	}
	goer.RunAll()
}
