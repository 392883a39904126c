// Command client is one receiver process of the fan-out benchmark: it
// opens -n WebSocket connections from source address -src to -addr (raw
// non-blocking sockets, so that one process holds many with little
// memory), joins each (the benchmark protocol's "join", or centrifuge's
// connect and subscribe), then reads every connection from one epoll loop
// and records, for each benchmark message received, its sequence number
// and its publish-to-receive latency. With -tls it speaks wss: each
// connection is a crypto/tls client (the server's certificate not
// verified: loopback only) read by a goroutine of its own, as decrypting
// needs crypto/tls's state.
//
// It talks to the driver through lines: it prints "ready <n>" once all
// connections are joined, "done <deliveries>" once every connection has
// received -k messages, and on the line "report" (or the end of its
// input) it writes the latencies to -out (int64 nanoseconds, little
// endian), prints a JSON summary and exits. A failure prints
// "error <what>" and exits 1.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/bench/fanout/wire"
	"github.com/goes-project/goes/bench/internal/rawfd"
)

// conn is one receiver. Its fields belong to the epoll loop once it is
// registered.
type conn struct {
	fd      int
	tc      *tls.Conn // with -tls; its goroutine reads it
	pending []byte    // a partial frame
	seen    []uint64  // bit per sequence number received
	got     int
	closed  bool
}

// Summary is what a client prints at the end.
type Summary struct {
	Conns      int     `json:"conns"`
	Deliveries int     `json:"deliveries"` // distinct (connection, message) pairs
	Dups       int     `json:"dups"`
	Closed     int     `json:"closed"`     // connections the server closed
	Strays     int     `json:"strays"`     // text frames without a benchmark message
	SeqCount   []int   `json:"seq_count"`  // deliveries per message, index seq-1
	SeqMaxNs   []int64 `json:"seq_max_ns"` // slowest delivery per message
	CPUNs      int64   `json:"cpu_ns"`     // this process's CPU time
}

type client struct {
	k      int
	centri bool
	epfd   int
	slots  []atomic.Pointer[conn]
	tls    *tls.Config // nil: plain ws

	mu       sync.Mutex // the loop's state, taken per batch of events
	lat      []int64
	sum      Summary
	joined   atomic.Int64
	tlsConns []*conn // with -tls, under mu
	done     bool
}

func main() {
	addr := flag.String("addr", "", "server address host:port")
	n := flag.Int("n", 1000, "connections")
	src := flag.String("src", "127.0.0.2", "source address (a loopback address of its own)")
	path := flag.String("path", "/", "WebSocket path")
	proto := flag.String("proto", "plain", "plain (join/ok) or centrifuge (its JSON protocol)")
	k := flag.Int("k", 5, "messages expected per connection")
	par := flag.Int("parallel", 32, "connections opened at once")
	out := flag.String("out", "", "latency file")
	timeout := flag.Duration("join-timeout", 5*time.Minute, "time to open and join all connections")
	useTLS := flag.Bool("tls", false, "wss: TLS to the server (its certificate not verified)")
	flag.Parse()

	dst, err := netip.ParseAddrPort(*addr)
	if err != nil {
		fail("bad -addr: %v", err)
	}
	sa, err := netip.ParseAddr(*src)
	if err != nil {
		fail("bad -src: %v", err)
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	if uint64(*n)+64 > lim.Cur {
		fail("%d connections exceed the open-file limit %d", *n, lim.Cur)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		fail("epoll: %v", err)
	}
	c := &client{k: *k, centri: *proto == "centrifuge", epfd: epfd, slots: make([]atomic.Pointer[conn], lim.Cur+1)}
	c.sum.SeqCount = make([]int, *k)
	c.sum.SeqMaxNs = make([]int64, *k)
	c.lat = make([]int64, 0, *n**k)
	if *useTLS {
		// X25519 alone: the handshakes are the join's cost, not the measure.
		c.tls = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.X25519}}
	}
	go c.loop()

	// Open and join.
	deadline := time.Now().Add(*timeout)
	idx := make(chan int)
	errs := make(chan error, *par)
	var wg sync.WaitGroup
	for range *par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range idx {
				if err := c.open(sa, dst, *path, deadline); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var firstErr error
feed:
	for i := 0; i < *n; i++ {
		select {
		case idx <- i:
		case firstErr = <-errs:
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if firstErr == nil {
		select {
		case firstErr = <-errs:
		default:
		}
	}
	if firstErr != nil {
		fail("after %d joined: %v", c.joined.Load(), firstErr)
	}
	c.mu.Lock()
	c.sum.Conns = int(c.joined.Load())
	c.mu.Unlock()
	fmt.Printf("ready %d\n", c.joined.Load())

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "report" {
			break
		}
	}
	c.report(*out)
}

func fail(format string, args ...any) {
	fmt.Printf("error "+format+"\n", args...)
	os.Exit(1)
}

// open connects one receiver, makes the opening handshake and joins, with
// blocking-style I/O on a non-blocking socket (poll), then hands it to the
// epoll loop.
func (c *client) open(src netip.Addr, dst netip.AddrPort, path string, deadline time.Time) error {
	if c.tls != nil {
		return c.openTLS(src, dst, path, deadline)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	// The port is chosen at connect, per destination: one source address
	// then serves as many connections as the ephemeral range holds.
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return fmt.Errorf("connect: %w", err)
	}
	if err := rawfd.Wait(fd, unix.POLLOUT, deadline); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if e, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
		return fmt.Errorf("connect: %w", syscall.Errno(e))
	}
	if err := rawfd.WriteAll(fd, wire.UpgradeRequest(dst.String(), path), deadline); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	buf := make([]byte, 0, 1024)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if err := wire.CheckUpgradeResponse(buf[:i+4]); err != nil {
				return err
			}
			buf = append(buf[:0], buf[i+4:]...)
			break
		}
		if buf, err = rawfd.ReadMore(fd, buf, deadline); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
	}
	if err := rawfd.WriteAll(fd, wire.AppendFrame(nil, wire.OpText, c.joinMsg(), true), deadline); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	buf, err = c.awaitJoin(buf, func(b []byte) ([]byte, error) { return rawfd.ReadMore(fd, b, deadline) })
	if err != nil {
		return err
	}
	cn := &conn{fd: fd, seen: make([]uint64, (c.k+63)/64)}
	if len(buf) > 0 {
		cn.pending = append([]byte(nil), buf...)
	}
	c.slots[fd].Store(cn)
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	ok = true
	c.joined.Add(1)
	return nil
}

func (c *client) joinMsg() []byte {
	if c.centri {
		return []byte(`{"id":1,"connect":{}}` + "\n" + `{"id":2,"subscribe":{"channel":"bench"}}`)
	}
	return []byte(wire.Join)
}

// awaitJoin reads frames (more comes from readMore) until the join is
// answered and returns what follows the answer.
func (c *client) awaitJoin(buf []byte, readMore func([]byte) ([]byte, error)) ([]byte, error) {
	for joined := false; !joined; {
		op, p, n, err := wire.ParseFrame(buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if buf, err = readMore(buf); err != nil {
				return nil, fmt.Errorf("join: %w", err)
			}
			continue
		}
		if op == wire.OpText {
			switch {
			case c.centri:
				if i := bytes.Index(p, []byte(`"id":2`)); i >= 0 {
					if bytes.Contains(p[i:], []byte(`"error"`)) {
						return nil, fmt.Errorf("subscribe: %s", p)
					}
					joined = true
				} else if bytes.Contains(p, []byte(`"error"`)) {
					return nil, fmt.Errorf("connect: %s", p)
				}
			case string(p) == wire.OK:
				joined = true
			default:
				return nil, fmt.Errorf("join answered %q", p)
			}
		}
		buf = buf[n:]
	}
	return buf, nil
}

// openTLS is open over wss: a crypto/tls client on a socket bound to src,
// then a goroutine of its own reads it (readTLS).
func (c *client) openTLS(src netip.Addr, dst netip.AddrPort, path string, deadline time.Time) error {
	d := net.Dialer{
		Deadline:  deadline,
		LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
		},
	}
	raw, err := d.Dial("tcp4", dst.String())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	tc := tls.Client(raw, c.tls)
	ok := false
	defer func() {
		if !ok {
			tc.Close()
		}
	}()
	tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	if _, err := tc.Write(wire.UpgradeRequest(dst.String(), path)); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	readMore := func(b []byte) ([]byte, error) {
		if cap(b)-len(b) < 512 {
			b = append(b, make([]byte, 4096)...)[:len(b)]
		}
		n, err := tc.Read(b[len(b):cap(b)])
		return b[:len(b)+n], err
	}
	buf := make([]byte, 0, 1024)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if err := wire.CheckUpgradeResponse(buf[:i+4]); err != nil {
				return err
			}
			buf = append(buf[:0], buf[i+4:]...)
			break
		}
		if buf, err = readMore(buf); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
	}
	if _, err := tc.Write(wire.AppendFrame(nil, wire.OpText, c.joinMsg(), true)); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if buf, err = c.awaitJoin(buf, readMore); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	cn := &conn{fd: -1, tc: tc, seen: make([]uint64, (c.k+63)/64)}
	if len(buf) > 0 {
		cn.pending = append([]byte(nil), buf...)
	}
	c.mu.Lock()
	c.tlsConns = append(c.tlsConns, cn)
	c.mu.Unlock()
	ok = true
	c.joined.Add(1)
	go c.readTLS(cn)
	return nil
}

// readTLS reads cn until it ends; what it reads is handled under c.mu as
// the epoll loop handles a batch.
func (c *client) readTLS(cn *conn) {
	buf := make([]byte, 4096)
	for {
		n, err := cn.tc.Read(buf)
		c.mu.Lock()
		if n > 0 && !cn.closed {
			c.handle(cn, buf[:n], time.Now().UnixNano())
		}
		if err != nil && !cn.closed {
			c.drop(cn)
		}
		c.checkDone()
		closed := cn.closed
		c.mu.Unlock()
		if closed {
			return
		}
	}
}

// loop reads every registered connection.
func (c *client) loop() {
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.EpollWait(c.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fail("epoll_wait: %v", err)
		}
		c.mu.Lock()
		for _, ev := range events[:n] {
			if cn := c.slots[ev.Fd].Load(); cn != nil && !cn.closed {
				c.read(cn, buf)
			}
		}
		c.checkDone()
		c.mu.Unlock()
	}
}

// checkDone says "done" once every connection has its messages; under c.mu.
func (c *client) checkDone() {
	if !c.done && c.sum.Conns > 0 && c.sum.Deliveries >= c.sum.Conns*c.k {
		c.done = true
		fmt.Printf("done %d\n", c.sum.Deliveries)
	}
}

// read takes what cn has to read and handles its frames; under c.mu.
func (c *client) read(cn *conn, buf []byte) {
	for {
		n, err := unix.Read(cn.fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		if err != nil || n == 0 {
			c.drop(cn)
			return
		}
		c.handle(cn, buf[:n], time.Now().UnixNano())
		if cn.closed || n < len(buf) {
			return
		}
	}
}

// handle takes the frames of data (after what cn had pending); under c.mu.
func (c *client) handle(cn *conn, data []byte, now int64) {
	if len(cn.pending) > 0 {
		data = append(cn.pending, data...)
		cn.pending = nil
	}
	for len(data) > 0 && !cn.closed {
		op, p, m, err := wire.ParseFrame(data)
		if err != nil {
			c.drop(cn)
			return
		}
		if m == 0 {
			cn.pending = append([]byte(nil), data...)
			return
		}
		c.frame(cn, op, p, now)
		data = data[m:]
	}
}

// write sends b to cn's server (a pong), not waiting.
func (cn *conn) write(b []byte) {
	if cn.tc != nil {
		cn.tc.Write(b)
		return
	}
	unix.Write(cn.fd, b)
}

func (c *client) frame(cn *conn, op byte, p []byte, now int64) {
	switch op {
	case wire.OpPing:
		cn.write(wire.AppendFrame(nil, wire.OpPong, p, true))
		return
	case wire.OpClose:
		c.drop(cn)
		return
	case wire.OpText:
	default:
		return
	}
	if c.centri && string(p) == "{}" { // centrifuge's ping: answer with a pong
		cn.write(wire.AppendFrame(nil, wire.OpText, p, true))
		return
	}
	found := false
	wire.Scan(p, func(seq int, ns int64) {
		found = true
		if seq < 1 || seq > c.k {
			c.sum.Strays++
			return
		}
		i := seq - 1
		if cn.seen[i/64]&(1<<(i%64)) != 0 {
			c.sum.Dups++
			return
		}
		cn.seen[i/64] |= 1 << (i % 64)
		cn.got++
		d := now - ns
		c.lat = append(c.lat, d)
		c.sum.Deliveries++
		c.sum.SeqCount[i]++
		c.sum.SeqMaxNs[i] = max(c.sum.SeqMaxNs[i], d)
	})
	if !found {
		c.sum.Strays++
	}
}

func (c *client) drop(cn *conn) {
	cn.closed = true
	c.sum.Closed++
	if cn.tc == nil {
		unix.EpollCtl(c.epfd, unix.EPOLL_CTL_DEL, cn.fd, nil)
	}
}

func (c *client) report(out string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if out != "" {
		b := make([]byte, 0, 8*len(c.lat))
		for _, d := range c.lat {
			b = binary.LittleEndian.AppendUint64(b, uint64(d))
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			fail("write %s: %v", out, err)
		}
	}
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	c.sum.CPUNs = ru.Utime.Nano() + ru.Stime.Nano()
	j, _ := json.Marshal(c.sum)
	fmt.Printf("summary %s\n", j)
	// Reset, not FIN: no TIME_WAIT left behind.
	for i := range c.slots {
		if cn := c.slots[i].Load(); cn != nil {
			unix.SetsockoptLinger(cn.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(cn.fd)
		}
	}
	for _, cn := range c.tlsConns {
		if tcp, ok := cn.tc.NetConn().(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
		cn.closed = true
		cn.tc.NetConn().Close()
	}
	os.Stdout.Sync()
	os.Exit(0)
}
