package timer

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

const million = 1 << 20

func pendingName(n int) string {
	if n == million {
		return "1M"
	}
	return fmt.Sprint(n)
}

// spread returns the i-th of n durations log-spaced from 1 s to about 24
// days, so that pending timers sit on every level above the first.
func spread(i, n int) time.Duration {
	return time.Duration(math.Exp2(float64(i)/float64(n)*21)) * time.Second
}

// BenchmarkAddCancel measures arming a timer and cancelling it again, with
// 0 or 1M other timers pending: the wheel's user timers (Add/Del), the
// wheel's embedded Timer (Schedule/Stop), the same coarse
// (ScheduleCoarse/Stop: one division more) and the runtime's timers
// (time.AfterFunc/Stop).
func BenchmarkAddCancel(b *testing.B) {
	fn := func() {}
	for _, pending := range []int{0, million} {
		b.Run("impl=wheel/pending="+pendingName(pending), func(b *testing.B) {
			w := New(Options{})
			w.Start()
			defer w.Stop()
			for i := range pending {
				w.Add(spread(i, pending), fn, false)
			}
			b.ReportAllocs()
			for b.Loop() {
				w.Del(w.Add(time.Minute, fn, false))
			}
		})
		b.Run("impl=wheel-node/pending="+pendingName(pending), func(b *testing.B) {
			w := New(Options{})
			w.Start()
			defer w.Stop()
			nodes := make([]Timer, pending)
			for i := range nodes {
				w.Schedule(&nodes[i], spread(i, pending), fn)
			}
			var t Timer
			b.ReportAllocs()
			for b.Loop() {
				w.Schedule(&t, time.Minute, fn)
				t.Stop()
			}
		})
		b.Run("impl=wheel-coarse/pending="+pendingName(pending), func(b *testing.B) {
			w := New(Options{})
			w.Start()
			defer w.Stop()
			nodes := make([]Timer, pending)
			for i := range nodes {
				w.ScheduleCoarse(&nodes[i], spread(i, pending), fn)
			}
			var t Timer
			b.ReportAllocs()
			for b.Loop() {
				w.ScheduleCoarse(&t, time.Minute, fn)
				t.Stop()
			}
		})
		b.Run("impl=runtime/pending="+pendingName(pending), func(b *testing.B) {
			others := make([]*time.Timer, pending)
			for i := range others {
				others[i] = time.AfterFunc(spread(i, pending), fn)
			}
			defer func() {
				for _, t := range others {
					t.Stop()
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				time.AfterFunc(time.Minute, fn).Stop()
			}
		})
	}
}

// BenchmarkAddCancelParallel is BenchmarkAddCancel/pending=0 from every P
// at once: the wheel has one lock, the runtime a timer heap per P.
func BenchmarkAddCancelParallel(b *testing.B) {
	fn := func() {}
	b.Run("impl=wheel", func(b *testing.B) {
		w := New(Options{})
		w.Start()
		defer w.Stop()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Del(w.Add(time.Minute, fn, false))
			}
		})
	})
	b.Run("impl=runtime", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				time.AfterFunc(time.Minute, fn).Stop()
			}
		})
	})
}

// BenchmarkScheduleCancel1M schedules 1M timers spread over the levels, then
// cancels them all; ns/timer is per schedule+cancel pair.
func BenchmarkScheduleCancel1M(b *testing.B) {
	fn := func() {}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/million, "ns/timer")
	}
	b.Run("impl=wheel", func(b *testing.B) {
		w := New(Options{})
		w.Start()
		defer w.Stop()
		ids := make([]ID, million)
		b.ReportAllocs()
		for b.Loop() {
			for i := range ids {
				ids[i] = w.Add(spread(i, million), fn, false)
			}
			for _, id := range ids {
				w.Del(id)
			}
		}
		report(b)
	})
	b.Run("impl=wheel-node", func(b *testing.B) {
		w := New(Options{})
		w.Start()
		defer w.Stop()
		nodes := make([]Timer, million)
		b.ReportAllocs()
		for b.Loop() {
			for i := range nodes {
				w.Schedule(&nodes[i], spread(i, million), fn)
			}
			for i := range nodes {
				nodes[i].Stop()
			}
		}
		report(b)
	})
	b.Run("impl=runtime", func(b *testing.B) {
		ts := make([]*time.Timer, million)
		b.ReportAllocs()
		for b.Loop() {
			for i := range ts {
				ts[i] = time.AfterFunc(spread(i, million), fn)
			}
			for _, t := range ts {
				t.Stop()
			}
		}
		report(b)
	})
}

// BenchmarkFire1M fires 1M Timers due from 1 ms to about 24 days (every
// level), driving the wheel's clock directly instead of waiting: it
// measures scheduling, every cascade and every callback; ns/timer is per
// timer. The runtime has no such clock, so its peer is
// BenchmarkFireNow1M.
func BenchmarkFire1M(b *testing.B) {
	var calls int
	fn := func() { calls++ }
	w := New(Options{}) // not started: the benchmark is its goroutine
	nodes := make([]Timer, million)
	b.ReportAllocs()
	for b.Loop() {
		for i := range nodes {
			w.Schedule(&nodes[i], time.Duration(math.Exp2(float64(i)/million*31))*time.Millisecond, fn)
		}
		w.mu.Lock()
		w.advance(w.ceilTick(w.nanos() + int64(25*day)))
		w.fireReady()
		w.mu.Unlock()
	}
	if calls != b.N*million || w.Len() != 0 {
		b.Fatalf("%d calls for %d rounds, Len %d", calls, b.N, w.Len())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/million, "ns/timer")
}

// BenchmarkFireNow1M fires 1M timers all due within the next millisecond,
// on the real clock, and waits for the last callback: the wheel runs them
// on its goroutine, the runtime starts a goroutine for each.
func BenchmarkFireNow1M(b *testing.B) {
	b.Run("impl=wheel", func(b *testing.B) {
		w := New(Options{})
		w.Start()
		defer w.Stop()
		nodes := make([]Timer, million)
		b.ReportAllocs()
		for b.Loop() {
			var left atomic.Int64
			left.Store(million)
			done := make(chan struct{})
			fn := func() {
				if left.Add(-1) == 0 {
					close(done)
				}
			}
			for i := range nodes {
				w.Schedule(&nodes[i], time.Duration(i)*time.Millisecond/million, fn)
			}
			<-done
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/million, "ns/timer")
	})
	b.Run("impl=runtime", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var left atomic.Int64
			left.Store(million)
			done := make(chan struct{})
			fn := func() {
				if left.Add(-1) == 0 {
					close(done)
				}
			}
			for i := range million {
				time.AfterFunc(time.Duration(i)*time.Millisecond/million, fn)
			}
			<-done
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/million, "ns/timer")
	})
}

// BenchmarkPendingMemory reports the heap bytes held per pending timer
// (B/timer), with 1M pending spread over the levels and one shared
// callback: the wheel's embedded Timer and Idle (the node is the whole
// cost), its user timers (slab entries), and runtime timers.
func BenchmarkPendingMemory(b *testing.B) {
	fn := func() {}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	impls := []struct {
		name string
		make func(w *Wheel) (keep any, cancel func())
	}{
		{name: "impl=wheel-node", make: func(w *Wheel) (any, func()) {
			nodes := make([]Timer, million)
			for i := range nodes {
				w.Schedule(&nodes[i], spread(i, million), fn)
			}
			return nodes, func() {
				for i := range nodes {
					nodes[i].Stop()
				}
			}
		}},
		{name: "impl=wheel-idle", make: func(w *Wheel) (any, func()) {
			idles := make([]Idle, million)
			for i := range idles {
				idles[i].Start(w, spread(i, million), fn)
			}
			return idles, func() {
				for i := range idles {
					idles[i].Stop()
				}
			}
		}},
		{name: "impl=wheel", make: func(w *Wheel) (any, func()) {
			for i := range million {
				w.Add(spread(i, million), fn, false)
			}
			return nil, w.DelAll
		}},
		{name: "impl=runtime", make: func(*Wheel) (any, func()) {
			ts := make([]*time.Timer, million)
			for i := range ts {
				ts[i] = time.AfterFunc(spread(i, million), fn)
			}
			return ts, func() {
				for _, t := range ts {
					t.Stop()
				}
			}
		}},
	}
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				w := New(Options{})
				before := heap()
				keep, cancel := impl.make(w)
				per = float64(heap()-before) / million
				cancel()
				runtime.KeepAlive(keep)
			}
			b.ReportMetric(per, "B/timer")
		})
	}
}

// BenchmarkIdleActivity compares recording traffic on an idle timeout:
// Idle.Touch, and rescheduling a Timer on every read.
func BenchmarkIdleActivity(b *testing.B) {
	w := New(Options{})
	w.Start()
	defer w.Stop()
	fn := func() {}
	b.Run("impl=idle-touch", func(b *testing.B) {
		var idle Idle
		idle.Start(w, time.Minute, fn)
		defer idle.Stop()
		b.ReportAllocs()
		for b.Loop() {
			idle.Touch()
		}
	})
	b.Run("impl=timer-reset", func(b *testing.B) {
		var t Timer
		w.Schedule(&t, time.Minute, fn)
		defer t.Stop()
		b.ReportAllocs()
		for b.Loop() {
			t.Reset(time.Minute)
		}
	})
	b.Run("impl=runtime-reset", func(b *testing.B) {
		t := time.AfterFunc(time.Minute, fn)
		defer t.Stop()
		b.ReportAllocs()
		for b.Loop() {
			t.Reset(time.Minute)
		}
	})
}

// BenchmarkAddCancelFloor measures the least that any wheel which never
// fires early and is safe for concurrent use pays for one add+cancel pair:
// the monotonic clock read that Add needs to know when "d from now" is,
// and one uncontended lock and unlock for each of the two calls, with no
// timer work at all. BenchmarkAddCancel/impl=wheel cannot go below it on
// the machine that runs it; divide impl=runtime by it for the best ratio a
// wheel of this kind could show there.
func BenchmarkAddCancelFloor(b *testing.B) {
	w := New(Options{})
	var sink int64
	b.Run("parts=clock", func(b *testing.B) {
		for b.Loop() {
			sink += w.nanos()
		}
	})
	b.Run("parts=clock+2locks", func(b *testing.B) {
		for b.Loop() {
			sink += w.nanos()
			w.mu.Lock()
			w.mu.Unlock()
			w.mu.Lock()
			w.mu.Unlock()
		}
	})
	runtime.KeepAlive(sink)
}
