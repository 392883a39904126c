package core

import (
	"net"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
	"github.com/goes-project/goes/timer"
)

// BenchmarkTrafficTouch is what a read costs a connection with an idle
// timeout (how=touch), against rescheduling its timer on every read
// (how=reschedule, what the timers avoid).
func BenchmarkTrafficTouch(b *testing.B) {
	w := timer.New(timer.Options{})
	s := NewRuntime(Config{IdleTimeout: time.Minute, Wheel: w})
	c := newTestConn(s)
	b.Run("how=touch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.TouchIn()
		}
	})
	b.Run("how=reschedule", func(b *testing.B) {
		fn := func() {}
		b.ReportAllocs()
		for b.Loop() {
			w.Schedule(&c.tm.t, time.Minute, fn)
		}
		c.tm.t.Stop()
	})
}

// TestTimeoutDefaults: a zero Config gets every read and send timeout at
// its default, so its connections carry timers; negative values turn them
// off (no timers left without IdleTimeout and Heartbeat); a Client applies
// none.
func TestTimeoutDefaults(t *testing.T) {
	s := NewRuntime(Config{})
	if s.headNs != int64(DefaultHeaderTimeout) || s.bodyNs != int64(DefaultBodyTimeout) || s.minRate != DefaultBodyMinRate ||
		s.keepNs != int64(DefaultKeepAliveTimeout) || s.sendNs != int64(DefaultSendTimeout) || !s.Timed ||
		s.checkNs != int64(DefaultHeaderTimeout) {
		t.Fatalf("zero Config: header %d, body %d at %d B/s, keep-alive %d, send %d, timed %v, every %d",
			s.headNs, s.bodyNs, s.minRate, s.keepNs, s.sendNs, s.Timed, s.checkNs)
	}
	off := NewRuntime(Config{HeaderTimeout: -1, BodyTimeout: -1, KeepAliveTimeout: -1, SendTimeout: -1})
	if off.Timed || off.headNs|off.bodyNs|off.keepNs|off.sendNs|off.minRate != 0 {
		t.Fatalf("every timeout off: timed %v, %d %d %d %d %d", off.Timed, off.headNs, off.bodyNs, off.keepNs, off.sendNs, off.minRate)
	}
	if newTestConn(off).timers() != nil {
		t.Fatal("a connection without timeouts carries timers")
	}
	// A Client applies none: connections' TestClientHasNoTimeouts.
}

// BenchmarkDispatchTimeouts is what the read and send timeouts, on by
// default, add to a batch of input on its way through the runtime,
// without the socket: the read's touchIn and the dispatch (Input, Decode,
// OnMessage answering with Send, ReleaseState, the phase), with every
// timeout off (timeouts=off: no timers) and with the defaults.
func BenchmarkDispatchTimeouts(b *testing.B) {
	protos := []struct {
		name string
		p    protocols.Protocol
		in   string
	}{
		{"text", text.New(), "ping\n"},
		{"http", http.New(), "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n"},
	}
	for _, pc := range protos {
		for _, on := range []bool{false, true} {
			name := "proto=" + pc.name + "/timeouts=off"
			cfg := Config{Protocol: pc.p, Wheel: timer.New(timer.Options{}),
				Handler: Handler{OnMessage: func(c Connection, _ []byte) { c.Send("hello", false) }}}
			if on {
				name = "proto=" + pc.name + "/timeouts=default"
			} else {
				cfg.HeaderTimeout, cfg.BodyTimeout, cfg.KeepAliveTimeout, cfg.SendTimeout = -1, -1, -1, -1
			}
			b.Run(name, func(b *testing.B) {
				s := NewRuntime(cfg)
				c := newTestConn(s)
				if (c.timers() != nil) != on {
					b.Fatalf("timers %v with timeouts %v", c.timers() != nil, on)
				}
				in := []byte(pc.in)
				buf := make([]byte, len(in))
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					copy(buf, in)
					c.TouchIn()
					if used, _ := c.Dispatch(buf); used != len(buf) {
						b.Fatalf("dispatch used %d of %d bytes", used, len(buf))
					}
					c.Mu.Lock()
					if c.out != nil { // the answer: dropped, as if written
						s.Bufs.Put(c.out)
						c.out = nil
					}
					c.Mu.Unlock()
				}
			})
		}
	}
}

// testConn is a stream connection of no engine, for the core's own
// tests: its Ops do nothing, as if every write were done at once. Its
// timers come with it when the runtime has any (as an engine's do).
type testConn struct {
	tm ConnTimers // just before the Conn, as an engine's (UseTimers)
	Conn
}

func newTestConn(s *Runtime) *testConn {
	c := new(testConn)
	if s.Timed {
		c.UseTimers(&c.tm)
	}
	c.Init(s, c, &s.Ctr)
	return c
}

func (c *testConn) Kick()                        {}
func (c *testConn) BatchKick() (KickQueue, bool) { return nil, false }
func (c *testConn) CloseSocketLocked()           {}
func (c *testConn) Resumed()                     {}
func (c *testConn) Drained()                     {}
func (c *testConn) FlushDeadline()               {}
func (c *testConn) LingerLocked() bool           { return false }
func (c *testConn) ShedInput()                   {}
func (c *testConn) Local() net.Addr              { return nil }
func (c *testConn) Remote() net.Addr             { return nil }
func (c *testConn) EngineName() string           { return "test" }

// TestTimersShareOneFunc: a connection's timers find their Conn from the
// Timer that fired (ConnTimers.conn), so every connection's node runs the
// Runtime's one expiry func and starting a connection's timers allocates
// nothing (a method value per connection cost 16 bytes each); a timeout
// still closes the connection it belongs to.
func TestTimersShareOneFunc(t *testing.T) {
	w := timer.New(timer.Options{})
	w.Start()
	defer w.Stop()
	s := NewRuntime(Config{IdleTimeout: 20 * time.Millisecond, Wheel: w})
	var conns []*testConn
	for range 3 {
		c := newTestConn(s)
		if got := c.tm.conn(); got != &c.Conn || c.timers() != &c.tm {
			t.Fatalf("timers %p of Conn %p find Conn %p, and it finds timers %p", &c.tm, &c.Conn, got, c.timers())
		}
		conns = append(conns, c)
	}
	c := newTestConn(s)
	if n := testing.AllocsPerRun(10, func() {
		c.StartTimers()
		c.Mu.Lock()
		c.tm.t.Stop()
		c.Mu.Unlock()
	}); n != 0 {
		t.Fatalf("starting a connection's timers allocates %v times", n)
	}
	for _, c := range conns[1:] {
		c.StartTimers()
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "the idle connections closed", func() bool {
		return conns[1].Has(FClosing) && conns[2].Has(FClosing)
	})
	if conns[0].Has(FClosing) {
		t.Fatal("a connection whose timers never started was closed")
	}
}
