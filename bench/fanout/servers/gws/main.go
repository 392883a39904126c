// Command gws is the lxzan/gws peer of the fan-out benchmark: gws's own
// server (a goroutine per connection reading), a publish encoded once with
// gws.NewBroadcaster and handed to every member's write queue.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/lxzan/gws"

	"github.com/goes-project/goes/bench/fanout/prof"
	"github.com/goes-project/goes/bench/fanout/wire"
)

type handler struct {
	gws.BuiltinEventHandler
	mu      sync.Mutex
	members map[*gws.Conn]struct{}
}

func (h *handler) OnClose(c *gws.Conn, _ error) {
	h.mu.Lock()
	delete(h.members, c)
	h.mu.Unlock()
}

func (h *handler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	p := m.Bytes()
	switch {
	case string(p) == wire.Join:
		h.mu.Lock()
		h.members[c] = struct{}{}
		h.mu.Unlock()
		c.WriteString(wire.OK)
	case bytes.HasPrefix(p, []byte(wire.Publish)):
		b := gws.NewBroadcaster(gws.OpcodeText, p[len(wire.Publish):])
		h.mu.Lock()
		for m := range h.members {
			b.Broadcast(m)
		}
		h.mu.Unlock()
		b.Close()
	}
}

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	prof.Watch("gws")
	h := &handler{members: map[*gws.Conn]struct{}{}}
	srv := gws.NewServer(h, nil)
	go func() {
		if err := srv.Run(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
