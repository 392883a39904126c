// Command goes is the goes row of the fan-out benchmark, written the way a
// goes user would write a broadcast server: a websocket:// Goer with
// Cluster on, receivers joining a group (or binding to one user) from
// OnMessage, and the publisher's message sent with SendToGroup (or
// SendToUser, or Broadcast) from OnMessage. It runs with the normal verbs:
// "goes start --run-dir DIR" and "goes stop --run-dir DIR".
//
// Environment: BENCH_ADDR (listen address), BENCH_COUNT (workers, default
// 1), BENCH_MODE ("group", the default, "user" or "broadcast"),
// BENCH_CERT and BENCH_KEY (PEM files: when both are set it serves wss://,
// the same broadcast over TLS, instead of websocket://), and
// BENCH_NO_IOURING (set: NoIOUring, a write(2) per member instead of the
// io_uring send batches; a TLS connection's sealed records take write(2)
// anyway), and BENCH_FANOUT_PPROF (see package prof: each worker profiles itself while
// the driver asks).
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/bench/fanout/prof"
	"github.com/goes-project/goes/bench/fanout/wire"
	"github.com/goes-project/goes/connections"
)

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	count := 1
	if s := os.Getenv("BENCH_COUNT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "bad BENCH_COUNT", s)
			os.Exit(2)
		}
		count = n
	}
	mode := os.Getenv("BENCH_MODE")
	if mode == "" {
		mode = "group"
	}
	if mode != "group" && mode != "user" && mode != "broadcast" {
		fmt.Fprintln(os.Stderr, "bad BENCH_MODE", mode)
		os.Exit(2)
	}
	const name = "bench"
	cert, key := os.Getenv("BENCH_CERT"), os.Getenv("BENCH_KEY")
	scheme := "websocket://"
	if cert != "" && key != "" {
		scheme = "wss://"
	}
	g := goes.NewGoer(scheme+addr, nil, "")
	g.CertFile, g.KeyFile = cert, key
	g.NoIOUring = os.Getenv("BENCH_NO_IOURING") != ""
	g.Name = "fanout"
	g.Count = count
	g.Cluster = true
	g.OnWorkerStart = func(g *goes.Goer) { prof.Watch(fmt.Sprintf("goes-w%d", g.WorkerID())) }
	g.OnMessage = func(c connections.Connection, data []byte) {
		switch {
		case string(data) == wire.Join:
			var err error
			switch mode {
			case "group":
				err = g.JoinGroup(c, name)
			case "user":
				err = g.BindUser(c, name)
			}
			if err == nil {
				// As the chat handler of goes-master does: once answered,
				// a message from any worker reaches the new member.
				err = g.Node().Flush()
			}
			if err != nil {
				c.Send("error "+err.Error(), false)
				return
			}
			c.Send(wire.OK, false)
		case bytes.HasPrefix(data, []byte(wire.Publish)):
			msg := data[len(wire.Publish):]
			var err error
			switch mode {
			case "group":
				err = g.SendToGroup(name, msg)
			case "user":
				err = g.SendToUser(name, msg)
			case "broadcast":
				err = g.Broadcast(msg, c.ID())
			}
			if err != nil {
				c.Send("error "+err.Error(), false)
			}
		}
	}
	g.RunAll()
}
