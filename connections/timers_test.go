package connections_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
	"github.com/goes-project/goes/timer"
)

// TestIdleTimeout: over real sockets, a connection that sends nothing is
// closed by the server once IdleTimeout has passed, never before, while a
// connection that sends a request every few milliseconds stays open for
// several timeouts. The server uses a wheel of its own.
func TestIdleTimeout(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const idle = 300 * time.Millisecond
		var closed atomic.Int32
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), IdleTimeout: idle,
			Handler: connections.Handler{
				OnMessage: echo,
				OnClose:   func(connections.Connection) { closed.Add(1) },
			},
		})
		start := time.Now() // before the server can have accepted it
		quiet := dial(t, "tcp", addr)
		active := dial(t, "tcp", addr)
		r := bufio.NewReader(active)
		exchange := func() {
			t.Helper()
			io.WriteString(active, "ping\n")
			if l, err := r.ReadString('\n'); err != nil || l != "ping\n" {
				t.Fatalf("active connection: %q, %v after %v", l, err, time.Since(start))
			}
		}
		// The quiet connection is closed (the peer sees the end of the
		// stream) no earlier than the timeout; meanwhile the active one
		// talks.
		quietClosed := make(chan time.Duration, 1)
		go func() {
			io.Copy(io.Discard, quiet)
			quietClosed <- time.Since(start)
			quiet.Close()
		}()
		var after time.Duration
		for waiting := true; waiting; {
			select {
			case after = <-quietClosed:
				waiting = false
			case <-time.After(5 * time.Millisecond):
				exchange()
			}
		}
		if after < idle {
			t.Fatalf("quiet connection closed after %v, before its idle timeout %v", after, idle)
		}
		// The active one outlives more timeouts.
		for end := time.Now().Add(2 * idle); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			exchange()
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "quiet connection's OnClose", func() bool { return closed.Load() == 1 })
		if n := s.Stats().Connections; n != 1 {
			t.Fatalf("%d connections open, want the active one", n)
		}
	})
}

// TestHeartbeat: a silent connection receives the heartbeat payload
// every Heartbeat; a peer that answers each heartbeat is not idle, one
// that does not is closed after IdleTimeout. The timers run on a wheel
// the caller owns (the worker's), which holds one node per connection and
// none once the connections are gone.
func TestHeartbeat(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const (
			beat = 40 * time.Millisecond
			idle = 8 * beat
		)
		w := timer.New(timer.Options{Logger: zerolog.New(zerolog.NewTestWriter(t))})
		w.Start()
		t.Cleanup(w.Stop) // after the server's Close (cleanups run last first)
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), IdleTimeout: idle, Heartbeat: beat, HeartbeatData: []byte("hb\n"),
			Wheel: w,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				if string(d) != "pong" {
					echo(c, d)
				}
			}},
		})
		answering := dial(t, "tcp", addr)
		silent := dial(t, "tcp", addr)
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "one timer per connection", func() bool { return s.Stats().Connections == 2 && w.Len() == 2 })
		// The silent peer gets heartbeats until the server gives up on it.
		silentDone := make(chan error, 1)
		go func() {
			b, err := io.ReadAll(silent)
			silent.Close()
			if err == nil && (len(b) < 2*len("hb\n") || strings.Trim(string(b), "hb\n") != "") {
				err = errors.New("silent peer got " + string(b))
			}
			silentDone <- err
		}()
		// The answering peer answers every heartbeat, and outlives the
		// silent one by more than an idle timeout.
		r := bufio.NewReader(answering)
		beats := 0
		var silentClosed time.Time
		for silentClosed.IsZero() || time.Since(silentClosed) < 2*idle {
			l, err := r.ReadString('\n')
			if err != nil || l != "hb\n" {
				t.Fatalf("answering peer after %d heartbeats: %q, %v", beats, l, err)
			}
			beats++
			io.WriteString(answering, "pong\n")
			if silentClosed.IsZero() {
				select {
				case err := <-silentDone:
					if err != nil {
						t.Fatal(err)
					}
					silentClosed = time.Now()
				default:
				}
			}
		}
		answering.Close()
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "connections gone", func() bool { return s.Stats().Connections == 0 })
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "timers stopped", func() bool { return w.Len() == 0 })
	})
}

// TestHeartbeatCountsOutput: a connection the server keeps busy sending
// gets no heartbeat; only silence both ways calls for one.
func TestHeartbeatCountsOutput(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const beat = 150 * time.Millisecond
		stop := make(chan struct{})
		pushed := make(chan struct{})
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), Heartbeat: beat, HeartbeatData: []byte("hb\n"),
			Handler: connections.Handler{OnConnect: func(c connections.Connection) {
				go func() {
					defer close(pushed)
					tick := time.NewTicker(2 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							c.Send("data", false)
						}
					}
				}()
			}},
		})
		c := dial(t, "tcp", addr)
		r := bufio.NewReader(c)
		for end := time.Now().Add(3 * beat); time.Now().Before(end); {
			if l, err := r.ReadString('\n'); err != nil || l != "data\n" {
				t.Fatalf("got %q, %v while the server sends", l, err)
			}
		}
		close(stop)
		<-pushed
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "hb\n" {
				break // silence, then a heartbeat
			}
		}
	})
}

// BenchmarkIdleTimeoutCost compares a loopback request and its answer
// with and without an idle timeout (the timer is only touched per read).
func BenchmarkIdleTimeoutCost(b *testing.B) {
	for _, e := range testkit.Engines() {
		for _, idle := range []time.Duration{0, time.Minute} {
			name := "engine=" + e.String() + "/idle=off"
			if idle > 0 {
				name = "engine=" + e.String() + "/idle=1m"
			}
			b.Run(name, func(b *testing.B) {
				addr := benchServer(b, connections.Config{
					Engine: e.Name, CallbackGoroutines: e.Pool, Protocol: text.New(), IdleTimeout: idle,
					Handler: connections.Handler{OnMessage: echo},
				})
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				req := []byte("ping ping ping ping\n")
				resp := make([]byte, len(req))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, resp); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestIdleTimeoutStalledOutput: a connection paused while it sends (a
// stream, a download) is not idle however long it reads nothing, as long
// as its peer takes the output; once the peer stops reading and the queued
// output stops moving for IdleTimeout, the server destroys it.
func TestIdleTimeoutStalledOutput(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const idle = 300 * time.Millisecond
		closed := make(chan time.Time, 1)
		started := make(chan time.Time, 1)
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), IdleTimeout: idle, MaxSendBufferSize: 64 << 10,
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, _ []byte) {
					c.PauseRecv()
					// Send until the kernel's buffers are full too and
					// the send buffer stays full.
					go func() {
						piece := strings.Repeat("x", 1023)
						for {
							err := c.Send(piece, false)
							if errors.Is(err, connections.ErrSendBufferFull) {
								ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
								err = connections.WaitDrained(ctx, c)
								cancel()
								if errors.Is(err, context.DeadlineExceeded) {
									started <- time.Now()
									return
								}
							}
							if err != nil {
								t.Errorf("send: %v", err)
								return
							}
						}
					}()
				},
				OnClose: func(connections.Connection) { closed <- time.Now() },
			},
		})
		peer := dial(t, "tcp", addr)
		io.WriteString(peer, "go\n")
		full := <-started
		select {
		case at := <-closed:
			if stalled := at.Sub(full); stalled < idle {
				t.Fatalf("destroyed %v after its output stalled, before IdleTimeout %v", stalled, idle)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a paused connection whose peer reads nothing was kept for 10 s")
		}
	})
}
