package connections

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// watched is an event loop as the watchdog sees it. Both methods are
// safe for concurrent use.
type watched interface {
	// iterations counts the loop's passes so far.
	iterations() uint64
	// waiting reports whether the loop waits for events (idle, not stuck).
	waiting() bool
}

// watchdog warns when a loop has been stuck in one iteration (a callback
// that blocks, with callbacks on the loop) for every or longer: every
// other connection of that loop waits meanwhile. It looks once per every
// (a second when every is not positive) until stop is closed, then calls
// wg.Done.
func watchdog(log zerolog.Logger, every time.Duration, loops []watched, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := make([]uint64, len(loops))
	stuck := make([]int, len(loops))
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for i, l := range loops {
			it := l.iterations()
			if it != last[i] || l.waiting() {
				last[i], stuck[i] = it, 0
				continue
			}
			if stuck[i]++; stuck[i] == 1 || stuck[i]%10 == 0 {
				log.Warn().Int("loop", i).Dur("blocked_for", time.Duration(stuck[i])*every).
					Msg("event loop blocked by a callback; its other connections wait (see Config.CallbackGoroutines)")
			}
		}
	}
}
