// Command callbackpool is a test program of package goes (see
// callbacks_test.go): a text listener, one worker, whose OnMessage blocks
// on "block" until another connection sends "release" (answering
// "released"), or until BLOCK_FOR passes (answering "timed out"). It
// prints "callback blocking" when a callback starts to wait, so that the
// test knows when to send "release". POOL sets Goer.CallbackGoroutines;
// the listen address and the config's callback_goroutines come from
// --config.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	g := goes.NewGoer("text://127.0.0.1:8099", nil, "")
	g.Count = 1
	if n, err := strconv.Atoi(os.Getenv("POOL")); err == nil {
		g.CallbackGoroutines = n
	}
	bound := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BLOCK_FOR")); err == nil {
		bound = d
	}
	release := make(chan struct{})
	var once sync.Once
	g.OnMessage = func(c connections.Connection, line []byte) {
		switch string(line) {
		case "block":
			fmt.Println("callback blocking")
			select {
			case <-release:
				c.Send("released", false)
			case <-time.After(bound):
				c.Send("timed out", false)
			}
		case "release":
			once.Do(func() { close(release) })
			c.Send("ok", false)
		}
	}
	g.RunAll()
}
