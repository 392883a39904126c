// Command gorilla is the gorilla/websocket peer of the fan-out benchmark:
// net/http and a goroutine per connection reading; a publish is prepared
// once (websocket.NewPreparedMessage) and written to every member with
// WritePreparedMessage from the publisher's goroutine, under each
// connection's write lock.
package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/gorilla/websocket"

	"github.com/goes-project/goes/bench/fanout/prof"
	"github.com/goes-project/goes/bench/fanout/wire"
)

// conn is a connection and its write lock (gorilla allows one writer).
type conn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	prof.Watch("gorilla")
	var (
		mu      sync.Mutex
		members = map[*conn]struct{}{}
	)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	handler := func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &conn{ws: ws}
		defer func() {
			mu.Lock()
			delete(members, c)
			mu.Unlock()
			ws.Close()
		}()
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			switch {
			case string(p) == wire.Join:
				mu.Lock()
				members[c] = struct{}{}
				mu.Unlock()
				c.mu.Lock()
				err = ws.WriteMessage(websocket.TextMessage, []byte(wire.OK))
				c.mu.Unlock()
				if err != nil {
					return
				}
			case bytes.HasPrefix(p, []byte(wire.Publish)):
				pm, err := websocket.NewPreparedMessage(websocket.TextMessage, p[len(wire.Publish):])
				if err != nil {
					return
				}
				mu.Lock()
				for m := range members {
					m.mu.Lock()
					m.ws.WritePreparedMessage(pm)
					m.mu.Unlock()
				}
				mu.Unlock()
			}
		}
	}
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(handler)}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
