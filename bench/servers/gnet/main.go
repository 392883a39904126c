// Command gnet is the gnet v2 peer of the harness: multicore event loops
// answering every read with the fixed keep-alive response (it parses
// nothing, like the seed's benchmark program).
package main

import (
	"log"
	"os"

	"github.com/panjf2000/gnet/v2"
)

const resp = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nServer: goes\\0.1\r\nContent-Length: 5\r\n\r\nhello"

type handler struct {
	gnet.BuiltinEventEngine
	resp []byte
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	c.Discard(-1)
	c.Write(h.resp)
	return gnet.None
}

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	log.Fatal(gnet.Run(&handler{resp: []byte(resp)}, "tcp://"+addr, gnet.WithMulticore(true)))
}
