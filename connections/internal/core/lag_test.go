package core

import (
	"testing"
	"time"
)

// TestLagRecorder: a pass lands in the first bucket whose bound it does
// not exceed (a pass of exactly a bound is in that bound's bucket), one
// above every bound in the last, and the sum is the passes' total.
func TestLagRecorder(t *testing.T) {
	var r LagRecorder
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 51 * time.Microsecond, 3 * time.Millisecond, 11 * time.Second} {
		r.Observe(d)
	}
	var h LagHistogram
	r.AddTo(&h)
	want := map[int]uint64{0: 2, 1: 1, 6: 1, len(LoopLagBounds): 1}
	for i, n := range h.Counts {
		if n != want[i] {
			t.Errorf("bucket %d holds %d, want %d (%v)", i, n, want[i], h.Counts)
		}
	}
	if h.Passes() != 5 {
		t.Errorf("Passes %d, want 5", h.Passes())
	}
	if wantSum := 50*time.Microsecond + 51*time.Microsecond + 3*time.Millisecond + 11*time.Second; h.Sum != wantSum {
		t.Errorf("Sum %v, want %v", h.Sum, wantSum)
	}
}
