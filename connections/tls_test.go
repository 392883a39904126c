package connections_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	stdhttp "net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
)

// tlsLn is a connections.TLSListener over a loopback TCP listener, which
// counts the handshakes it is told of; its Accept (for the standard
// engine) is tls.NewListener's.
type tlsLn struct {
	net.Listener // tls.NewListener over raw
	raw          net.Listener
	sv           connections.TLSServing
	ok, failed   atomic.Int64
	resumed      atomic.Int64
	mu           sync.Mutex
	errs         []error
}

func (l *tlsLn) TLS() (net.Listener, connections.TLSServing) { return l.raw, l.sv }

func newTLSLn(t testing.TB, timeout time.Duration) *tlsLn {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{testkit.SelfSigned(t)}}
	l := &tlsLn{Listener: tls.NewListener(raw, conf), raw: raw}
	l.sv = connections.TLSServing{Config: conf, HandshakeTimeout: timeout, Done: func(st *tls.ConnectionState, err error, _ time.Duration) {
		if err != nil {
			l.failed.Add(1)
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
			return
		}
		l.ok.Add(1)
		if st.DidResume {
			l.resumed.Add(1)
		}
	}}
	return l
}

// serveTLS serves cfg on a TLSListener (engine "" is EngineAuto).
func serveTLSLn(t testing.TB, ln *tlsLn, cfg connections.Config) *connections.Server {
	t.Helper()
	cfg.Logger = testkit.Logger(t)
	cfg.Transport = "tls"
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s
}

func tlsDial(t testing.TB, addr string, conf *tls.Config) *tls.Conn {
	t.Helper()
	if conf == nil {
		conf = &tls.Config{InsecureSkipVerify: true}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// tlsEngines: EngineAuto (epoll on Linux), the standard engine, and the
// epoll engine with callbacks on a pool.
func tlsEngines() []testkit.Engine {
	cs := []testkit.Engine{{Name: ""}, {Name: connections.EngineStd}}
	if runtime.GOOS == "linux" {
		cs = append(cs, testkit.Engine{Name: connections.EngineEpoll, Pool: 4})
	}
	return cs
}

func engineName(e testkit.Engine) string {
	if e.Name == "" {
		return "auto"
	}
	return e.String()
}

func wantEngine(e testkit.Engine) string {
	if e.Name == "" {
		if runtime.GOOS == "linux" {
			return connections.EngineEpoll
		}
		return connections.EngineStd
	}
	return e.Name
}

// rawEcho is a protocol of raw bytes: each read is a message.
func rawEchoCfg(e testkit.Engine) connections.Config {
	return connections.Config{Engine: e.Name, CallbackGoroutines: e.Pool, Handler: connections.Handler{
		OnMessage: func(c connections.Connection, b []byte) { c.SendBytes(b, false) },
	}}
}

// TestTLSEngineAuto: a TLSListener under EngineAuto runs on the event
// loops (Info.Engine), with no goroutine per connection; its handshakes
// are counted.
func TestTLSEngineAuto(t *testing.T) {
	ln := newTLSLn(t, 0)
	s := serveTLSLn(t, ln, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
	base := runtime.NumGoroutine()
	const n = 50
	for i := 0; i < n; i++ {
		c := tlsDial(t, ln.Addr().String(), nil)
		fmt.Fprintf(c, "hello %d\n", i)
		if l, err := bufio.NewReader(c).ReadString('\n'); l != fmt.Sprintf("hello %d\n", i) {
			t.Fatalf("echo %q, %v", l, err)
		}
	}
	infos := s.Connections()
	if len(infos) != n {
		t.Fatalf("%d connections listed, want %d", len(infos), n)
	}
	want := wantEngine(testkit.Engine{})
	for _, in := range infos {
		if in.Engine != want {
			t.Fatalf("a TLS connection under EngineAuto runs on %q, want %q", in.Engine, want)
		}
	}
	if want == connections.EngineEpoll {
		if g := runtime.NumGoroutine(); g > base+10 {
			t.Fatalf("%d goroutines with %d idle TLS connections (%d before them)", g, n, base)
		}
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "handshakes counted", func() bool { return ln.ok.Load() == n })
	if ln.failed.Load() != 0 {
		t.Fatalf("%d handshakes failed", ln.failed.Load())
	}
}

// TestTLSEchoSizes: records of many sizes, over 16 KiB included, sent
// whole and in pieces of 3 bytes (partial records), and pipelined
// requests, on every engine.
func TestTLSEchoSizes(t *testing.T) {
	for _, e := range tlsEngines() {
		t.Run("engine="+engineName(e), func(t *testing.T) {
			ln := newTLSLn(t, 0)
			serveTLSLn(t, ln, rawEchoCfg(e))
			for _, piece := range []int{0, 3} {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.(*net.TCPConn).SetNoDelay(true)
				var under net.Conn = nc
				sizes := []int{1, 100, 1500, 16383, 16384, 16385, 40000, 200 << 10}
				if piece > 0 {
					under, sizes = testkit.PieceConn{Conn: nc, N: piece}, []int{1, 100, 1500, 16385}
				}
				c := tls.Client(under, &tls.Config{InsecureSkipVerify: true})
				c.SetDeadline(time.Now().Add(20 * time.Second))
				for _, n := range sizes {
					want := testkit.Pattern(n)
					go c.Write(want)
					got := make([]byte, n)
					if _, err := io.ReadFull(c, got); err != nil {
						t.Fatalf("piece %d, size %d: %v", piece, n, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("piece %d: echo of %d bytes differs", piece, n)
					}
				}
				c.Close()
			}
			// Pipelined: 300 requests written before any answer is read.
			c := tlsDial(t, ln.Addr().String(), nil)
			var req bytes.Buffer
			for i := 0; i < 300; i++ {
				fmt.Fprintf(&req, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			}
			go c.Write(req.Bytes())
			got := make([]byte, req.Len())
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, req.Bytes()) {
				t.Fatalf("pipelined: %v", err)
			}
		})
	}
}

// TestTLSCloseNotify: a connection the server closes after its answer
// ends with close_notify (the client reads io.EOF, not a truncation); a
// client's close_notify ends the connection; an abrupt close and a
// corrupted record end only their own connection.
func TestTLSCloseNotify(t *testing.T) {
	for _, e := range tlsEngines() {
		t.Run("engine="+engineName(e), func(t *testing.T) {
			ln := newTLSLn(t, 0)
			var closed atomic.Int32
			s := serveTLSLn(t, ln, connections.Config{Engine: e.Name, CallbackGoroutines: e.Pool, Protocol: text.New(), Handler: connections.Handler{
				OnMessage: func(c connections.Connection, b []byte) {
					c.SendBytes(b, false)
					if string(b) == "bye" {
						c.Close()
					}
				},
				OnClose: func(connections.Connection) { closed.Add(1) },
			}})
			keep := tlsDial(t, ln.Addr().String(), nil)
			kr := bufio.NewReader(keep)

			// TLS 1.2, whose alerts show as records of type 21.
			nc0, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			rc := &readRec{Conn: nc0}
			c := tls.Client(rc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "bye\n")
			r := bufio.NewReader(c)
			if l, err := r.ReadString('\n'); l != "bye\n" {
				t.Fatalf("answer before close: %q, %v", l, err)
			}
			if _, err := r.ReadByte(); err != io.EOF {
				t.Fatalf("after the server's Close: %v, want io.EOF", err)
			}
			if typ := lastRecordType(rc.got); typ != 21 {
				t.Fatalf("the server's last record is of type %d, want 21 (its close_notify alert)", typ)
			}

			c2 := tlsDial(t, ln.Addr().String(), nil)
			io.WriteString(c2, "x\n")
			bufio.NewReader(c2).ReadString('\n')
			c2.CloseWrite() // close_notify
			// Abrupt: half a record, then gone.
			nc, _ := net.Dial("tcp", ln.Addr().String())
			c3 := tls.Client(&holdConn{Conn: nc}, &tls.Config{InsecureSkipVerify: true})
			c3.SetDeadline(time.Now().Add(10 * time.Second))
			if err := c3.Handshake(); err != nil {
				t.Fatal(err)
			}
			hc := c3.NetConn().(*holdConn)
			hc.hold = true
			c3.Write(bytes.Repeat([]byte("z"), 500))
			nc.Write(hc.held[:len(hc.held)/2])
			nc.Close()
			// Corrupted: a flipped bit, bad record MAC.
			nc4, _ := net.Dial("tcp", ln.Addr().String())
			defer nc4.Close()
			c4 := tls.Client(&holdConn{Conn: nc4}, &tls.Config{InsecureSkipVerify: true})
			c4.SetDeadline(time.Now().Add(10 * time.Second))
			if err := c4.Handshake(); err != nil {
				t.Fatal(err)
			}
			hc4 := c4.NetConn().(*holdConn)
			hc4.hold = true
			c4.Write([]byte("evil\n"))
			hc4.held[len(hc4.held)-1] ^= 1
			nc4.Write(hc4.held)
			if _, err := c4.Read(make([]byte, 10)); err == nil {
				t.Fatal("a corrupted record was answered")
			}
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "four closed", func() bool { return closed.Load() == 4 })
			io.WriteString(keep, "still\n")
			if l, err := kr.ReadString('\n'); l != "still\n" {
				t.Fatalf("the other connection: %q, %v", l, err)
			}
			if n := s.Stats().Connections; n != 1 {
				t.Fatalf("%d connections open, want 1", n)
			}
		})
	}
}

// readRec keeps what is read.
type readRec struct {
	net.Conn
	got []byte
}

func (c *readRec) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.got = append(c.got, b[:n]...)
	return n, err
}

// lastRecordType is the type of the last TLS record in b (-1: none).
func lastRecordType(b []byte) int {
	typ := -1
	for len(b) >= 5 {
		typ = int(b[0])
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if n > len(b) {
			return -1
		}
		b = b[n:]
	}
	return typ
}

// holdConn keeps what is written once hold is set.
type holdConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *holdConn) Write(b []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// TestTLSNotTLS: plain HTTP and garbage on a TLS port close that
// connection only, counted as failed handshakes.
func TestTLSNotTLS(t *testing.T) {
	ln := newTLSLn(t, 0)
	serveTLSLn(t, ln, rawEchoCfg(testkit.Engine{}))
	for _, in := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x00\x01garbage"} {
		c := dial(t, "tcp", ln.Addr().String())
		io.WriteString(c, in)
		b, err := io.ReadAll(c)
		if err != nil && !testkit.IsReset(err) {
			t.Fatalf("%q: %v", in, err)
		}
		if len(b) > 0 && b[0] != 21 { // an alert record at most
			t.Fatalf("%q answered %q", in, b)
		}
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "two failed", func() bool { return ln.failed.Load() == 2 })
}

// TestTLSSlowHello: a ClientHello sent a byte at a time is closed at the
// handshake timeout (its Done says why).
func TestTLSSlowHello(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ln := newTLSLn(t, timeout)
	serveTLSLn(t, ln, rawEchoCfg(testkit.Engine{}))
	start := time.Now() // before the dial: the server's clock starts at its accept
	c := dial(t, "tcp", ln.Addr().String())
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, c)
		closed <- time.Since(start)
	}()
	hello := []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") // the start of a 512-byte hello
	for i := 0; ; i++ {
		select {
		case d := <-closed:
			if d < timeout {
				t.Fatalf("closed after %v, before the timeout %v", d, timeout)
			}
			t.Logf("slow ClientHello closed after %v (timeout %v)", d, timeout)
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "counted failed", func() bool { return ln.failed.Load() == 1 })
			ln.mu.Lock()
			err := ln.errs[0]
			ln.mu.Unlock()
			if !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("failed with %v, want the handshake timeout", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("a slow ClientHello was not closed")
		}
		c.Write([]byte{hello[i%len(hello)]})
	}
}

// TestTLSFlood: 2,000 half-open connections to one server (silent ones,
// half ClientHellos, whole ClientHellos and no more) while an
// established TLS connection keeps being answered. What it measures (the
// slowest answer) is logged; it asserts that every answer came.
func TestTLSFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const n = 2000
	ln := newTLSLn(t, 0)
	ln.sv.MaxHandshakes = 200
	serveTLSLn(t, ln, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
	keep := tlsDial(t, ln.Addr().String(), nil)
	kr := bufio.NewReader(keep)
	hello := recordHello(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	stop := make(chan struct{})
	type result struct {
		n     int
		worst time.Duration
		err   error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		for {
			select {
			case <-stop:
				res <- r
				return
			default:
			}
			start := time.Now()
			keep.SetDeadline(start.Add(10 * time.Second)) // each answer's bound, however long the flood takes
			io.WriteString(keep, "ping\n")
			if l, err := kr.ReadString('\n'); l != "ping\n" {
				r.err = fmt.Errorf("%q, %w", l, err)
				res <- r
				return
			}
			r.worst = max(r.worst, time.Since(start))
			r.n++
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Logf("dial %d: %v", i, err)
			break
		}
		conns = append(conns, c)
		switch i % 3 {
		case 1:
			c.Write(hello[:len(hello)/2])
		case 2:
			c.Write(hello)
		}
	}
	close(stop)
	r := <-res
	if r.err != nil {
		t.Fatalf("the established connection during the flood: %v", r.err)
	}
	if r.n == 0 {
		t.Fatal("the established connection was not answered during the flood")
	}
	t.Logf("flood of %d half-open TLS connections: %d answers on the established one, slowest %v", len(conns), r.n, r.worst)
}

// recordHello returns a real client's ClientHello.
func recordHello(t testing.TB) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{InsecureSkipVerify: true}).Handshake()
	var hello []byte
	buf := make([]byte, 8192)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(hello) < 5 || len(hello) < 5+(int(hello[3])<<8|int(hello[4])) {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		hello = append(hello, buf[:n]...)
	}
	return hello
}

// TestTLSDrain: a request in flight when the server drains is answered,
// then the connection closes with close_notify.
func TestTLSDrain(t *testing.T) {
	for _, e := range tlsEngines() {
		t.Run("engine="+engineName(e), func(t *testing.T) {
			ln := newTLSLn(t, 0)
			release := make(chan struct{})
			got := make(chan struct{})
			s := serveTLSLn(t, ln, connections.Config{Engine: e.Name, CallbackGoroutines: e.Pool, Protocol: text.New(), Handler: connections.Handler{
				OnMessage: func(c connections.Connection, b []byte) {
					go func() {
						close(got)
						<-release
						c.SendBytes(b, false)
						c.CloseAfterFlush()
						c.Close()
					}()
				},
			}})
			c := tlsDial(t, ln.Addr().String(), nil)
			io.WriteString(c, "in flight\n")
			<-got
			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shut <- s.Shutdown(ctx)
			}()
			close(release)
			r := bufio.NewReader(c)
			if l, err := r.ReadString('\n'); l != "in flight\n" {
				t.Fatalf("answer during drain: %q, %v", l, err)
			}
			if err := <-shut; err != nil {
				t.Fatalf("drain: %v", err)
			}
		})
	}
}

// TestTLSPartialRecord: a record sent in part and no more closes its
// connection at BodyTimeout (body_timeout), while a connection idle
// between records stays open.
func TestTLSPartialRecord(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ln := newTLSLn(t, 0)
	cfg := rawEchoCfg(testkit.Engine{})
	cfg.BodyTimeout = timeout
	s := serveTLSLn(t, ln, cfg)
	idle := tlsDial(t, ln.Addr().String(), nil)
	io.WriteString(idle, "x")
	if _, err := io.ReadFull(idle, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := tls.Client(&holdConn{Conn: nc}, &tls.Config{InsecureSkipVerify: true})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	hc := c.NetConn().(*holdConn)
	hc.hold = true
	c.Write(bytes.Repeat([]byte("p"), 4000))
	start := time.Now()
	nc.Write(hc.held[:len(hc.held)/2])
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil && !testkit.IsReset(err) {
		t.Fatalf("a half-sent record: %v (not closed)", err)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("closed after %v, before BodyTimeout %v", d, timeout)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "counted", func() bool {
		return s.Stats().Closed[connections.ClosedBodyTimeout] == 1
	})
	io.WriteString(idle, "y")
	if _, err := io.ReadFull(idle, make([]byte, 1)); err != nil {
		t.Fatalf("the connection idle between records: %v", err)
	}
}

// TestTLSPipelinedHTTPS: 200 HTTP requests pipelined over one TLS
// connection, on the HTTP protocol, are answered in order.
func TestTLSPipelinedHTTPS(t *testing.T) {
	for _, e := range tlsEngines() {
		t.Run("engine="+engineName(e), func(t *testing.T) {
			ln := newTLSLn(t, 0)
			serveTLSLn(t, ln, connections.Config{Engine: e.Name, CallbackGoroutines: e.Pool, Protocol: http.New(), Handler: connections.Handler{
				OnMessage: func(c connections.Connection, _ []byte) {
					c.Send("path "+http.RequestOf(c).Path(), false)
				},
			}})
			c := tlsDial(t, ln.Addr().String(), nil)
			const n = 200
			var reqs bytes.Buffer
			for i := 0; i < n; i++ {
				fmt.Fprintf(&reqs, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			}
			go c.Write(reqs.Bytes())
			r := bufio.NewReader(c)
			for i := 0; i < n; i++ {
				resp, err := stdhttp.ReadResponse(r, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("path /%d", i); string(body) != want {
					t.Fatalf("response %d: %q, want %q", i, body, want)
				}
			}
		})
	}
}

// TestTLSFanout: messages published with a Fanout to many TLS
// connections, while other goroutines Send to them too, arrive at every
// member once, whole and in order: the loops seal each member's output
// into records in their io_uring batch (gather), and write what follows a
// batched send sealed too (never plaintext on a TLS socket). On the
// epoll engine with io_uring, Stats.IOUringSends shows the batch was used.
func TestTLSFanout(t *testing.T) {
	for _, e := range tlsEngines() {
		t.Run(engineName(e), func(t *testing.T) {
			const members, msgs, chatter = 40, 40, 10
			var g group
			ln := newTLSLn(t, 0)
			cfg := connections.Config{Engine: e.Name, CallbackGoroutines: e.Pool, Protocol: text.New(),
				Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
					if string(data) == "join" {
						g.join(c)
					}
				}}}
			srv := serveTLSLn(t, ln, cfg)
			addr := ln.Addr().String()
			readers := make([]*bufio.Reader, members)
			for i := range readers {
				c := tlsDial(t, addr, nil)
				readers[i] = joinGroup(t, i, c)
			}
			cs := g.members()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // chatter from another goroutine meanwhile
				defer wg.Done()
				for k := 0; k < chatter; k++ {
					for _, c := range cs {
						c.Send("chatter", false)
					}
				}
			}()
			var f connections.Fanout
			for m := 0; m < msgs; m++ {
				f.Begin([]byte(fmt.Sprintf("m %d %s", m, strings.Repeat("x", m*37))), false)
				for _, c := range cs {
					if err := f.Add(c); err != nil {
						t.Fatalf("message %d: %v", m, err)
					}
				}
				if n := f.End(); n != members {
					t.Fatalf("message %d sent to %d of %d", m, n, members)
				}
			}
			wg.Wait()
			for _, c := range cs {
				c.Send("end", false)
			}
			for i, r := range readers {
				next, chat := 0, 0
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatalf("member %d after %d messages: %v", i, next, err)
					}
					l = strings.TrimSuffix(l, "\n")
					switch {
					case l == "end":
					case l == "chatter":
						chat++
						continue
					default:
						if want := fmt.Sprintf("m %d %s", next, strings.Repeat("x", next*37)); l != want {
							t.Fatalf("member %d: message %d reads %.40q", i, next, l)
						}
						next++
						continue
					}
					break
				}
				if next != msgs || chat != chatter {
					t.Fatalf("member %d: %d messages, %d chatter lines; want %d, %d", i, next, chat, msgs, chatter)
				}
			}
			st := srv.Stats()
			t.Logf("%d writes, %d in io_uring batches", st.Writes, st.IOUringSends)
			if wantEngine(e) == connections.EngineEpoll && st.IOUringSends == 0 {
				t.Errorf("no io_uring send on the epoll engine (%d writes)", st.Writes)
			}
		})
	}
}
