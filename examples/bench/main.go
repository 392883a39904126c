// Command bench is the seed's benchmark program: raw TCP on
// 127.0.0.1:8080 answering every read with a fixed keep-alive HTTP
// response.
//
//	go run ./examples/bench start
//	ab -n1000000 -c100 -k http://127.0.0.1:8080/
package main

import (
	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	goer := goes.NewGoer("127.0.0.1:8080", nil, "tcp")
	goer.OnMessage = func(connection connections.Connection, data []byte) {
		connection.Send("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nServer: goes\\0.1\r\nContent-Length: 5\r\n\r\nhello", false)
	}
	goer.RunAll()
}
