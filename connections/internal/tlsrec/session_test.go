package tlsrec_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/connections/internal/tlsrec"
	"github.com/goes-project/goes/internal/testkit"
)

func TestEchoSizes(t *testing.T) {
	for _, vers := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, piece := range []int{0, 3} {
			t.Run(fmt.Sprintf("v%x/piece%d", vers, piece), func(t *testing.T) {
				s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
				nc, err := net.Dial("tcp", s.addr())
				if err != nil {
					t.Fatal(err)
				}
				nc.(*net.TCPConn).SetNoDelay(true)
				var under net.Conn = nc
				if piece > 0 {
					under = testkit.PieceConn{Conn: nc, N: piece}
				}
				conf := clientConf()
				conf.MaxVersion = vers
				c := tls.Client(under, conf)
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				sizes := []int{1, 2, 100, 1500, 16383, 16384, 16385, 40000, 100 << 10}
				if piece > 0 {
					sizes = []int{1, 100, 1500, 16385}
				}
				for _, n := range sizes {
					want := testkit.Pattern(n)
					if _, err := c.Write(want); err != nil {
						t.Fatalf("write %d: %v", n, err)
					}
					got := make([]byte, n)
					if _, err := io.ReadFull(c, got); err != nil {
						t.Fatalf("read %d: %v", n, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("echo of %d bytes differs", n)
					}
				}
				if st := c.ConnectionState(); st.Version != vers {
					t.Fatalf("version %x, want %x", st.Version, vers)
				}
			})
		}
	}
}

// TestPipelined: many records sent before any answer is read are all
// answered, in order.
func TestPipelined(t *testing.T) {
	s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
	c := dial(t, s, clientConf())
	var want bytes.Buffer
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&want, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	go c.Write(want.Bytes())
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("pipelined echo differs")
	}
}

// TestCloseNotify: the client's close_notify ends the session cleanly
// and is answered with one.
func TestCloseNotify(t *testing.T) {
	s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
	c := dial(t, s, clientConf())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after close_notify: read %d, %v; want the server's close_notify (io.EOF)", n, err)
	}
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "close_notify counted", func() bool { return s.closeNotify.Load() == 1 })
}

// TestAbruptClose: a client that goes away mid-record and one that
// sends a corrupted record end their sessions only.
func TestAbruptClose(t *testing.T) {
	s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
	keep := dial(t, s, clientConf())
	// A recorder of the client's records, to send a part of one.
	nc, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recConn{Conn: nc}
	c := tls.Client(rec, clientConf())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	rec.hold = true
	c.Write(bytes.Repeat([]byte("y"), 1000))
	nc.Write(rec.held[:len(rec.held)/2])
	nc.Close()

	// A flipped bit in a record: bad record MAC, an alert, the end.
	nc2, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	rec2 := &recConn{Conn: nc2}
	c2 := tls.Client(rec2, clientConf())
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c2.Handshake(); err != nil {
		t.Fatal(err)
	}
	rec2.hold = true
	c2.Write([]byte("hello"))
	rec2.held[len(rec2.held)-1] ^= 1
	nc2.Write(rec2.held)
	if _, err := c2.Read(make([]byte, 10)); err == nil {
		t.Fatal("a corrupted record was answered")
	} else if !errors.Is(err, io.EOF) && !isAlert(err) {
		t.Logf("client read after corrupt record: %v", err)
	}
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "a bad record MAC error", func() bool {
		return s.lastErr.Load() != nil
	})
	// The other connection is served still.
	if _, err := keep.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(keep, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
}

func isAlert(err error) bool {
	var a tls.AlertError
	return errors.As(err, &a)
}

// recConn records what the client writes instead of sending it once hold
// is set.
type recConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *recConn) Write(b []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// TestNotTLS: plain HTTP and garbage on the port are refused at their
// first bytes, before any handshake.
func TestNotTLS(t *testing.T) {
	s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
	for _, in := range []string{"GET / HTTP/1.1\r\n\r\n", "\x16\x03", "\x16\x07\x01\x00\x01x"} {
		nc, err := net.Dial("tcp", s.addr())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(in))
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if in == "\x16\x03" {
			nc.Close() // incomplete: the client gives up
			continue
		}
		if n, err := nc.Read(make([]byte, 100)); err == nil {
			t.Fatalf("%q: answered %d bytes", in, n)
		} else if errors.Is(err, errTimeout) {
			t.Fatalf("%q: not closed", in)
		}
		nc.Close()
	}
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "refused as not TLS", func() bool { return s.bad.Load() == 2 })
}

var errTimeout = errors.New("timeout")

// TestHelloTimeout: a ClientHello sent a byte at a time is closed at the
// handshake timeout, and holds no pool slot meanwhile.
func TestHelloTimeout(t *testing.T) {
	const timeout = time.Second // the real client below must handshake within it, on a loaded machine too
	pool := tlsrec.NewPool(1, 0)
	s := newServer(t, pool, timeout)
	// A real ClientHello, recorded.
	nc, _ := net.Dial("tcp", s.addr())
	rec := &recConn{Conn: nc, hold: true}
	c := tls.Client(rec, clientConf())
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	c.Handshake() // fails: nothing was sent
	nc.Close()
	hello := rec.held
	if len(hello) < 100 {
		t.Fatalf("recorded hello of %d bytes", len(hello))
	}
	start := time.Now() // before the dial: the server's clock starts at its accept
	slow, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	closed := make(chan time.Duration, 1)
	go func() {
		slow.SetReadDeadline(time.Now().Add(10 * time.Second))
		slow.Read(make([]byte, 1))
		closed <- time.Since(start)
	}()
	// One byte every 20 ms: 100+ bytes would take 2 s.
	for i := 0; i < len(hello)-1; i++ {
		if _, err := slow.Write(hello[i : i+1]); err != nil {
			break
		}
		select {
		case d := <-closed:
			if d < timeout {
				t.Fatalf("closed after %v, before the timeout %v", d, timeout)
			}
			t.Logf("slow hello closed after %v (timeout %v)", d, timeout)
			if pool.Active() != 0 {
				t.Fatalf("%d handshakes in the pool for a hello never complete", pool.Active())
			}
			// A real client is still served by the one slot.
			c := dial(t, s, clientConf())
			c.Write([]byte("ok"))
			if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("a slow ClientHello was not closed in %v", time.Since(start))
}

// TestHandshakeStallTimeout: a client that sends its ClientHello and then
// nothing is in the pool until the handshake timeout, then closed; its
// wait gives the CPU slot back, so a second client handshakes meanwhile
// on a pool of one slot.
func TestHandshakeStallTimeout(t *testing.T) {
	const timeout = 5 * time.Second // a bound the second handshake must beat, even on a loaded machine
	pool := tlsrec.NewPool(1, 0)
	s := newServer(t, pool, timeout)
	hello := recordedHello(t)
	start := time.Now() // before the dial: the server's clock starts at its accept
	nc, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(hello) // and never the client's second flight
	testkit.Eventually(t, 5*time.Second, time.Millisecond, "the hello reached the pool", func() bool { return pool.Active() == 1 })
	// The stalled one waits for input; another client handshakes on the
	// one slot.
	ok := dial(t, s, clientConf())
	ok.Write([]byte("z"))
	if _, err := io.ReadFull(ok, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= timeout {
		t.Fatalf("the second handshake took until the first one's timeout (%v): the waiting one held the slot", d)
	}
	// The stalled one is closed at the timeout and leaves the pool.
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("stalled handshake: %v (not closed)", err)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("closed after %v, before the timeout", d)
	}
	testkit.Eventually(t, 5*time.Second, time.Millisecond, "pool empty", func() bool { return pool.Active() == 0 })
}

// TestPoolMax: past Max handshakes in progress, Start refuses.
func TestPoolMax(t *testing.T) {
	pool := tlsrec.NewPool(1, 2)
	conf := serverConf(t)
	hello := recordedHello(t)
	var sessions []*tlsrec.Session
	done := make(chan error, 3)
	for i := 0; i < 3; i++ {
		s := tlsrec.New(tlsrec.NewConfig(conf), nil, nil)
		sessions = append(sessions, s)
		if h := s.Input(hello); h != tlsrec.HelloReady {
			t.Fatalf("recorded hello: %v", h)
		}
		started := pool.Start(s, time.Now().Add(10*time.Second), func() {}, func(err error) { done <- err })
		if started != (i < 2) {
			t.Fatalf("start %d: %v", i, started)
		}
	}
	testkit.Eventually(t, 5*time.Second, time.Millisecond, "two handshakes in progress", func() bool { return pool.Active() == 2 })
	for _, s := range sessions[:2] {
		s.Close()
	}
	for i := 0; i < 2; i++ {
		if err := <-done; err == nil {
			t.Fatal("a closed session's handshake succeeded")
		}
	}
	testkit.Eventually(t, 5*time.Second, time.Millisecond, "pool empty", func() bool { return pool.Active() == 0 })
}

// recordedHello is a real client's first flight.
func recordedHello(t testing.TB) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := tls.Client(a, clientConf())
	go c.Handshake()
	var hello []byte
	buf := make([]byte, 4096)
	for {
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := b.Read(buf)
		hello = append(hello, buf[:n]...)
		if err != nil {
			t.Fatal(err)
		}
		s := tlsrec.New(tlsrec.NewConfig(serverConf(t)), nil, nil)
		if s.Input(hello) == tlsrec.HelloReady {
			return hello
		}
	}
}

// TestHelloFraming: the hello check across record and read boundaries.
func TestHelloFraming(t *testing.T) {
	hello := recordedHello(t)
	conf := serverConf(t)
	for cut := 1; cut < len(hello); cut += 37 {
		s := tlsrec.New(tlsrec.NewConfig(conf), nil, nil)
		if h := s.Input(hello[:cut]); h != tlsrec.HelloMore {
			t.Fatalf("first %d of %d bytes: %v", cut, len(hello), h)
		}
		if h := s.Input(hello[cut:]); h != tlsrec.HelloReady {
			t.Fatalf("all %d bytes in two: %v", len(hello), h)
		}
	}
	// The hello split into records of 100 bytes is still one hello.
	body := hello[5:]
	var split []byte
	for len(body) > 0 {
		k := min(100, len(body))
		split = append(split, 22, 3, 1, byte(k>>8), byte(k))
		split = append(split, body[:k]...)
		body = body[k:]
	}
	s := tlsrec.New(tlsrec.NewConfig(conf), nil, nil)
	if h := s.Input(split[:len(split)-1]); h != tlsrec.HelloMore {
		t.Fatalf("split hello less a byte: %v", h)
	}
	if h := s.Input(split[len(split)-1:]); h != tlsrec.HelloReady {
		t.Fatalf("split hello: %v", h)
	}
}

// TestFlood: 2,000 half-open connections (some silent, some with half a
// ClientHello, some with a full one and no more) while an established
// connection keeps being answered.
func TestFlood(t *testing.T) {
	const n = 2000
	pool := tlsrec.NewPool(0, 256)
	s := newServer(t, pool, 10*time.Second)
	c := dial(t, s, clientConf())
	hello := recordedHello(t)
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	stop := make(chan struct{})
	var worst time.Duration
	var answered int
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4)
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			start := time.Now()
			c.SetDeadline(start.Add(10 * time.Second)) // each answer's bound, however long the flood takes
			if _, err := c.Write([]byte("ping")); err != nil {
				done <- err
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				done <- err
				return
			}
			worst = max(worst, time.Since(start))
			answered++
		}
	}()
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", s.addr())
		if err != nil {
			t.Logf("dial %d: %v", i, err)
			break
		}
		mu.Lock()
		conns = append(conns, nc)
		mu.Unlock()
		switch i % 3 {
		case 1:
			nc.Write(hello[:len(hello)/2])
		case 2:
			nc.Write(hello)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the established connection: %v", err)
	}
	if answered == 0 {
		t.Fatal("the established connection was never answered during the flood")
	}
	if pool.Active() > 256 {
		t.Fatalf("%d handshakes in progress, over the pool's max 256", pool.Active())
	}
	t.Logf("during a flood of %d half-open connections: %d answers, slowest %v", len(conns), answered, worst)
}

// TestReadDrainedAllocs: once Read has returned a whole record's
// plaintext and nothing more was lent, the next Read says ErrWouldBlock
// without going through crypto/tls: a keep-alive request costs crypto/tls
// one read of its record (one allocation, its own), not a second that
// finds nothing (two more, and a lock round: bench/tlscpu.sh, issue 20).
// A record lent afterwards is read as before.
func TestReadDrainedAllocs(t *testing.T) {
	s, c := establishWith(t, serverConf(t), clientConf())
	const runs = 100
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	recs := make([][]byte, runs+1)
	for i := range recs {
		recs[i] = recordOf(t, c, req)
	}
	p := make([]byte, 4096)
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		s.Open(recs[i])
		i++
		if n, err := s.Read(p); err != nil || string(p[:n]) != string(req) {
			t.Fatalf("record %d: %q, %v", i, p[:n], err)
		}
		if n, err := s.Read(p); n != 0 || err != tlsrec.ErrWouldBlock {
			t.Fatalf("after record %d: %d bytes, %v; want ErrWouldBlock", i, n, err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations a record: the Read after it went through crypto/tls", allocs)
	}
}
