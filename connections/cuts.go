package connections

import (
	"sync/atomic"
	"time"
)

// Reasons a connection is closed by a timeout rule: the keys of
// Stats.Closed (and of a worker's closed counts in status).
const (
	ClosedHeaderTimeout    = "header_timeout"    // HeaderTimeout: a head not complete in time
	ClosedBodyTimeout      = "body_timeout"      // BodyTimeout: a partial packet without progress
	ClosedBodyMinRate      = "body_min_rate"     // BodyMinRate: a partial packet arriving too slowly
	ClosedKeepAliveTimeout = "keepalive_timeout" // KeepAliveTimeout: no next request
	ClosedSendTimeout      = "send_timeout"      // SendTimeout: a peer that takes no output
	ClosedIdleTimeout      = "idle_timeout"      // IdleTimeout: nothing received
)

// cutReason indexes Server.cuts; cutNone is no reason.
type cutReason int8

const (
	cutNone cutReason = iota - 1
	cutHeader
	cutBody
	cutMinRate
	cutKeepAlive
	cutSend
	cutIdle
	numCutReasons
)

var cutNames = [numCutReasons]string{
	cutHeader:    ClosedHeaderTimeout,
	cutBody:      ClosedBodyTimeout,
	cutMinRate:   ClosedBodyMinRate,
	cutKeepAlive: ClosedKeepAliveTimeout,
	cutSend:      ClosedSendTimeout,
	cutIdle:      ClosedIdleTimeout,
}

// cutLogEvery is the least time between two log lines of one reason: an
// attack that makes the rules close thousands of connections writes one
// line per reason per cutLogEvery, with the count.
const cutLogEvery = 10 * time.Second

// cutCounter counts the connections one rule closed, and logs them. The
// first cut after a quiet interval is logged at once; those that follow
// within cutLogEvery are summed into one line at its end, and so on while
// they keep coming. Safe for concurrent use.
type cutCounter struct {
	total   atomic.Uint64
	pending atomic.Uint64 // not yet logged
	armed   atomic.Bool   // a line was logged less than cutLogEvery ago; a flush is scheduled
}

// noteCut counts a connection closed for reason and logs it, rate-limited.
func (s *Server) noteCut(reason cutReason) {
	k := &s.cuts[reason]
	k.total.Add(1)
	k.pending.Add(1)
	if k.armed.CompareAndSwap(false, true) {
		s.flushCuts(reason)
	}
}

// flushCuts logs the cuts of reason counted since the last line, if any
// ("connections" is their number; at warn level, at debug level for the
// keep-alive and idle timeouts, which end quiet clients every day), and
// looks again cutLogEvery later; with none, it disarms.
func (s *Server) flushCuts(reason cutReason) {
	k := &s.cuts[reason]
	for {
		if n := k.pending.Swap(0); n > 0 {
			ev := s.log.Warn() // slow or hostile peers: the server defended itself
			if reason == cutKeepAlive || reason == cutIdle {
				ev = s.log.Debug() // the ordinary end of a quiet client
			}
			ev.Str("reason", cutNames[reason]).Uint64("connections", n).Msg("connections closed by a timeout")
			s.afterFunc(cutLogEvery, func() { s.flushCuts(reason) })
			return
		}
		k.armed.Store(false)
		// A cut counted after the Swap saw armed still set: log it now
		// unless another goroutine took it.
		if k.pending.Load() == 0 || !k.armed.CompareAndSwap(false, true) {
			return
		}
	}
}

// closedCounts returns Stats.Closed: the non-zero counts by reason name,
// or nil.
func (s *Server) closedCounts() map[string]uint64 {
	var m map[string]uint64
	for r := range s.cuts {
		if n := s.cuts[r].total.Load(); n > 0 {
			if m == nil {
				m = make(map[string]uint64, numCutReasons)
			}
			m[cutNames[r]] = n
		}
	}
	return m
}
