// Package timer is the clock of a goes worker: a hierarchical timing wheel
// that runs user timers, per-connection timeouts and drain deadlines on one
// goroutine, without a goroutine per timer.
//
// # Algorithm
//
// Time is counted in ticks (1 ms unless Options.Tick says otherwise) since
// the Wheel was created. A pending timer sits in one of six levels of 64
// slots, or in an overflow list when it is due more than 2^36 ticks away
// (about 795 days at 1 ms). Its level is the highest group of six bits in
// which its expiry tick differs from the wheel's current tick, and its slot
// is the value of that group in the expiry tick. Every slot is an intrusive,
// circular, doubly linked list whose nodes are the timers themselves, so
// adding and cancelling is O(1) and allocates nothing. When the wheel's
// clock reaches the first tick of a slot on a level above 0, the slot's
// timers are moved one or more levels down (a cascade); a timer leaves the
// wheel only when the clock has reached its own expiry tick, so no timer
// ever fires early, whatever levels it passed through.
//
// The goroutine of a Wheel sleeps until the earliest expiry the wheel knows
// of (kept per slot, so a timer three weeks away wakes it once, not at every
// cascade on the way). Adding a timer due before that moves its alarm
// earlier without waking it. While nothing is pending it sleeps without a
// deadline: an idle wheel costs no wake-ups at all. A cancelled timer may
// leave its expiry behind as a stale bound, which costs at most one wake-up
// with nothing to do.
//
// # Guarantees
//
// A timer scheduled for d runs no earlier than d after the call that
// scheduled it, and no later than one tick after that, plus scheduling
// delay: the time the Go runtime takes to run the wheel's goroutine and the
// time the callbacks before it take. Timers due at the same tick run in no
// particular order.
//
// # Coarse timers: timeouts
//
// A timeout is a bound, not an appointment: nobody minds a connection
// closed for silence a little after its 30 s, but a worker with 100,000
// connections whose timeouts each fall due at their own millisecond wakes
// on nearly every tick. A Timer armed with Wheel.ScheduleCoarse (and its
// later Resets), or an Idle started with StartCoarse, may run late by
// Slack(d): 0 for d below a second (short timers stay exact), else the
// largest of 125 ms, 250 ms, 500 ms and 1 s that is at most d/8. Its
// deadline is rounded up to a multiple of that step, counted from the
// wheel's creation; each step divides the next, so coarse timers of every
// duration share their instants, and any number of them due in one step
// are handled in one wake-up. A wheel holding only coarse timers of 8 s
// and more wakes at most once a second whatever their count (1 to 8 s:
// at most eight times). The guarantee becomes: never earlier than d, never
// later than d + Slack(d), plus scheduling delay (and one tick, for a
// Tick that does not divide 125 ms). The rule is the kernel's timer slack
// and round_jiffies, or nginx's timer_resolution, applied per timer: user
// timers (Add) and Schedule stay exact.
//
// # Callbacks and concurrency
//
// Callbacks run one at a time on the Wheel's goroutine, with no lock held.
// A callback that blocks delays every timer of the wheel: hand blocking work
// to another goroutine (go doWork()) or to a worker queue. Every method of
// Wheel, Timer and Idle is safe for concurrent use, from any goroutine,
// including from inside callbacks, with two exceptions: Start and Stop must
// not be called from a callback (Stop waits for the goroutine that runs the
// callback; from a callback, use go w.Stop()). A callback that panics is recovered and logged with
// Options.Logger; the wheel keeps running.
//
// # Three ways to use it
//
// Add, Del and DelAll are the workerman-style user timers: a function, an
// interval, one-shot or persistent, and an ID to cancel it by. The wheel
// owns their nodes (in a slab it reuses, so Add allocates nothing once
// warm).
//
// Timer is a node that lives inside its owner, for example a connection, so
// that arming a timeout costs no allocation: Wheel.Schedule, Timer.Reset and
// Timer.Stop.
//
// Idle is a Timer plus a last-activity timestamp for idle timeouts: the
// owner calls Touch on every read, which is one clock read and one atomic
// store, and the timer, when it fires early because of activity, re-arms
// itself for the time that is left instead of being rescheduled on every
// read.
package timer
