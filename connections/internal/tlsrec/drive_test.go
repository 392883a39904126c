package tlsrec_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/connections/internal/tlsrec"
	"github.com/goes-project/goes/internal/testkit"
)

// server is a TLS echo server on loopback made of Sessions the way an
// event loop drives them: one goroutine per connection reads the socket
// and hands the bytes on (as a loop's readable would), the session's
// output is written by whoever has it. It is the tests' loop.
type server struct {
	ln      net.Listener
	conf    *tlsrec.Config
	pool    *tlsrec.Pool
	timeout time.Duration
	wg      sync.WaitGroup

	ok, failed, closeNotify, bad atomic.Int64
	lastErr                      atomic.Pointer[error] // the last session error
	sessions                     sync.Map              // *tlsrec.Session
}

func serverConf(t testing.TB) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{testkit.SelfSigned(t)}, MinVersion: tls.VersionTLS12}
}

func clientConf() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}

func newServer(t testing.TB, pool *tlsrec.Pool, timeout time.Duration) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conf: tlsrec.NewConfig(serverConf(t)), pool: pool, timeout: timeout}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go s.serve(nc)
	}
}

type event struct {
	b    []byte
	err  error // read error (the socket's end)
	up   bool  // the handshake ended
	herr error
}

// serve runs one connection as a loop would.
func (s *server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer nc.Close()
	sess := tlsrec.New(s.conf, nc.LocalAddr(), nc.RemoteAddr())
	s.sessions.Store(sess, true)
	defer s.sessions.Delete(sess)
	defer sess.Close()
	deadline := time.Now().Add(s.timeout)
	ev := make(chan event, 16)
	var wmu sync.Mutex
	write := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		if len(b) == 0 {
			return nil
		}
		_, err := nc.Write(b)
		return err
	}
	flushPending := func() { write(sess.Pending(nil)) }
	// The reader stands for epoll: it turns the socket's readiness into
	// events on the "loop".
	go func() {
		for {
			b := make([]byte, 32<<10)
			n, err := nc.Read(b)
			if n > 0 {
				ev <- event{b: b[:n]}
			}
			if err != nil {
				ev <- event{err: err}
				return
			}
		}
	}()
	// The handshake timeout: a timer of the loop.
	tm := time.AfterFunc(s.timeout, func() { sess.Close(); nc.Close() })
	defer tm.Stop()
	started, up := false, false
	plain := make([]byte, 16<<10)
	var out []byte
	pump := func() bool { // decrypt and echo until would-block; false: closed
		for {
			n, err := sess.Read(plain)
			if n > 0 {
				var serr error
				out, serr = sess.Seal(out[:0], plain[:n])
				if serr != nil || write(out) != nil {
					return false
				}
			}
			switch {
			case err == nil:
			case errors.Is(err, tlsrec.ErrWouldBlock):
				flushPending()
				return true
			case err == io.EOF:
				s.closeNotify.Add(1)
				sess.CloseNotify()
				flushPending()
				return false
			default:
				s.lastErr.Store(&err)
				flushPending() // the alert
				return false
			}
		}
	}
	for e := range ev {
		switch {
		case e.err != nil:
			if !up {
				s.failed.Add(1)
			}
			return
		case e.up:
			if e.herr != nil {
				s.failed.Add(1)
				herr := e.herr
				s.lastErr.Store(&herr)
				flushPending()
				return
			}
			s.ok.Add(1)
			tm.Stop()
			up = true
			flushPending()
			sess.Open(nil)
			if !pump() {
				return
			}
		case !up:
			switch sess.Input(e.b) {
			case tlsrec.HelloBad:
				s.bad.Add(1)
				s.failed.Add(1)
				return
			case tlsrec.HelloReady:
				if started {
					break
				}
				started = true
				if !s.pool.Start(sess, deadline, flushPending, func(err error) { ev <- event{up: true, herr: err} }) {
					s.failed.Add(1)
					return
				}
			}
		default:
			sess.Open(e.b)
			if !pump() {
				return
			}
		}
	}
}

// dial opens a TLS client connection to s and completes its handshake.
func dial(t testing.TB, s *server, conf *tls.Config) *tls.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(nc, conf)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		nc.Close()
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
