// Command nbio is the nbio peer of the fan-out benchmark: nbhttp's engine
// (pollers, non-blocking I/O) with its websocket upgrader. nbio's websocket
// has no encode-once broadcast, so a publish is a WriteMessage per member
// (a 2-byte header and a copy each, written at once when the socket takes
// it), from the goroutine that handles the publisher's message.
package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/goes-project/goes/bench/fanout/prof"
	"github.com/goes-project/goes/bench/fanout/wire"
)

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	prof.Watch("nbio")
	var (
		mu      sync.Mutex
		members = map[*websocket.Conn]struct{}{}
	)
	u := websocket.NewUpgrader()
	u.CheckOrigin = func(*http.Request) bool { return true }
	u.OnMessage(func(c *websocket.Conn, _ websocket.MessageType, p []byte) {
		switch {
		case string(p) == wire.Join:
			mu.Lock()
			members[c] = struct{}{}
			mu.Unlock()
			c.WriteMessage(websocket.TextMessage, []byte(wire.OK))
		case bytes.HasPrefix(p, []byte(wire.Publish)):
			msg := p[len(wire.Publish):]
			mu.Lock()
			for m := range members {
				m.WriteMessage(websocket.TextMessage, msg)
			}
			mu.Unlock()
		}
	})
	u.OnClose(func(c *websocket.Conn, _ error) {
		mu.Lock()
		delete(members, c)
		mu.Unlock()
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := u.Upgrade(w, r, nil); err != nil {
			return
		}
	})
	e := nbhttp.NewEngine(nbhttp.Config{Network: "tcp", Addrs: []string{addr}, Handler: mux})
	if err := e.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	e.Stop()
}
