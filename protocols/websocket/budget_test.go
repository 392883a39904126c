package websocket_test

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// TestFragmentsBudget: the fragments of a message being reassembled count
// against the worker's input budget (protocols.InputHolder), though they
// are held by the protocol and not in the runtime's buffer: on every
// engine, with a 512 KiB budget, connections each holding 300 KiB of a
// fragmented message are closed with 1013 (try again later) as the
// budget requires, never holding more than it together, while whole
// messages keep being echoed; closing gives back what they held.
func TestFragmentsBudget(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		const budget = 512 << 10
		srv := connections.NewServer(connections.Config{
			Protocol:           &ws.Protocol{MaxMessageSize: 4 << 20},
			Handler:            echoHandler(),
			MaxPackageSize:     4 << 20,
			MaxInputMemory:     budget,
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
		addr := ln.Addr().String()

		piece := bytes.Repeat([]byte("f"), 100<<10)
		var clients []*rawClient
		var maxHeld int64
		for i := range 6 {
			c := dialRaw(t, addr, "", false)
			clients = append(clients, c)
			c.write(frame(false, 0, ws.OpBinary, piece))
			c.write(frame(false, 0, ws.OpContinuation, piece))
			c.write(frame(false, 0, ws.OpContinuation, piece))
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "fragments read", func() error {
				st := srv.Stats()
				maxHeld = max(maxHeld, st.InputHeld)
				if want := uint64(i+1) * 3 * (100<<10 + 14); st.BytesIn < want {
					return fmt.Errorf("%d bytes in, want %d", st.BytesIn, want)
				}
				return nil
			})
		}
		st := srv.Stats()
		if st.InputShed == 0 || maxHeld > budget {
			t.Fatalf("shed %d, held at most %d (budget %d)", st.InputShed, maxHeld, budget)
		}
		shed := 0
		for _, c := range clients[:len(clients)-1] {
			// A connection shed got close 1013; the others wait.
			c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := c.br.Peek(1)
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err == nil {
				if ev := c.next(); ev.Op != ws.OpClose || ev.Code != ws.CloseTryAgainLater {
					t.Fatalf("a holder got %v, want close(1013)", ev)
				}
				shed++
			}
		}
		if shed == 0 {
			t.Fatalf("no holder was told to try again later (%d shed)", st.InputShed)
		}
		whole := dialRaw(t, addr, "", false)
		whole.write(frame(true, 0, ws.OpText, []byte("hello")))
		if ev := whole.next(); ev.Op != ws.OpText || ev.Payload != "hello" {
			t.Fatalf("echo %v", ev)
		}
		for _, c := range clients {
			c.nc.Close()
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "nothing held", func() error {
			if st := srv.Stats(); st.InputHeld != 0 {
				return fmt.Errorf("held %d", st.InputHeld)
			}
			return nil
		})
	})
}
