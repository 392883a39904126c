// Command proxy is a TCP proxy in workerman's style: every accepted
// connection gets an outgoing connection to the upstream (AsyncTcpConnection)
// and the two are piped both ways with backpressure.
//
//	PROXY_UPSTREAM=127.0.0.1:8082 go run ./examples/proxy start
//	nc 127.0.0.1 8093
package main

import (
	"os"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	upstream := os.Getenv("PROXY_UPSTREAM")
	if upstream == "" {
		upstream = "127.0.0.1:8082" // goes-master's text echo
	}
	goer := goes.NewGoer("tcp://127.0.0.1:8093", nil, "")
	goer.Count = 1
	goer.OnConnect = func(c connections.Connection) {
		up, err := goer.NewAsyncConnection("tcp://"+upstream, connections.ClientConfig{})
		if err != nil {
			c.Destroy()
			return
		}
		// Pipe before Connect: what the client sends is queued until the
		// upstream is up; closing either side closes the other.
		if connections.Pipe(c, up) != nil || connections.Pipe(up, c) != nil {
			c.Destroy()
			up.Destroy()
			return
		}
		up.Connect()
	}
	goer.RunAll()
}
