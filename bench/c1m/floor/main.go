// Command floor is the many-connections benchmark's floor server
// (bench/c1m.sh -server floor): the least a WebSocket echo server on this
// machine can do, to set goes-master's figures against. It starts -workers
// processes (re-executions of itself) that each listen on -addr with
// SO_REUSEPORT and run one epoll loop on raw system calls
// (GOMAXPROCS=1): a connection's opening handshake is answered from the
// first read that holds the whole request, and every frame that arrives is
// written back unmasked, one read and one write an echo, no timers, no
// per-connection buffer while idle. It has none of a server's duties
// (limits, timeouts, closing handshakes, fragments, control frames): it is a
// measuring stick, not a server.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/goes-project/goes/bench/fanout/wire"
	"golang.org/x/sys/unix"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18181", "listen address host:port")
	workers := flag.Int("workers", 1, "processes")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		fail("bad -addr: %v", err)
	}
	if os.Getenv("FLOOR_WORKER") == "" {
		parent(*workers)
		return
	}
	runtime.GOMAXPROCS(1)
	serve(ap)
}

// parent starts the workers and stops them on SIGTERM or SIGINT.
func parent(n int) {
	var kids []*exec.Cmd
	for range n {
		c := exec.Command(os.Args[0], os.Args[1:]...)
		c.Env = append(os.Environ(), "FLOOR_WORKER=1")
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fail("start worker: %v", err)
		}
		kids = append(kids, c)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	for _, c := range kids {
		c.Process.Kill()
	}
	for _, c := range kids {
		c.Wait()
	}
}

type conn struct {
	fd      int
	open    bool   // the opening handshake has been answered
	pending []byte // a partial request or frame
}

func serve(ap netip.AddrPort) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail("socket: %v", err)
	}
	unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		fail("SO_REUSEPORT: %v", err)
	}
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		fail("bind: %v", err)
	}
	if err := unix.Listen(ln, 4096); err != nil {
		fail("listen: %v", err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		fail("epoll: %v", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ln)}); err != nil {
		fail("epoll_ctl: %v", err)
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	conns := make([]*conn, lim.Cur+1)
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 64<<10)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fail("epoll_wait: %v", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == ln {
				for {
					nfd, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					conns[nfd] = &conn{fd: nfd}
					unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, nfd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(nfd)})
				}
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			if !c.read(buf, &out) {
				unix.Close(fd)
				conns[fd] = nil
			}
		}
	}
}

// read takes one read of c and answers it; false closes c.
func (c *conn) read(buf []byte, out *[]byte) bool {
	n, err := unix.Read(c.fd, buf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return true
	}
	if err != nil || n == 0 {
		return false
	}
	data := buf[:n]
	if len(c.pending) > 0 {
		data = append(c.pending, data...)
		c.pending = nil
	}
	o := (*out)[:0]
	if !c.open {
		i := bytes.Index(data, []byte("\r\n\r\n"))
		if i < 0 {
			c.pending = append([]byte(nil), data...)
			return true
		}
		key := header(data[:i], "Sec-WebSocket-Key")
		if key == "" {
			return false
		}
		o = append(o, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
		o = append(o, wire.AcceptKey(key)...)
		o = append(o, "\r\n\r\n"...)
		c.open = true
		data = data[i+4:]
	}
	for len(data) > 0 {
		op, p, m, err := wire.ParseFrame(data)
		if err != nil || op == 8 {
			return false
		}
		if m == 0 {
			c.pending = append([]byte(nil), data...)
			break
		}
		o = wire.AppendFrame(o, op, p, false)
		data = data[m:]
	}
	*out = o
	for len(o) > 0 {
		w, err := unix.Write(c.fd, o)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false // a full send buffer too: the echo client never lets it fill
		}
		o = o[w:]
	}
	return true
}

func header(head []byte, name string) string {
	for _, l := range bytes.Split(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "floor: "+format+"\n", args...)
	os.Exit(1)
}
