package connections_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/text"
)

// A Client talks to a text echo server: a line sent before Connect is
// queued and goes first, OnClose reconnects after a delay unless the
// Client is being shut down.
func ExampleClient() {
	srv := connections.NewServer(connections.Config{
		Protocol: text.New(),
		Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
			c.Send("echo: "+string(data), false)
		}},
		Logger: zerolog.Nop(),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	got := make(chan string)
	cl, err := connections.NewClient("tcp://"+ln.Addr().String(), connections.ClientConfig{
		Config: connections.Config{Protocol: text.New(), Handler: connections.Handler{
			OnConnect: func(c connections.Connection) { c.Send("from OnConnect", false) },
			OnMessage: func(c connections.Connection, data []byte) { got <- string(data) },
			OnError:   func(c connections.Connection, err error) { fmt.Println("error:", err) },
			OnClose: func(c connections.Connection) {
				c.(*connections.Client).Reconnect(time.Second) // ignored after Shutdown
			},
		}},
	})
	if err != nil {
		panic(err)
	}
	cl.Send("queued before Connect", false)
	cl.Connect()
	fmt.Println(<-got)
	fmt.Println(<-got)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.Shutdown(ctx)
	// Output:
	// echo: queued before Connect
	// echo: from OnConnect
}

// A TCP proxy: every accepted connection is piped both ways to a new
// Client for the backend. A side that cannot keep up pauses the other,
// and either side closing closes the other once its data is through.
func ExamplePipe() {
	backend := "127.0.0.1:6379"
	proxy := connections.NewServer(connections.Config{
		Handler: connections.Handler{OnConnect: func(c connections.Connection) {
			up, err := connections.NewClient("tcp://"+backend, connections.ClientConfig{})
			if err != nil {
				c.Close()
				return
			}
			connections.Pipe(c, up)
			connections.Pipe(up, c)
			up.Connect() // a failed connect closes up, and the pipe closes c
		}},
		Logger: zerolog.Nop(),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go proxy.Serve(ln)
	proxy.Close()
}
