package timer

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
)

// TestConcurrentAddDel hammers one running wheel, on the real clock, from
// many goroutines: one-shot and persistent user timers added and deleted,
// and Timers shared by all goroutines scheduled, reset and stopped at
// random. Every one-shot timer must run exactly once unless Del returned
// true for it, in which case it must never run, and none may run early.
func TestConcurrentAddDel(t *testing.T) {
	w := startWheel(t, Options{})
	const goroutines, perG = 8, 5000
	type rec struct {
		runs    atomic.Int32
		deleted bool // written only by the goroutine that owns the rec
	}
	var (
		early  atomic.Int64
		shared [16]Timer
		sruns  atomic.Int64
		wg     sync.WaitGroup
		recs   [goroutines][]rec
	)
	for k := range shared {
		w.Schedule(&shared[k], time.Hour, func() { sruns.Add(1) })
	}
	stopLen := make(chan struct{})
	go func() { // readers of the counters, concurrently with everything
		for {
			select {
			case <-stopLen:
				return
			default:
				_, _ = w.Len(), w.LenUser()
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for g := range goroutines {
		recs[g] = make([]rec, perG)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			mine := recs[g]
			ids := make([]ID, perG)
			var persistent []ID
			for i := range perG {
				d := time.Duration(rng.IntN(3000)) * time.Microsecond
				r := &mine[i]
				start := time.Now()
				ids[i] = w.Add(d, func() {
					if time.Since(start) < d {
						early.Add(1)
					}
					r.runs.Add(1)
				}, false)
				if rng.IntN(3) == 0 {
					if j := rng.IntN(i + 1); w.Del(ids[j]) {
						if mine[j].deleted {
							t.Errorf("Del returned true twice for one timer")
						}
						mine[j].deleted = true
					}
				}
				s := &shared[rng.IntN(len(shared))]
				switch rng.IntN(3) {
				case 0:
					w.Schedule(s, d, func() { sruns.Add(1) })
				case 1:
					s.Reset(d)
				default:
					s.Stop()
				}
				if i%200 == 0 {
					persistent = append(persistent, w.Add(time.Duration(rng.IntN(500)+1)*time.Microsecond, func() {}, true))
				}
				if i%100 == 0 {
					time.Sleep(200 * time.Microsecond) // let some fire while we add
				}
			}
			for _, id := range persistent {
				if !w.Del(id) {
					t.Errorf("Del of a persistent timer = false")
				}
			}
		})
	}
	wg.Wait()
	for k := range shared {
		shared[k].Stop()
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "every timer to run", func() bool { return w.Len() == 0 })
	close(stopLen)
	if n := early.Load(); n != 0 {
		t.Errorf("%d timers ran early", n)
	}
	ran, deleted := 0, 0
	for g := range recs {
		for i := range recs[g] {
			r := &recs[g][i]
			switch n := r.runs.Load(); {
			case r.deleted && n != 0:
				t.Errorf("goroutine %d timer %d: Del returned true but it ran %d times", g, i, n)
			case !r.deleted && n != 1:
				t.Errorf("goroutine %d timer %d: ran %d times, want 1", g, i, n)
			case r.deleted:
				deleted++
			default:
				ran++
			}
		}
	}
	if w.LenUser() != 0 {
		t.Errorf("LenUser() = %d at the end", w.LenUser())
	}
	if err := checkInvariants(w); err != nil {
		t.Error(err)
	}
	t.Logf("%d ran, %d deleted, shared Timers ran %d times", ran, deleted, sruns.Load())
}
