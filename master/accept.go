//go:build unix

package master

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// The master's accept loops (the control socket, the admin endpoint)
// outlive a shortage of descriptors: an accept that fails for any reason
// but the listener's close (EMFILE, ENFILE, ECONNABORTED, ENOBUFS, ...) is
// retried after a pause of 5 ms, doubling up to 1 s as in net/http, and
// the shortage is logged once when it begins and once when it ends. A
// loop returns only when its listener is closed.

// Accept bounds.
const (
	acceptMinDelay = 5 * time.Millisecond
	acceptMaxDelay = time.Second
	// DefaultAdminMaxConnections caps the connections the admin endpoint
	// holds at once (Options.AdminMaxConnections).
	DefaultAdminMaxConnections = 64
	// controlMaxConns caps the control socket's connections at once (CLI
	// requests, stop and reload waiters, other masters' status).
	controlMaxConns = 64
	// controlReserve is how many descriptors the master keeps open in
	// reserve for its control socket (fdReserve).
	controlReserve = 4
	// controlReadTimeout bounds how long a control client may take to
	// send its request.
	controlReadTimeout = 10 * time.Second
)

// acceptBackoff paces an accept loop through failed accepts. Owner: its
// loop.
type acceptBackoff struct {
	log   zerolog.Logger
	what  string // "control socket", "admin endpoint"
	delay time.Duration
	fails int
	since time.Time
}

// failed logs the first failure of an episode and waits before the next
// accept.
func (b *acceptBackoff) failed(err error) {
	if b.delay == 0 {
		b.delay = acceptMinDelay
		b.since = time.Now()
		b.log.Warn().Err(err).Str("listener", b.what).Msg("accept failed, retrying with back-off")
	} else {
		b.delay = min(2*b.delay, acceptMaxDelay)
	}
	b.fails++
	time.Sleep(b.delay)
}

// accepted ends an episode of failures, if one runs.
func (b *acceptBackoff) accepted() {
	if b.delay == 0 {
		return
	}
	b.log.Info().Str("listener", b.what).Int("failed_accepts", b.fails).Dur("for_ms", time.Since(b.since)).Msg("accepting again")
	b.delay, b.fails = 0, 0
}

// outOfFiles reports whether err says the process or the system has no
// descriptor left.
func outOfFiles(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// fdReserve holds a few descriptors (of /dev/null, close-on-exec) for the
// control socket: when an accept there fails for want of a descriptor,
// the loop closes one of the reserve and accepts again, so that the
// operator's CLI gets its answer (status and stop need no other
// descriptor) while something else holds all the others; the reserve
// fills up again as descriptors come free (after each control
// connection). A descriptor freed that way may be taken by another
// goroutine of the master first: the loop then tries the next one, and
// backs off when the reserve is empty. Safe for concurrent use.
type fdReserve struct {
	mu  sync.Mutex
	fds []int
	n   int
}

func newFDReserve(n int) *fdReserve {
	r := &fdReserve{n: n}
	r.refill()
	return r
}

// release closes one descriptor of the reserve; false when it is empty.
func (r *fdReserve) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fds) == 0 {
		return false
	}
	fd := r.fds[len(r.fds)-1]
	r.fds = r.fds[:len(r.fds)-1]
	unix.Close(fd)
	return true
}

// refill opens descriptors until the reserve is full or none is left.
func (r *fdReserve) refill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.fds) < r.n {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		r.fds = append(r.fds, fd)
	}
}

// held is the number of descriptors in the reserve.
func (r *fdReserve) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fds)
}

// close closes the reserve for good.
func (r *fdReserve) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	r.fds, r.n = nil, 0
}

// capListener is the admin endpoint's listener: it holds at most max
// connections at once (negative: no cap) and closes one more at once,
// with a reset, so that a flood of connections costs the master no
// descriptor; it retries failed accepts (acceptBackoff) rather than
// pass them to the HTTP server. Accept is called by one goroutine (the
// server's); the counts are safe for concurrent use.
type capListener struct {
	net.Listener
	max     int64
	bo      acceptBackoff
	open    atomic.Int64
	refused atomic.Uint64
	full    bool // in an episode of refusals (Accept's goroutine)
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			l.bo.failed(err)
			continue
		}
		l.bo.accepted()
		if l.max >= 0 && l.open.Load() >= l.max {
			l.refused.Add(1)
			if !l.full {
				l.full = true
				l.bo.log.Warn().Int64("max_connections", l.max).Msg("admin endpoint full, closing new connections at once")
			}
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset: no TIME_WAIT left in the master
			}
			c.Close()
			continue
		}
		if l.full {
			l.full = false
			l.bo.log.Info().Uint64("refused_total", l.refused.Load()).Msg("admin endpoint takes connections again")
		}
		l.open.Add(1)
		return &capConn{Conn: c, l: l}, nil
	}
}

// capConn gives its place back to its capListener when it closes.
type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
