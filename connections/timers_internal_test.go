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
