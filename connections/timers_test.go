package connections_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
	"github.com/goes-project/goes/timer"
)

// The rules of IdleTimeout and Heartbeat are tested to the tick on a fake
// clock: in a testing/synctest bubble, with the standard engine serving
// in-memory pipes (testkit.PipeListener), since a goroutine blocked on a
// socket would stop the bubble's clock. The rules live in the engines'
// common code (timersExpired); TestTimersOverSockets then checks, once per
// engine and with margins wide enough for a loaded machine, that each
// engine feeds them over real sockets.

// wheelSlack is how late a timer of the server's wheel (1 ms resolution)
// may run on the fake clock.
const wheelSlack = 2 * time.Millisecond

// servePipe starts a server for cfg with the standard engine on a
// testkit.PipeListener; call it inside a synctest bubble. Cleanup closes
// the server.
func servePipe(t *testing.T, cfg connections.Config) (*connections.Server, *testkit.PipeListener) {
	t.Helper()
	cfg.Engine = connections.EngineStd
	cfg.Logger = testkit.Logger(t)
	ln := testkit.NewPipeListener(t)
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln
}

// endOf reads c to its end in a goroutine and then sends how long after
// start that came.
func endOf(c net.Conn, start time.Time) <-chan time.Duration {
	end := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, c)
		end <- time.Since(start)
	}()
	return end
}

// fakePatience bounds, on the fake clock, every wait of the rule tests: a
// broken rule fails them instead of leaving the clock running forever.
const fakePatience = time.Hour

// dialPipe dials ln; reads and writes on the connection fail after
// fakePatience.
func dialPipe(t *testing.T, ln *testkit.PipeListener) net.Conn {
	t.Helper()
	c := ln.Dial(t)
	c.SetDeadline(time.Now().Add(fakePatience))
	return c
}

// awaitFake receives from ch, failing t if nothing comes within fakePatience.
func awaitFake[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(fakePatience):
		t.Fatalf("%s: nothing after %v", what, fakePatience)
		panic("unreachable")
	}
}

// notEnded fails t if end has been sent on, once every goroutine of the
// bubble is blocked.
func notEnded(t *testing.T, end <-chan time.Duration, what string) {
	t.Helper()
	synctest.Wait()
	select {
	case at := <-end:
		t.Fatalf("%s: closed after %v", what, at)
	default:
	}
}

// TestIdleTimeoutRules: IdleTimeout closes a connection that has
// received nothing for that long, to the tick; one that talks stays; one
// whose reading is paused or whose callback runs is not idle, and once it
// is again it is closed within an IdleTimeout.
func TestIdleTimeoutRules(t *testing.T) {
	const idle = time.Second
	t.Run("quiet closed, talking kept", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var closed atomic.Int32
			s, ln := servePipe(t, connections.Config{Protocol: text.New(), IdleTimeout: idle,
				Handler: connections.Handler{OnMessage: echo, OnClose: func(connections.Connection) { closed.Add(1) }},
			})
			start := time.Now()
			quietEnd := endOf(dialPipe(t, ln), start)
			talking := dialPipe(t, ln)
			r := bufio.NewReader(talking)
			for time.Since(start) < 5*idle {
				time.Sleep(idle / 4)
				io.WriteString(talking, "ping\n")
				if l, err := r.ReadString('\n'); err != nil || l != "ping\n" {
					t.Fatalf("talking connection after %v: %q, %v", time.Since(start), l, err)
				}
			}
			if at := awaitFake(t, quietEnd, "quiet connection closed"); at < idle || at > idle+wheelSlack {
				t.Fatalf("quiet connection closed after %v, want %v", at, idle)
			}
			synctest.Wait()
			if n, open := closed.Load(), s.Stats().Connections; n != 1 || open != 1 {
				t.Fatalf("%d OnClose, %d connections open; want the quiet one closed, the talking one open", n, open)
			}
		})
	})
	t.Run("paused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			paused := make(chan connections.Connection, 1)
			_, ln := servePipe(t, connections.Config{Protocol: text.New(), IdleTimeout: idle,
				Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
					c.PauseRecv()
					paused <- c
				}},
			})
			start := time.Now()
			nc := dialPipe(t, ln)
			end := endOf(nc, start)
			io.WriteString(nc, "pause\n")
			c := awaitFake(t, paused, "OnMessage")
			time.Sleep(5 * idle)
			notEnded(t, end, "paused connection")
			resumed := time.Since(start)
			c.ResumeRecv()
			if at := awaitFake(t, end, "resumed connection closed"); at <= resumed || at > resumed+idle+wheelSlack {
				t.Fatalf("resumed after %v, closed after %v: want within an IdleTimeout", resumed, at)
			}
		})
	})
	t.Run("callback running", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			_, ln := servePipe(t, connections.Config{Protocol: text.New(), IdleTimeout: idle,
				Handler: connections.Handler{OnMessage: func(connections.Connection, []byte) {
					close(entered)
					<-release
				}},
			})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce) // before the server's Close, should the test fail
			start := time.Now()
			nc := dialPipe(t, ln)
			end := endOf(nc, start)
			io.WriteString(nc, "block\n")
			awaitFake(t, entered, "OnMessage")
			time.Sleep(5 * idle)
			notEnded(t, end, "connection in a callback")
			returned := time.Since(start)
			releaseOnce()
			if at := awaitFake(t, end, "connection closed after the callback"); at <= returned || at > returned+idle+wheelSlack {
				t.Fatalf("callback returned after %v, closed after %v: want within an IdleTimeout", returned, at)
			}
		})
	})
}

// TestIdleTimeoutStalledOutputRule: a connection paused while it sends (a
// stream, a download) is not idle however long it reads nothing, as long
// as its peer takes the output; once the peer stops reading and the
// queued output stops moving, the server destroys it between one and two
// IdleTimeouts later.
func TestIdleTimeoutStalledOutputRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Second
		piece := strings.Repeat("x", 1023)
		fill := func(c connections.Connection) {
			for c.Send(piece, false) == nil {
			}
		}
		var start time.Time
		closed := make(chan time.Duration, 1)
		_, ln := servePipe(t, connections.Config{Protocol: text.New(), IdleTimeout: idle, MaxSendBufferSize: 64 << 10,
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, _ []byte) {
					c.PauseRecv()
					fill(c)
				},
				OnBufferDrain: fill,
				OnClose:       func(connections.Connection) { closed <- time.Since(start) },
			},
		})
		start = time.Now()
		peer := dialPipe(t, ln)
		io.WriteString(peer, "go\n")
		// The peer takes 128 KiB at a time, less than an IdleTimeout
		// apart (a pipe's Write returns once all of it is read: each
		// read of twice the send buffer ends at least one).
		buf := make([]byte, 128<<10)
		var last time.Duration
		for time.Since(start) < 5*idle {
			time.Sleep(idle * 2 / 5)
			if _, err := io.ReadFull(peer, buf); err != nil {
				t.Fatalf("peer after %v: %v", time.Since(start), err)
			}
			last = time.Since(start)
		}
		synctest.Wait()
		select {
		case at := <-closed:
			t.Fatalf("destroyed after %v while its peer read", at)
		default:
		}
		// Then it reads no more.
		if at := awaitFake(t, closed, "stalled connection destroyed"); at < last+idle || at > last+2*idle+wheelSlack {
			t.Fatalf("output stalled after %v, connection destroyed after %v: want one to two IdleTimeouts later", last, at)
		}
	})
}

// TestHeartbeatRules: a silent connection receives the heartbeat payload
// every Heartbeat, to the tick, until IdleTimeout closes it; a peer that
// answers each heartbeat is not idle. The timers run on a wheel the caller
// owns (the worker's), which holds one node per connection and none once
// the connections are gone.
func TestHeartbeatRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			beat = time.Second
			idle = 8 * beat
		)
		w := timer.New(timer.Options{Logger: testkit.Logger(t)})
		w.Start()
		t.Cleanup(w.Stop) // after the server's Close (cleanups run last first)
		s, ln := servePipe(t, connections.Config{
			Protocol: text.New(), IdleTimeout: idle, Heartbeat: beat, HeartbeatData: []byte("hb\n"), Wheel: w,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				if string(d) != "pong" {
					echo(c, d)
				}
			}},
		})
		start := time.Now()
		answering := dialPipe(t, ln)
		silent := dialPipe(t, ln)
		synctest.Wait()
		if n, pending := s.Stats().Connections, w.Len(); n != 2 || pending != 2 {
			t.Fatalf("%d connections, %d timers; want 2 of each", n, pending)
		}
		type result struct {
			beats []time.Duration
			end   time.Duration
			err   error
		}
		silentDone := make(chan result, 1)
		go func() {
			var res result
			r := bufio.NewReader(silent)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					res.end = time.Since(start)
					if err != io.EOF {
						res.err = err
					}
					break
				}
				if l != "hb\n" {
					res.err = errors.New("silent peer got " + l)
				}
				res.beats = append(res.beats, time.Since(start))
			}
			silentDone <- res
		}()
		r := bufio.NewReader(answering)
		for k := 1; time.Since(start) < 3*idle; k++ {
			l, err := r.ReadString('\n')
			if at := time.Since(start); err != nil || l != "hb\n" || at < time.Duration(k)*beat || at > time.Duration(k)*beat+wheelSlack {
				t.Fatalf("answering peer, heartbeat %d: %q, %v after %v", k, l, err, at)
			}
			io.WriteString(answering, "pong\n")
		}
		res := awaitFake(t, silentDone, "silent connection closed")
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.end < idle || res.end > idle+wheelSlack {
			t.Fatalf("silent peer closed after %v, want %v", res.end, idle)
		}
		if len(res.beats) < int(idle/beat)-1 {
			t.Fatalf("silent peer got %d heartbeats, want one a second until it is closed", len(res.beats))
		}
		for k, at := range res.beats {
			if want := time.Duration(k+1) * beat; at < want || at > want+wheelSlack {
				t.Fatalf("silent peer's heartbeat %d after %v, want %v", k+1, at, want)
			}
		}
		answering.Close()
		synctest.Wait()
		if n, pending := s.Stats().Connections, w.Len(); n != 0 || pending != 0 {
			t.Fatalf("%d connections, %d timers left", n, pending)
		}
	})
}

// TestHeartbeatCountsOutputRule: a connection the server keeps busy
// sending gets no heartbeat; the first comes a Heartbeat after the last
// output.
func TestHeartbeatCountsOutputRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const beat = time.Second
		stop := make(chan struct{})
		_, ln := servePipe(t, connections.Config{
			Protocol: text.New(), Heartbeat: beat, HeartbeatData: []byte("hb\n"),
			Handler: connections.Handler{OnConnect: func(c connections.Connection) {
				go func() {
					tick := time.NewTicker(beat / 10)
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
		stopPush := sync.OnceFunc(func() { close(stop) })
		t.Cleanup(stopPush) // should the test fail
		start := time.Now()
		c := dialPipe(t, ln)
		r := bufio.NewReader(c)
		var last time.Duration
		for time.Since(start) < 5*beat {
			if l, err := r.ReadString('\n'); err != nil || l != "data\n" {
				t.Fatalf("got %q, %v after %v while the server sends", l, err, time.Since(start))
			}
			last = time.Since(start)
		}
		stopPush()
		l, err := r.ReadString('\n')
		if at := time.Since(start); err != nil || l != "hb\n" || at < last+beat || at > last+beat+wheelSlack {
			t.Fatalf("after the last output (%v): %q, %v after %v, want a heartbeat a Heartbeat later", last, l, err, at)
		}
	})
}

// TestHeartbeatWaitsForQueuedOutputRule: no heartbeat goes out while
// output is queued, however long the peer takes to read it; the first
// comes a Heartbeat after the output has gone.
func TestHeartbeatWaitsForQueuedOutputRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const beat = time.Second
		big := strings.Repeat("x", 100<<10)
		_, ln := servePipe(t, connections.Config{
			Protocol: text.New(), Heartbeat: beat, HeartbeatData: []byte("hb\n"),
			Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) { c.Send(big, false) }},
		})
		start := time.Now()
		c := dialPipe(t, ln)
		io.WriteString(c, "big\n")
		time.Sleep(5 * beat)
		r := bufio.NewReader(c)
		if l, err := r.ReadString('\n'); err != nil || l != big+"\n" {
			t.Fatalf("read %d bytes (%v) after 5 heartbeats' time, want the answer alone", len(l), err)
		}
		read := time.Since(start)
		if l, err := r.ReadString('\n'); err != nil || l != "hb\n" || time.Since(start) < read+beat || time.Since(start) > read+beat+wheelSlack {
			t.Fatalf("answer read after %v, then %q, %v after %v: want a heartbeat a Heartbeat later", read, l, err, time.Since(start))
		}
	})
}

// TestTimersOverSockets: over real sockets, with each engine, a silent
// connection gets heartbeats and is closed once IdleTimeout has passed,
// not before; a peer that answers the heartbeats outlives it by an
// IdleTimeout more; and a paused connection whose peer takes none of its
// output is destroyed, not before IdleTimeout. The margins are wide, for
// a loaded machine: lower bounds are measured from before their cause,
// and a heartbeat every tenth of IdleTimeout leaves the answering peer
// most of one to answer.
func TestTimersOverSockets(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		t.Parallel()
		const (
			idle = 2 * time.Second
			beat = idle / 10
		)
		var staller atomic.Value // connections.Connection
		stallerClosed := make(chan time.Time, 1)
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), IdleTimeout: idle, Heartbeat: beat, HeartbeatData: []byte("hb\n"),
			MaxSendBufferSize: 64 << 10,
			Handler: connections.Handler{
				OnMessage: func(c connections.Connection, d []byte) {
					if string(d) != "stall" {
						return // a pong
					}
					staller.Store(c)
					c.PauseRecv()
					// Send until the kernel's buffers and the send
					// buffer are full, and wait there until destroyed.
					go func() {
						piece := strings.Repeat("x", 1023)
						for {
							err := c.Send(piece, false)
							if errors.Is(err, connections.ErrSendBufferFull) {
								err = connections.WaitDrained(context.Background(), c)
							}
							if err != nil {
								return
							}
						}
					}()
				},
				OnClose: func(c connections.Connection) {
					if v := staller.Load(); v != nil && v.(connections.Connection) == c {
						stallerClosed <- time.Now()
					}
				},
			},
		})
		start := time.Now() // before the server can have accepted them
		quiet := dial(t, "tcp", addr)
		answering := dial(t, "tcp", addr)
		stalling := dial(t, "tcp", addr)
		for _, c := range []net.Conn{quiet, answering, stalling} {
			c.SetDeadline(time.Now().Add(testkit.Wait))
		}
		io.WriteString(stalling, "stall\n")
		quietDone := make(chan error, 1)
		var quietEnd time.Duration
		go func() {
			b, err := io.ReadAll(quiet)
			quietEnd = time.Since(start)
			if err == nil && (len(b) == 0 || strings.Trim(string(b), "hb\n") != "") {
				err = errors.New("quiet peer got " + string(b))
			}
			quietDone <- err
		}()
		r := bufio.NewReader(answering)
		beats := 0
		var quietClosed time.Time
		for quietClosed.IsZero() || time.Since(quietClosed) < idle {
			l, err := r.ReadString('\n')
			if err != nil || l != "hb\n" {
				t.Fatalf("answering peer after %d heartbeats, %v: %q, %v", beats, time.Since(start), l, err)
			}
			beats++
			io.WriteString(answering, "pong\n")
			if quietClosed.IsZero() {
				select {
				case err := <-quietDone:
					if err != nil {
						t.Fatal(err)
					}
					if quietEnd < idle {
						t.Fatalf("quiet connection closed after %v, before its IdleTimeout %v", quietEnd, idle)
					}
					quietClosed = time.Now()
				default:
				}
			}
		}
		select {
		case at := <-stallerClosed:
			if held := at.Sub(start); held < idle {
				t.Fatalf("stalled connection destroyed after %v, before IdleTimeout %v", held, idle)
			}
		case <-time.After(testkit.Wait):
			t.Fatalf("a paused connection whose peer reads nothing was kept for %v", testkit.Wait)
		}
		answering.Close()
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "connections gone", func() bool { return s.Stats().Connections == 0 })
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
