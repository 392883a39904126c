package connections_test

import (
	"bufio"
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
	"github.com/goes-project/goes/timer"
)

// TestLingeringCloseIsBounded: the server answers and closes while the
// peer goes on sending and never closes. The peer reads the answer and
// then the end of the stream (the server shut down its sending side, no
// reset), and the server still lets the connection go by itself, having
// read a bounded amount of the flood.
func TestLingeringCloseIsBounded(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		var closed atomic.Int32
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, d []byte) {
					c.Send("bye", false)
					c.Close()
				},
				OnClose: func(connections.Connection) { closed.Add(1) },
			},
		})
		c := dial(t, "tcp", addr)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "quit\n")
		flood := bytes.Repeat([]byte("x"), 64<<10)
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for {
				if _, err := c.Write(flood); err != nil {
					return // the server closed at last, or the test did
				}
			}
		}()
		r := bufio.NewReader(c)
		if l, err := r.ReadString('\n'); err != nil || l != "bye\n" {
			t.Fatalf("got %q, %v", l, err)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("after the answer: %v, want EOF", err)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "lingering connection closed", func() bool { return closed.Load() == 1 })
		c.Close()
		<-writerDone
		// The bound, plus one read of up to 64 KiB on each side of it: the
		// read that carried the request (with flood behind it) is not
		// counted against the bound, and the read that crosses it is
		// taken whole.
		if in := s.Stats().BytesIn; in > 2*64<<10+1<<20 {
			t.Fatalf("server read %d bytes of the flood", in)
		}
	})
}

// TestLingerTimeoutOnWheel: the server answers and closes; the peer reads
// the answer and the end of the stream but neither sends nor closes. The
// lingering connection is destroyed by its deadline on the server's timer
// wheel, which has nothing left pending once the connections are gone;
// the same holds when the peer closes at once.
func TestLingerTimeoutOnWheel(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		w := timer.New(timer.Options{})
		w.Start()
		t.Cleanup(w.Stop)
		var closed atomic.Int32
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(),
			Wheel:    w,
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, d []byte) {
					c.Send("bye", false)
					c.Close()
				},
				OnClose: func(connections.Connection) { closed.Add(1) },
			},
		})
		silent := dial(t, "tcp", addr)
		silent.SetDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		io.WriteString(silent, "quit\n")
		r := bufio.NewReader(silent)
		if l, err := r.ReadString('\n'); err != nil || l != "bye\n" {
			t.Fatalf("got %q, %v", l, err)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("after the answer: %v, want EOF", err)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "silent peer's connection closed", func() bool { return closed.Load() == 1 })
		// The server gave the silent peer its linger time, about a second.
		if held := time.Since(start); held < 900*time.Millisecond {
			t.Errorf("silent peer let go after %v, before the linger time", held)
		}
		if n := w.Len(); n != 0 {
			t.Fatalf("%d timers pending after the close", n)
		}

		polite := dial(t, "tcp", addr)
		io.WriteString(polite, "quit\n")
		io.ReadAll(polite)
		polite.Close()
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "polite peer's connection closed", func() bool { return closed.Load() == 2 })
		// The close stopped the linger deadline: nothing waits a second.
		if n := w.Len(); n != 0 {
			t.Fatalf("%d timers pending after a prompt close", n)
		}
	})
}
