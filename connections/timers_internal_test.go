package connections

import (
	"testing"
	"time"

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
