// Command output is a goes program for the tests of what workers write
// outside their logger. Its text listener obeys:
//
//	print TEXT   write TEXT to stdout and to stderr, plain
//	crash        panic in a goroutine: the worker dies with a trace
//
// and its WebSocket listener answers every message with bytes that are
// not UTF-8, as text: a send its protocol cannot encode.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
)

func main() {
	text := goes.NewGoer("text://127.0.0.1:0", nil, "")
	text.Name = "text"
	text.Count = 1
	text.OnMessage = func(c connections.Connection, data []byte) {
		cmd, arg, _ := strings.Cut(string(data), " ")
		switch cmd {
		case "print":
			fmt.Println(arg)
			fmt.Fprintln(os.Stderr, arg)
			c.Send("printed", false)
		case "crash":
			go panic("deliberate crash")
		}
	}
	ws := goes.NewGoer("websocket://127.0.0.1:0", nil, "")
	ws.Name = "ws"
	ws.Count = 1
	ws.OnMessage = func(c connections.Connection, _ []byte) {
		c.Send("\xff\xfe not utf-8", false)
	}
	goes.RunAll(text, ws)
}
