package std

import (
	"testing"
	"time"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/timer"
)

// TestTimersShareTheConnectionAllocation: a connection of a server with
// timers is one allocation, its timers included.
func TestTimersShareTheConnectionAllocation(t *testing.T) {
	s := core.NewRuntime(core.Config{IdleTimeout: time.Minute, Wheel: timer.New(timer.Options{})})
	// Kept in a package variable: discarded, an inlined newStdConn's
	// result stays on the stack (0 allocations) without -race.
	if n := testing.AllocsPerRun(100, func() { stdConnSink = newStdConn(s) }); n != 1 {
		t.Fatalf("newStdConn: %v allocations, want 1", n)
	}
}

var stdConnSink *stdConn
