package websocket_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// TestPipelinedMessagesReadLate: a client sends 100,000 messages without
// waiting and reads nothing for 3 s, then reads. Every message is
// answered, in order, none dropped at the full send buffer: the server
// stops reading while its answers are over MaxSendBufferSize (issue 18).
// The answers (200 bytes) are larger than the messages, so that they are
// more than the kernel's socket buffers and the send buffer hold.
func TestPipelinedMessagesReadLate(t *testing.T) {
	const n = 100_000
	pad := strings.Repeat("-", 190)
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		t.Parallel()
		srv := connections.NewServer(connections.Config{
			Protocol: &ws.Protocol{},
			Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
				c.Send(string(data)+" "+pad, false)
			}},
			Engine:             e.Name,
			CallbackGoroutines: e.Pool,
			Logger:             testkit.Logger(t).Level(zerolog.InfoLevel),
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		defer func() { srv.Close(); <-done }()
		c := dialRaw(t, ln.Addr().String(), "", false)
		c.nc.SetDeadline(time.Now().Add(time.Minute))
		wrote := make(chan error, 1)
		go func() {
			var batch []byte
			for i := range n {
				batch = append(batch, frame(true, 0, ws.OpText, fmt.Appendf(nil, "%07d", i))...)
				if len(batch) >= 32<<10 || i == n-1 {
					if _, err := c.nc.Write(batch); err != nil {
						wrote <- fmt.Errorf("message %d: %w", i, err)
						return
					}
					batch = batch[:0]
				}
			}
			wrote <- nil
		}()
		time.Sleep(3 * time.Second) // the client reads nothing for a while: the scenario, not a wait for readiness
		for i := range n {
			ev := c.next()
			if want := fmt.Sprintf("%07d %s", i, pad); ev.Op != ws.OpText || ev.Payload != want {
				t.Fatalf("answer %d of %d: got %v", i, n, ev)
			}
		}
		if err := <-wrote; err != nil {
			t.Fatalf("writer: %v", err)
		}
		if st := srv.Stats(); st.SendBufferFull != 0 || st.Requests != n {
			t.Fatalf("Stats: SendBufferFull %d, Requests %d; want 0 and %d", st.SendBufferFull, st.Requests, n)
		}
	})
}
