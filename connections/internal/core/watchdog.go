package core

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// The callbacks an event loop runs for its connections, as CbMark and
// the Watchdog's warning name them.
const (
	cbNone    uint64 = iota // no callback runs
	CbConnect               // OnConnect
	CbMessage               // the protocol's Input and Decode, and OnMessage for each packet
	CbDrain                 // OnBufferDrain
	CbClose                 // OnClose

	cbKindBits = 3
	cbKindMask = 1<<cbKindBits - 1
)

var cbNames = [...]string{cbNone: "", CbConnect: "OnConnect", CbMessage: "OnMessage", CbDrain: "OnBufferDrain", CbClose: "OnClose"}

// CbMark shows the Watchdog which user callback an event loop is running,
// if any, and since when it is the same one, without a clock read: the
// loop marks each callback with enter and leave, two atomic stores, and
// the Watchdog samples the mark with Current. Enter and Leave are for the
// loop's goroutine only (one writer; callbacks on one loop do not nest:
// what a callback asks of other connections is posted, not run inside
// it); Current is safe for concurrent use.
type CbMark struct {
	n uint64 // callbacks entered; the writer's
	// cur holds, from bit 35, the low 29 bits of n; while a callback runs,
	// bits 3..34 hold the low 32 bits of its connection's id and bits 0..2
	// its kind (cbNone between callbacks). It stays the same exactly as
	// long as one callback runs (n wraps after 2^29 callbacks, far more
	// than a loop runs between two samples).
	cur atomic.Uint64
	// rest is the Watchdog's wake-up while it rests (nil while it
	// samples): Enter wakes it.
	rest atomic.Pointer[chan struct{}]
}

const cbSeqShift = cbKindBits + 32

// Enter marks the start of a callback of kind for the connection with id
// conn, and wakes the Watchdog if it rests.
func (m *CbMark) Enter(kind, conn uint64) {
	m.n++
	m.cur.Store(m.n<<cbSeqShift | uint64(uint32(conn))<<cbKindBits | kind)
	// After the store: the Watchdog arms rest and then looks at cur again
	// (Run), so either it sees this callback or this sees it resting.
	if c := m.rest.Load(); c != nil {
		select {
		case *c <- struct{}{}:
		default: // woken already
		}
	}
}

// Leave marks the end of the callback enter marked.
func (m *CbMark) Leave() { m.cur.Store(m.n << cbSeqShift) }

// Current returns the mark.
func (m *CbMark) Current() uint64 { return m.cur.Load() }

// cbConn returns the id of the connection whose callback the mark cur
// shows, given the server's Config.IDBase (ids are IDBase | a 32-bit
// sequence number).
func cbConn(cur, idBase uint64) uint64 { return idBase | cur>>cbKindBits&(1<<32-1) }

// Watchdog warns when a user callback has been running on an event loop
// (callbacks on the loops, Config.CallbackGoroutines off) for after or
// longer: every other connection of that loop waits meanwhile. A loop
// busy with its own work, reading and writing (a large fan-out), or gone
// (a draining server's loops end one by one) runs no callback and is
// never reported. The Watchdog samples each loop's CbMark four times per
// after: it reports a callback only once it has run for after, and
// surely once it has run for after and a quarter, then again every ten
// afters while it goes on. Its fields are set before run starts.
//
// When no loop has entered a callback for a whole after, the Watchdog
// rests: it samples once every RestRounds afters instead of four times
// per after, and the next callback a loop enters wakes it (CbMark.Enter),
// whereupon it samples at once and again four times per after. So the
// bounds above hold for a callback that starts while it rests, give or
// take the time the runtime takes to run the woken Watchdog; and an idle
// worker's watchdog wakes once every RestRounds afters (10 s by default)
// rather than four times a second.
type Watchdog struct {
	Log    zerolog.Logger
	After  time.Duration // a second when not positive
	IDBase uint64        // the server's Config.IDBase
	Loops  []*CbMark
	// Rounds counts the samplings done, for tests that wait for some.
	Rounds atomic.Uint64
	// Rests counts the times it has begun to rest, for tests.
	Rests atomic.Uint64
}

// RestRounds is how many afters apart a resting Watchdog samples.
const RestRounds = 10

// Run samples the loops until stop is closed, then calls wg.Done.
func (w *Watchdog) Run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	after := w.After
	if after <= 0 {
		after = time.Second
	}
	t := time.NewTicker(after / 4)
	defer t.Stop()
	type seen struct {
		cur   uint64    // the mark last sampled
		since time.Time // when cur was first sampled
		next  time.Duration
	}
	st := make([]seen, len(w.Loops))
	wake := make(chan struct{}, 1)
	quiet := 0 // rounds in a row in which no loop entered a callback
	resting := false
	for {
		var now time.Time
		select {
		case <-stop:
			w.unrest()
			return
		case now = <-t.C:
		case <-wake:
			now = time.Now()
		}
		if resting {
			w.unrest()
			resting = false
			t.Reset(after / 4)
		}
		calm := true // no loop runs a callback, nor entered one since the last round
		for i, m := range w.Loops {
			cur := m.Current()
			s := &st[i]
			if cur != s.cur || cur&cbKindMask != cbNone {
				calm = false
			}
			if cur != s.cur || cur&cbKindMask == cbNone {
				*s = seen{cur: cur, since: now, next: after}
				continue
			}
			// The same callback has run since before s.since.
			if d := now.Sub(s.since); d >= s.next {
				s.next = (d/(10*after) + 1) * 10 * after
				w.Log.Warn().Int("loop", i).Str("callback", cbNames[cur&cbKindMask]).Uint64("conn", cbConn(cur, w.IDBase)).
					Dur("blocked_for_ms", d).
					Msg("event loop blocked by a callback; its other connections wait (see Config.CallbackGoroutines)")
			}
		}
		w.Rounds.Add(1)
		if !calm {
			quiet = 0
			continue
		}
		if quiet++; quiet < 4 {
			continue
		}
		// A whole after without a callback: rest, unless one has begun
		// since the round (after arming: see Enter).
		select {
		case <-wake: // a wake-up from before the last rest ended
		default:
		}
		for _, m := range w.Loops {
			m.rest.Store(&wake)
		}
		for i, m := range w.Loops {
			if m.Current() != st[i].cur {
				calm = false
			}
		}
		if !calm {
			w.unrest()
			quiet = 0
			continue
		}
		resting = true
		w.Rests.Add(1)
		t.Reset(RestRounds * after)
	}
}

// unrest disarms the loops' wake-up.
func (w *Watchdog) unrest() {
	for _, m := range w.Loops {
		m.rest.Store(nil)
	}
}
