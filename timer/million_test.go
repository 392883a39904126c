package timer

import (
	"math"
	"testing"
	"testing/synctest"
	"time"
)

// TestMillionTimersFireOnce schedules a million Timers with expiries spread
// over every level (1 ms to 24 days, added at four different phases of the
// wheel) and checks that each runs exactly once, within a tick after due.
func TestMillionTimersFireOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 1 << 20
		w := startWheel(t, Options{})
		nodes := make([]Timer, n)
		runs := make([]uint8, n)
		late := make([]int64, n) // fire time minus due time, ns
		due := make([]int64, n)
		batches := []time.Duration{0, 1700 * time.Millisecond, 3*time.Hour + 300*time.Microsecond, 9 * day}
		for b, at := range batches {
			time.Sleep(at - time.Duration(w.nanos()))
			for i := b * n / len(batches); i < (b+1)*n/len(batches); i++ {
				// 4096 distinct durations, log-spaced from 1 ms to 2^31 ms.
				d := time.Duration(math.Exp2(float64(i%4096)*31/4096)) * time.Millisecond
				due[i] = w.nanos() + int64(d)
				w.Schedule(&nodes[i], d, func() {
					runs[i]++
					late[i] = w.nanos() - due[i]
				})
			}
		}
		time.Sleep(40 * day)
		synctest.Wait()
		if got := w.Len(); got != 0 { // also orders the callbacks' writes before the reads below
			t.Fatalf("Len() = %d after all are due, want 0", got)
		}
		bad := 0
		for i := range n {
			if runs[i] != 1 || late[i] < 0 || late[i] >= int64(time.Millisecond) {
				if bad++; bad <= 10 {
					t.Errorf("timer %d: ran %d times, %v after due", i, runs[i], time.Duration(late[i]))
				}
			}
		}
		t.Logf("%d timers, %d wake-ups", n, w.wakeups.Load())
	})
}
