// Command timer shows worker timers in workerman's style: each worker
// starts a persistent timer in OnWorkerStart, and every 200 ms it sends a
// "tick N" line to the clients connected to that worker. When a reload
// replaces the worker, OnWorkerReload tells its clients to reconnect.
//
//	go run ./examples/timer start
//	nc 127.0.0.1 8090
package main

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	goer := goes.NewGoer("text://127.0.0.1:8090", nil, "")
	goer.Count = 2
	var clients sync.Map // connection id → connections.Connection
	goer.OnConnect = func(c connections.Connection) { clients.Store(c.ID(), c) }
	goer.OnClose = func(c connections.Connection) { clients.Delete(c.ID()) }
	goer.OnMessage = func(c connections.Connection, line []byte) { c.SendBytes(line, false) }
	broadcast := func(msg string) {
		clients.Range(func(_, c any) bool {
			c.(connections.Connection).Send(msg, false)
			return true
		})
	}
	goer.OnWorkerReload = func(g *goes.Goer) { broadcast("reloading: please reconnect") }
	goer.OnWorkerStart = func(g *goes.Goer) {
		var n atomic.Int64
		g.AddTimer(200*time.Millisecond, func() {
			broadcast("tick " + strconv.FormatInt(n.Add(1), 10) + " from worker " + strconv.Itoa(g.WorkerID()))
		}, true)
	}
	goer.RunAll()
}
