package connections_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
)

// TestErrorStats: Stats tells the kinds of Errors apart. One connection
// sends a line over MaxPackageSize (bad input), one makes OnMessage panic,
// one asks for more than its send buffer holds while it does not read
// (one send dropped): each is counted once, in its own field and in Errors.
func TestErrorStats(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		s, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), MaxPackageSize: 1024, MaxSendBufferSize: 64 << 10,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				switch string(d) {
				case "panic":
					panic("on purpose")
				case "flood":
					chunk := strings.Repeat("z", 16<<10)
					for range 100 {
						if err := c.Send(chunk, false); errors.Is(err, connections.ErrSendBufferFull) {
							return
						}
					}
					panic("the send buffer never filled")
				}
			}},
		})
		bad := dial(t, "tcp", addr)
		io.WriteString(bad, strings.Repeat("x", 2048)+"\n")
		pan := dial(t, "tcp", addr)
		io.WriteString(pan, "panic\n")
		for _, c := range []net.Conn{bad, pan} {
			c.SetReadDeadline(time.Now().Add(testkit.Wait))
			io.Copy(io.Discard, c) // until the server closes it
		}
		flood := dial(t, "tcp", addr)
		io.WriteString(flood, "flood\n")
		type errStats struct{ BadInput, Panics, SendBufferFull, Errors uint64 }
		want := errStats{BadInput: 1, Panics: 1, SendBufferFull: 1, Errors: 3}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "error stats", func() error {
			st := s.Stats()
			got := errStats{BadInput: st.BadInput, Panics: st.Panics, SendBufferFull: st.SendBufferFull, Errors: st.Errors}
			if got != want {
				return fmt.Errorf("got %+v, want %+v", got, want)
			}
			return nil
		})
	})
}

// TestErrorStatsUDP: a datagram the protocol refuses is bad input, a
// panic in OnMessage a panic.
func TestErrorStatsUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(connections.Config{Transport: "udp", Protocol: text.New(), Logger: testkit.Logger(t),
		Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
			if string(d) == "panic" {
				panic("on purpose")
			}
		}}})
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	t.Cleanup(func() { s.Close(); <-done })
	c := dial(t, "udp", pc.LocalAddr().String())
	io.WriteString(c, "no newline") // a partial packet: refused
	io.WriteString(c, "panic\n")
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "error stats", func() error {
		if st := s.Stats(); st.BadInput != 1 || st.Panics != 1 || st.Errors != 2 {
			return fmt.Errorf("got %+v", st)
		}
		return nil
	})
}

// TestLoopBusy: Stats.LoopBusy counts the time the event loops spend
// handling events. A callback that holds its loop for 200 ms (callbacks on
// the loop) shows as at least that much busy time; an idle server's loops
// stay near zero.
func TestLoopBusy(t *testing.T) {
	const hold = 200 * time.Millisecond
	s, addr := serve(t, "tcp", connections.Config{Engine: connections.EngineEpoll, Protocol: text.New(),
		Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
			end := time.Now().Add(hold)
			for time.Now().Before(end) { // busy, as a slow callback is
			}
			c.Send("done", false)
		}},
	})
	if b := s.Stats().LoopBusy; b >= hold {
		t.Fatalf("idle server's loops busy for %v", b)
	}
	c := dial(t, "tcp", addr)
	io.WriteString(c, "work\n")
	c.SetReadDeadline(time.Now().Add(testkit.Wait))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	// The answer may be written before the loop's pass ends and is counted.
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "loop busy time", func() error {
		if b := s.Stats().LoopBusy; b < hold {
			return fmt.Errorf("loops busy for %v after a %v callback, want at least that", b, hold)
		}
		return nil
	})
}
