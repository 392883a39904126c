package tlsrec

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
)

// Defaults of a Pool.
const (
	// DefaultHandshakeTimeout bounds a handshake from the connection's
	// accept to its end, the ClientHello's arrival included: a client
	// that sends its hello a byte a second is closed at it.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxHandshakes bounds the handshakes in progress past their
	// ClientHello (each has a goroutine, parked while it waits for the
	// client); a connection whose ClientHello completes beyond it is
	// closed (HandshakeQueueFull).
	DefaultMaxHandshakes = 1024
)

// Pool runs handshakes: at most Workers use the CPU at once (the default,
// GOMAXPROCS: a handshake is computation), at most Max are in progress
// (those waiting for a slot or for the client included). A handshake
// waiting for the client gives its slot back meanwhile, so slow clients
// never hold the CPU slots; the handshake timeout ends them. Established
// connections never wait for the pool: a handshake flood delays only
// other handshakes.
type Pool struct {
	slots  chan struct{}
	max    int32
	active atomic.Int32
}

// NewPool makes a pool of workers CPU slots (<= 0: GOMAXPROCS) and at
// most max handshakes in progress (<= 0: DefaultMaxHandshakes).
func NewPool(workers, max int) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if max <= 0 {
		max = DefaultMaxHandshakes
	}
	return &Pool{slots: make(chan struct{}, workers), max: int32(max)}
}

// Active is the number of handshakes in progress.
func (p *Pool) Active() int { return int(p.active.Load()) }

func (p *Pool) acquire() { p.slots <- struct{}{} }
func (p *Pool) release() { <-p.slots }

// Start runs s's handshake on a goroutine of the pool, once Input said
// HelloReady, until deadline (the accept's time plus the handshake
// timeout). wake is called, on that goroutine, when crypto/tls has
// output for the loop to write (Pending); done is called once, on that
// goroutine, with the handshake's result. Start reports false, and calls
// nothing, when Max handshakes are in progress.
func (p *Pool) Start(s *Session, deadline time.Time, wake func(), done func(error)) bool {
	for {
		n := p.active.Load()
		if n >= p.max {
			return false
		}
		if p.active.CompareAndSwap(n, n+1) {
			break
		}
	}
	go func() {
		defer p.active.Add(-1)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		p.acquire()
		err := s.handshake(ctx, p, wake)
		p.release()
		cancel()
		done(err)
	}()
	return true
}
