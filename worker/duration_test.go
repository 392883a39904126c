package worker

import (
	"testing"
	"time"
)

func TestDurationBuckets(t *testing.T) {
	var h durations
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 51 * time.Microsecond, time.Millisecond, 11 * time.Second} {
		h.observe(d)
	}
	got := h.histogram()
	want := map[int]uint64{0: 2, 1: 1, 4: 1, len(durationBounds): 1}
	for i, n := range got.Counts {
		if n != want[i] {
			t.Errorf("bucket %d: %d, want %d (%v)", i, n, want[i], got.Counts)
		}
	}
	if s := got.SumSeconds; s < 11.001 || s > 11.0012 {
		t.Errorf("sum %v s", s)
	}
}

// BenchmarkDurationObserve is what timing a message costs the worker: two
// clock reads and the histogram's atomic adds (run with -cpu 1,2 to see
// the adds of loops on two cores).
func BenchmarkDurationObserve(b *testing.B) {
	var h durations
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			h.observe(time.Since(start))
		}
	})
}
