// Command nbio is the nbio raw-engine peer of the harness: pollers
// answering every read with the fixed keep-alive response.
package main

import (
	"log"
	"os"
	"os/signal"

	"github.com/lesismal/nbio"
)

const resp = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nServer: goes\\0.1\r\nContent-Length: 5\r\n\r\nhello"

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	b := []byte(resp)
	e := nbio.NewEngine(nbio.Config{Network: "tcp", Addrs: []string{addr}})
	e.OnData(func(c *nbio.Conn, _ []byte) { c.Write(b) })
	if err := e.Start(); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
	e.Stop()
}
