package tlsrec_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/connections/internal/tlsrec"
)

// FuzzSession feeds arbitrary bytes to a server session as the client's
// ciphertext: as its first bytes (the hello check, then the handshake
// when they pass it) and, after a real handshake, as records of the
// established session. The session must end without a panic or a hang.
func FuzzSession(f *testing.F) {
	conf := serverConf(f)
	hello := recordedHello(f)
	f.Add(hello, false)
	f.Add(hello[:len(hello)/2], false)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), false)
	f.Add([]byte{23, 3, 3, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, true)
	f.Add([]byte{21, 3, 3, 0, 2, 1, 0}, true)
	f.Add([]byte{22, 3, 3, 0, 4, 24, 0, 0, 1, 0}, true) // a KeyUpdate
	f.Fuzz(func(t *testing.T, data []byte, established bool) {
		if !established {
			s := tlsrec.New(tlsrec.NewConfig(conf), nil, nil)
			defer s.Close()
			if s.Input(data) != tlsrec.HelloReady {
				return
			}
			pool := tlsrec.NewPool(1, 1)
			done := make(chan error, 1)
			// No more input comes: the handshake fails, or answers and
			// waits for the client (wake), and Close ends the wait.
			if !pool.Start(s, time.Now().Add(2*time.Second), s.Close, func(err error) { done <- err }) {
				t.Fatal("an empty pool refused")
			}
			stop := time.AfterFunc(time.Second, s.Close)
			<-done
			stop.Stop()
			return
		}
		s := establish(t, conf)
		defer s.Close()
		s.Open(data)
		p := make([]byte, 1<<14)
		for i := 0; ; i++ {
			_, err := s.Read(p)
			if err != nil {
				if errors.Is(err, tlsrec.ErrWouldBlock) {
					return
				}
				s.Pending(nil)
				return
			}
			if i > len(data) {
				t.Fatal("Read returns data forever")
			}
		}
	})
}

// establish makes an established session in memory: a real crypto/tls
// client over a net.Pipe, the session driven by this goroutine.
func establish(t testing.TB, conf *tls.Config) *tlsrec.Session {
	t.Helper()
	s, _ := establishWith(t, conf, clientConf())
	return s
}

// establishWith is establish with the client's configuration; it returns
// the client too, its connection closed (recordOf turns its writes into
// records).
func establishWith(t testing.TB, conf, cc *tls.Config) (*tlsrec.Session, *recClient) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	rc := &recClient{Conn: a}
	c := tls.Client(rc, cc)
	rc.tc = c
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if c.Handshake() == nil { // no deadline: its timer would outlive the pipe
			io.Copy(io.Discard, a) // the server's tickets, its alerts
		}
	}()
	s := tlsrec.New(tlsrec.NewConfig(conf), nil, nil)
	pool := tlsrec.NewPool(1, 1)
	done := make(chan error, 1)
	var wmu sync.Mutex
	flush := func() {
		wmu.Lock()
		defer wmu.Unlock()
		if out := s.Pending(nil); len(out) > 0 {
			b.Write(out)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 8192)
		started := false
		for {
			n, err := b.Read(buf)
			if err != nil {
				return
			}
			if s.Input(buf[:n]) == tlsrec.HelloReady && !started {
				started = true
				pool.Start(s, time.Now().Add(5*time.Second), flush, func(err error) { flush(); s.TakeState(); done <- err })
			}
			if s.Established() {
				return
			}
		}
	}()
	if err := <-done; err != nil {
		t.Fatalf("handshake: %v", err)
	}
	rc.mu.Lock()
	rc.hold = true
	rc.mu.Unlock()
	a.Close()
	b.Close()
	wg.Wait()
	return s, rc
}

// recClient is a client's connection that, once its handshake is done,
// keeps what the client writes.
type recClient struct {
	net.Conn
	tc   *tls.Conn
	mu   sync.Mutex
	hold bool
	held []byte
}

func (c *recClient) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// recordOf returns the records of the client's write of p.
func recordOf(t testing.TB, c *recClient, p []byte) []byte {
	t.Helper()
	if _, err := c.tc.Write(p); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.held
	c.held = nil
	return out
}
