package worker

import (
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/ipc"
)

// TestLoopLagBuckets: the master's bounds of the lag histogram are the
// loops' (a bucket added on one side only would shift every count).
func TestLoopLagBuckets(t *testing.T) {
	if len(ipc.LoopLagBuckets) != len(connections.LoopLagBounds) {
		t.Fatalf("%d buckets in ipc, %d in connections", len(ipc.LoopLagBuckets), len(connections.LoopLagBounds))
	}
	for i, b := range connections.LoopLagBounds {
		if got := time.Duration(ipc.LoopLagBuckets[i] * float64(time.Second)); got != b {
			t.Errorf("bucket %d: %v in ipc, %v in connections", i, got, b)
		}
	}
	if loopLag(connections.LagHistogram{}) != nil {
		t.Error("no pass: want no histogram (the standard engine has none)")
	}
	h := connections.LagHistogram{Sum: 3 * time.Millisecond}
	h.Counts[2], h.Counts[len(h.Counts)-1] = 4, 1
	got := loopLag(h)
	if len(got.Counts) != len(h.Counts) || got.Counts[2] != 4 || got.Counts[len(got.Counts)-1] != 1 || got.SumSeconds != 0.003 {
		t.Errorf("loopLag: %+v", got)
	}
}
