// Command client is one client process of the c1m benchmark: it opens -n
// WebSocket connections from source address -src to -addr on raw
// non-blocking sockets (a few hundred bytes of its own per connection),
// keeps -parallel handshakes in flight, then holds them in one epoll loop,
// answering pings.
//
// It talks to the driver through lines. Once the connections are open (or
// the -connect-timeout has passed) it prints "ready <open> <failed>
// <first error>". On the line "echo" it sends one -size byte binary
// message on every connection and prints "echoed <n> <ns>" once every
// open connection has had it back whole (n: how many did, ns: the time from
// the first send), or when -echo-timeout passes. On "stat" it prints
// "stat <open> <closed by the server>"; on "quit" or the end of its input
// it exits.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
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

// opBinary is the opcode of a binary frame.
const opBinary = 0x2

// conn is one client connection; its fields belong to the epoll loop.
type conn struct {
	fd      int
	pending []byte // a partial frame
	got     int    // echo bytes received in the current round
	closed  bool
}

type client struct {
	epfd  int
	port  atomic.Uint32 // the last source port taken
	slots []atomic.Pointer[conn]
	all   []*conn // under mu

	mu       sync.Mutex
	size     int
	round    bool // an echo round is on
	complete int  // connections that had their echo back this round
	closed   int
	roundEnd chan struct{}
}

func main() {
	addr := flag.String("addr", "", "server address host:port")
	n := flag.Int("n", 1000, "connections")
	src := flag.String("src", "127.0.0.2", "source address (a loopback address of its own)")
	path := flag.String("path", "/", "WebSocket path")
	par := flag.Int("parallel", 100, "handshakes in flight")
	size := flag.Int("size", 1024, "echo message size, bytes")
	connectTimeout := flag.Duration("connect-timeout", 10*time.Minute, "time to open all connections")
	echoTimeout := flag.Duration("echo-timeout", 2*time.Minute, "time for one echo round")
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
	c := &client{epfd: epfd, slots: make([]atomic.Pointer[conn], lim.Cur+1), size: *size}
	c.port.Store(1023)
	go c.loop()

	deadline := time.Now().Add(*connectTimeout)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range *par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) && time.Now().Before(deadline) {
				if err := c.open(sa, dst, *path, deadline); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	open := len(c.all)
	c.mu.Unlock()
	e, _ := firstErr.Load().(string)
	fmt.Printf("ready %d %d %s\n", open, failed.Load(), strings.ReplaceAll(e, " ", "_"))

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "echo":
			c.echo(*echoTimeout)
		case "stat":
			c.mu.Lock()
			fmt.Printf("stat %d %d\n", len(c.all)-c.closed, c.closed)
			c.mu.Unlock()
		case "quit":
			return
		}
	}
}

func fail(format string, args ...any) {
	fmt.Printf("error "+format+"\n", args...)
	os.Exit(1)
}

// echo sends one message on every open connection and waits for them all
// to come back, or for timeout.
func (c *client) echo(timeout time.Duration) {
	msg := make([]byte, c.size)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	frame := wire.AppendFrame(nil, opBinary, msg, true)
	c.mu.Lock()
	c.round, c.complete = true, 0
	c.roundEnd = make(chan struct{})
	end := c.roundEnd
	conns := make([]*conn, 0, len(c.all))
	for _, cn := range c.all {
		if !cn.closed {
			cn.got = 0
			conns = append(conns, cn)
		}
	}
	want := len(conns)
	c.mu.Unlock()
	start := time.Now()
	deadline := start.Add(timeout)
	for _, cn := range conns {
		rawfd.WriteAll(cn.fd, frame, deadline) // a failure shows as a missing echo
	}
	c.mu.Lock()
	if c.roundEnd != nil && c.complete >= want {
		close(end)
		c.roundEnd = nil
	}
	c.mu.Unlock()
	select {
	case <-end:
	case <-time.After(time.Until(deadline)):
	}
	took := time.Since(start)
	c.mu.Lock()
	c.round = false
	done := c.complete
	c.mu.Unlock()
	fmt.Printf("echoed %d %d\n", done, took.Nanoseconds())
}

// open connects one client and makes the opening handshake, with
// blocking-style I/O on a non-blocking socket (poll), then hands it to the
// epoll loop.
func (c *client) open(src netip.Addr, dst netip.AddrPort, path string, deadline time.Time) error {
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
	// The port is this client's next one: the source address is its own.
	// Left to the kernel (bind without a port, or IP_BIND_ADDRESS_NO_PORT),
	// every connect searched the ephemeral range for a free port, past the
	// ones taken: with thousands open, the clients' connects took most of
	// the machine (__inet_check_established) and set the connect rate.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) // a port in TIME_WAIT from an earlier run
	for {
		port := c.port.Add(1)
		if port > 65535 {
			return errors.New("bind: out of source ports")
		}
		err = unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4(), Port: int(port)})
		if errors.Is(err, unix.EADDRINUSE) {
			continue
		}
		if err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		break
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
	buf := make([]byte, 0, 512)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if err := wire.CheckUpgradeResponse(buf[:i+4]); err != nil {
				return err
			}
			buf = buf[i+4:]
			break
		}
		if buf, err = rawfd.ReadMore(fd, buf, deadline); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
	}
	cn := &conn{fd: fd}
	if len(buf) > 0 {
		cn.pending = append([]byte(nil), buf...)
	}
	c.slots[fd].Store(cn)
	c.mu.Lock()
	c.all = append(c.all, cn)
	c.mu.Unlock()
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	ok = true
	return nil
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
		c.mu.Unlock()
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
		data := buf[:n]
		if len(cn.pending) > 0 {
			data = append(cn.pending, data...)
			cn.pending = nil
		}
		for len(data) > 0 {
			op, p, m, err := wire.ParseFrame(data)
			if err != nil {
				c.drop(cn)
				return
			}
			if m == 0 {
				cn.pending = append([]byte(nil), data...)
				break
			}
			switch op {
			case wire.OpPing:
				unix.Write(cn.fd, wire.AppendFrame(nil, wire.OpPong, p, true))
			case wire.OpClose:
				c.drop(cn)
				return
			case opBinary:
				if c.round && cn.got < c.size {
					cn.got += len(p)
					if cn.got >= c.size {
						c.complete++
						if c.roundEnd != nil && c.complete >= c.want() {
							close(c.roundEnd)
							c.roundEnd = nil
						}
					}
				}
			}
			data = data[m:]
		}
		if n < len(buf) {
			return
		}
	}
}

// want is the number of connections an echo round waits for; under c.mu.
func (c *client) want() int { return len(c.all) - c.closed }

func (c *client) drop(cn *conn) {
	cn.closed = true
	c.closed++
	unix.EpollCtl(c.epfd, unix.EPOLL_CTL_DEL, cn.fd, nil)
	unix.Close(cn.fd)
	if c.round && c.roundEnd != nil && c.complete >= c.want() {
		close(c.roundEnd)
		c.roundEnd = nil
	}
}
