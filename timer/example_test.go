package timer_test

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/timer"
)

// A persistent user timer that deletes itself after its third call. The ID
// is handed to the callback through an atomic, because the callback may
// run before Add returns.
func ExampleWheel_Add() {
	w := timer.New(timer.Options{})
	w.Start()
	defer w.Stop()

	var id atomic.Uint64
	var calls atomic.Int32
	done := make(chan struct{})
	id.Store(uint64(w.Add(10*time.Millisecond, func() {
		if calls.Add(1) == 3 {
			w.Del(timer.ID(id.Load()))
			close(done)
		}
	}, true)))

	<-done
	fmt.Println("calls:", calls.Load(), "pending:", w.Len())
	// Output: calls: 3 pending: 0
}

// request carries its own deadline timer: arming it allocates nothing.
type request struct {
	deadline timer.Timer
	timedOut chan struct{}
}

// abort stands for slow clean-up work.
func (r *request) abort() { close(r.timedOut) }

// A Timer embedded in its owner, armed with Schedule and cancelled with
// Stop. Callbacks run on the wheel's goroutine: anything that blocks goes
// to another goroutine.
func ExampleWheel_Schedule() {
	w := timer.New(timer.Options{})
	w.Start()
	defer w.Stop()

	fast := &request{timedOut: make(chan struct{})}
	w.Schedule(&fast.deadline, time.Hour, func() { close(fast.timedOut) })
	fmt.Println("answered in time, timer stopped:", fast.deadline.Stop())

	slow := &request{timedOut: make(chan struct{})}
	w.Schedule(&slow.deadline, 5*time.Millisecond, func() {
		go slow.abort() // blocking or slow work: hand it off
	})
	<-slow.timedOut
	fmt.Println("slow request timed out")
	// Output:
	// answered in time, timer stopped: true
	// slow request timed out
}

// conn stands for a connection with an idle timeout.
type conn struct {
	idle   timer.Idle
	closed chan struct{}
}

// onRead is where a connection would record traffic: one clock read and
// one atomic store, no wheel operation.
func (c *conn) onRead() { c.idle.Touch() }

// An idle timeout that costs nearly nothing per read: Touch only records
// the time, and the timer re-arms itself for what is left when it fires.
func ExampleIdle() {
	w := timer.New(timer.Options{})
	w.Start()
	defer w.Stop()

	c := &conn{closed: make(chan struct{})}
	start := time.Now()
	c.idle.Start(w, 50*time.Millisecond, func() { close(c.closed) })
	for range 5 { // traffic every 20 ms keeps the connection open
		time.Sleep(20 * time.Millisecond)
		c.onRead()
	}
	<-c.closed
	fmt.Println("closed after 50ms of silence following 100ms of traffic:", time.Since(start) >= 150*time.Millisecond)
	// Output: closed after 50ms of silence following 100ms of traffic: true
}
