package http_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

// A body of unknown length, produced by a goroutine: every Write is one
// chunk, sent at once. A producer that must not lose data backs off when
// the send buffer is full and writes the same piece again once it has
// drained.
func ExampleStream() {
	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
	goer.OnBufferDrain = func(c connections.Connection) {
		if drained, ok := c.Context().(chan struct{}); ok {
			select {
			case drained <- struct{}{}:
			default:
			}
		}
	}
	goer.OnMessage = func(c connections.Connection, _ []byte) {
		w, err := http.Stream(c, &http.Response{
			ContentType: "text/plain",
			Header:      []http.Field{{Name: "Trailer", Value: "X-Lines"}},
		})
		if err != nil {
			return
		}
		drained := make(chan struct{}, 1)
		c.SetContext(drained)
		go func() {
			n := 0
			for ; n < 1000; n++ {
				line := fmt.Appendf(nil, "line %d\n", n)
				for {
					err := w.Write(line)
					if !errors.Is(err, connections.ErrSendBufferFull) {
						if err != nil {
							return // the client left: connections.ErrClosed
						}
						break
					}
					<-drained
				}
			}
			w.End(http.Field{Name: "X-Lines", Value: fmt.Sprint(n)})
		}()
	}
	goer.RunAll()
}

// Server-Sent Events: one event a second until the client goes away.
func ExampleSSE() {
	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
	goer.OnMessage = func(c connections.Connection, _ []byte) {
		if http.RequestOf(c).Path() != "/clock" {
			c.Send("<script>new EventSource('/clock').onmessage = e => document.body.textContent = e.data</script>", false)
			return
		}
		s, err := http.SSE(c)
		if err != nil {
			return
		}
		go func() {
			defer s.End()
			for now := range time.Tick(time.Second) {
				if s.Send(http.Event{ID: fmt.Sprint(now.Unix()), Data: now.Format(time.RFC3339)}) != nil {
					return
				}
			}
		}()
	}
	goer.RunAll()
}
