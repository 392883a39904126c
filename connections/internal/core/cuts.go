package core

import (
	"sync/atomic"
	"time"
)

// cutReason indexes Runtime.cuts; cutNone is no reason.
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
func (s *Runtime) noteCut(reason cutReason) {
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
func (s *Runtime) flushCuts(reason cutReason) {
	s.flushCounter(&s.cuts[reason], func(n uint64) {
		ev := s.Log.Warn() // slow or hostile peers: the server defended itself
		if reason == cutKeepAlive || reason == cutIdle {
			ev = s.Log.Debug() // the ordinary end of a quiet client
		}
		ev.Str("reason", cutNames[reason]).Uint64("connections", n).Msg("connections closed by a timeout")
	}, func() { s.flushCuts(reason) })
}

// noteDrop counts a send dropped because the send buffer of connection id
// (0: a Client's queue while it connects) was at MaxSendBufferSize
// (Stats.SendBufferFull, part of Errors) and logs it, rate-limited as the
// cuts are: the first drop after a quiet interval at once, with its
// connection, the others in one line per cutLogEvery with their number.
func (s *Runtime) NoteDrop(id uint64) {
	s.Errs.Add(1)
	s.BufFull.Add(1)
	k := &s.drops
	k.total.Add(1)
	k.pending.Add(1)
	if k.armed.CompareAndSwap(false, true) {
		s.Log.Warn().Uint64("conn", id).Int("max_send_buffer_size", s.Cfg.MaxSendBufferSize).
			Uint64("send_buffer_full_total", s.BufFull.Load()).
			Msg("send dropped: the connection's send Buffer is full (ErrSendBufferFull)")
		k.pending.Add(^uint64(0)) // this one is logged
		s.AfterFunc(cutLogEvery, s.flushDrops)
	}
}

// flushDrops logs the drops counted since the last line, if any.
func (s *Runtime) flushDrops() {
	s.flushCounter(&s.drops, func(n uint64) {
		s.Log.Warn().Uint64("dropped", n).Uint64("send_buffer_full_total", s.BufFull.Load()).
			Int("max_send_buffer_size", s.Cfg.MaxSendBufferSize).Dur("interval_ms", cutLogEvery).
			Msg("sends dropped: send buffers full (ErrSendBufferFull)")
	}, s.flushDrops)
}

// noteBadInput logs connection c closed for bad input (err), rate-limited
// as the cuts are: the first after a quiet interval at once, with its
// connection, peer and error; those that follow in one line per
// cutLogEvery with their number (Stats.BadInput counts them all). A peer
// sending garbage by the thousand writes a line every ten seconds, not a
// line per connection.
func (s *Runtime) noteBadInput(c *Conn, err error) {
	k := &s.bad
	k.total.Add(1)
	k.pending.Add(1)
	if k.armed.CompareAndSwap(false, true) {
		s.Log.Info().Uint64("conn", c.id).Stringer("remote", c.ops.Remote()).Err(err).Msg("bad input, connection closed")
		k.pending.Add(^uint64(0)) // this one is logged
		s.AfterFunc(cutLogEvery, s.flushBadInput)
	}
}

// flushBadInput logs the bad input closes counted since the last line.
func (s *Runtime) flushBadInput() {
	s.flushCounter(&s.bad, func(n uint64) {
		s.Log.Info().Uint64("connections", n).Uint64("bad_input_total", s.BadInput.Load()).Dur("interval_ms", cutLogEvery).
			Msg("bad input: connections closed")
	}, s.flushBadInput)
}

// flushCounter logs (log) what k counted since its last line, if
// anything, and has again called cutLogEvery later; with nothing, it
// disarms k.
func (s *Runtime) flushCounter(k *cutCounter, log func(n uint64), again func()) {
	for {
		if n := k.pending.Swap(0); n > 0 {
			log(n)
			s.AfterFunc(cutLogEvery, again)
			return
		}
		k.armed.Store(false)
		// One counted after the Swap saw armed still set: log it now
		// unless another goroutine took it.
		if k.pending.Load() == 0 || !k.armed.CompareAndSwap(false, true) {
			return
		}
	}
}

// closedCounts returns Stats.Closed: the non-zero counts by reason name,
// or nil.
func (s *Runtime) closedCounts() map[string]uint64 {
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
