package connections

import (
	"testing"
	"time"

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
	s := NewServer(Config{IdleTimeout: time.Minute, Wheel: w})
	c := s.newStdConn()
	c.s = s
	b.Run("how=touch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.touchIn()
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

// TestTimersShareTheConnectionAllocation: a connection of a server with
// timers is one allocation, its timers included.
func TestTimersShareTheConnectionAllocation(t *testing.T) {
	s := NewServer(Config{IdleTimeout: time.Minute, Wheel: timer.New(timer.Options{})})
	if n := testing.AllocsPerRun(100, func() { _ = s.newStdConn() }); n != 1 {
		t.Fatalf("newStdConn: %v allocations, want 1", n)
	}
}

// TestTimeoutDefaults: a zero Config gets every read and send timeout at
// its default, so its connections carry timers; negative values turn them
// off (no timers left without IdleTimeout and Heartbeat); a Client applies
// none.
func TestTimeoutDefaults(t *testing.T) {
	s := NewServer(Config{})
	if s.headNs != int64(DefaultHeaderTimeout) || s.bodyNs != int64(DefaultBodyTimeout) || s.minRate != DefaultBodyMinRate ||
		s.keepNs != int64(DefaultKeepAliveTimeout) || s.sendNs != int64(DefaultSendTimeout) || !s.timed ||
		s.checkNs != int64(DefaultHeaderTimeout) {
		t.Fatalf("zero Config: header %d, body %d at %d B/s, keep-alive %d, send %d, timed %v, every %d",
			s.headNs, s.bodyNs, s.minRate, s.keepNs, s.sendNs, s.timed, s.checkNs)
	}
	off := NewServer(Config{HeaderTimeout: -1, BodyTimeout: -1, KeepAliveTimeout: -1, SendTimeout: -1})
	if off.timed || off.headNs|off.bodyNs|off.keepNs|off.sendNs|off.minRate != 0 {
		t.Fatalf("every timeout off: timed %v, %d %d %d %d %d", off.timed, off.headNs, off.bodyNs, off.keepNs, off.sendNs, off.minRate)
	}
	if off.newStdConn().tm != nil {
		t.Fatal("a connection without timeouts carries timers")
	}
	cl, err := NewClient("tcp://127.0.0.1:1", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.srv.timed {
		t.Fatal("a Client's connections carry the server's timeouts")
	}
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
				s := NewServer(cfg)
				c := s.newStdConn()
				c.init(s, c, &s.ctr)
				if (c.tm != nil) != on {
					b.Fatalf("timers %v with timeouts %v", c.tm != nil, on)
				}
				in := []byte(pc.in)
				buf := make([]byte, len(in))
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					copy(buf, in)
					c.touchIn()
					if used, _ := c.dispatch(buf); used != len(buf) {
						b.Fatalf("dispatch used %d of %d bytes", used, len(buf))
					}
					c.mu.Lock()
					if c.out != nil { // the answer: dropped, as if written
						s.bufs.Put(c.out)
						c.out = nil
					}
					c.mu.Unlock()
				}
			})
		}
	}
}
