// Command flooruring is the floor of the fan-out benchmark (servers/floor)
// with an io_uring send path: everything is the floor's but the publish.
// On a publish the publisher's goroutine encodes the frame once and hands
// it and the member list to the ring's goroutine (locked to its thread,
// which made the ring), which queues one IORING_OP_SEND of the one frame
// per member and submits them in batches of the ring's size, one
// io_uring_enter per batch that also waits for the batch's completions
// (package bench/fanout/uring). A send that did not write the whole frame
// (EAGAIN, a short write) is finished as the floor does: write(2), and
// poll(2) while the socket buffer is full.
//
// BENCH_MODE chooses the ring's set-up (uring.ParseMode: plain, coop,
// single, defer, sqpoll[N], fixed, qN joined by "+"; empty is "defer").
package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/bench/fanout/prof"
	"github.com/goes-project/goes/bench/fanout/uring"
	"github.com/goes-project/goes/bench/fanout/wire"
)

type server struct {
	mu      sync.Mutex
	members []int      // raw descriptors of joined connections
	keep    []net.Conn // their conns, so that nothing closes them
	frame   []byte     // publisher's scratch
	blocked int64      // EAGAIN fallbacks (under mu)
	shorts  int64      // sends the ring did not finish (under mu)
	short   []uring.Short
	ring    *ringer
}

// ringer owns the ring on a goroutine locked to its thread: SINGLE_ISSUER
// rings take submissions from the thread that made them only.
type ringer struct {
	r    *uring.Ring
	reqs chan sendReq
}

type sendReq struct {
	fds   []int
	frame []byte
	short []uring.Short
	done  chan sendRes
}

type sendRes struct {
	short []uring.Short
	err   error
}

func startRing(o uring.Options) (*ringer, error) {
	g := &ringer{reqs: make(chan sendReq)}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the program
		r, err := uring.New(o)
		ready <- err
		if err != nil {
			return
		}
		g.r = r
		for q := range g.reqs {
			short, err := r.SendAll(q.fds, q.frame, q.short)
			q.done <- sendRes{short, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return g, nil
}

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	prof.Watch("floor")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	o, err := uring.ParseMode(os.Getenv("BENCH_MODE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &server{}
	if s.ring, err = startRing(o); err != nil {
		fmt.Fprintln(os.Stderr, err) // no silent fall-back: this row measures io_uring
		os.Exit(1)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ln.Close()
	s.mu.Lock()
	fmt.Fprintf(os.Stderr, "floor-uring %s: %d members, %d sends in %d io_uring_enter calls, %d short sends finished by write(2), %d writes waited in poll(2)\n",
		o.Mode, len(s.members), s.ring.r.Sends, s.ring.r.Enters, s.shorts, s.blocked)
	s.mu.Unlock()
}

func (s *server) serve(c net.Conn) {
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	// Opening handshake.
	var head []byte
	for {
		n, err := c.Read(tmp)
		if err != nil {
			c.Close()
			return
		}
		buf = append(buf, tmp[:n]...)
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head, buf = buf[:i+4], append([]byte(nil), buf[i+4:]...)
			break
		}
		if len(buf) > 8192 {
			c.Close()
			return
		}
	}
	key := header(head, "sec-websocket-key")
	if key == "" {
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		c.Close()
		return
	}
	if _, err := c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wire.AcceptKey(key) + "\r\n\r\n")); err != nil {
		c.Close()
		return
	}
	for {
		for {
			op, p, n, err := wire.ParseFrame(buf)
			if err != nil {
				c.Close()
				return
			}
			if n == 0 {
				break
			}
			switch {
			case op == wire.OpClose:
				c.Close()
				return
			case op != wire.OpText:
			case string(p) == wire.Join:
				if _, err := c.Write(wire.AppendFrame(nil, wire.OpText, []byte(wire.OK), false)); err != nil {
					c.Close()
					return
				}
				fd, err := rawFD(c)
				if err != nil {
					c.Close()
					return
				}
				s.mu.Lock()
				s.members = append(s.members, fd)
				s.keep = append(s.keep, c)
				s.mu.Unlock()
				return // a receiver sends nothing more
			case bytes.HasPrefix(p, []byte(wire.Publish)):
				s.publish(p[len(wire.Publish):])
			}
			buf = buf[n:]
		}
		n, err := c.Read(tmp)
		if err != nil {
			c.Close()
			return
		}
		buf = append(buf, tmp[:n]...)
	}
}

// publish sends the message to every member: one frame, one
// IORING_OP_SEND each; the sends the ring did not finish, as the floor.
func (s *server) publish(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frame = wire.AppendFrame(s.frame[:0], wire.OpText, msg, false)
	done := make(chan sendRes, 1)
	s.ring.reqs <- sendReq{fds: s.members, frame: s.frame, short: s.short[:0], done: done}
	res := <-done
	if res.err != nil {
		fmt.Fprintln(os.Stderr, res.err)
		os.Exit(1)
	}
	s.short = res.short
	for _, sh := range res.short {
		s.shorts++
		if sh.Err == nil || errors.Is(sh.Err, unix.EAGAIN) {
			s.write(sh.FD, s.frame[sh.Sent:])
		} // otherwise the receiver is gone
	}
}

func (s *server) write(fd int, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == nil:
			b = b[n:]
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			s.blocked++
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			unix.Poll(pfd, 1000)
		default:
			return // the receiver is gone
		}
	}
}

func rawFD(c net.Conn) (int, error) {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := sc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}

// header returns the value of a header field of an HTTP head.
func header(head []byte, name string) string {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}
