// Command floor is the reference row of the fan-out benchmark: the least a
// server can do on epoll-style I/O. A goroutine per connection reads the
// opening handshake (answered by hand) and the first message; a joined
// receiver's goroutine then ends, its descriptor kept in a list. On a
// publish the publisher's goroutine encodes the frame once and makes one
// write(2) per member on the raw non-blocking descriptor, waiting in
// poll(2) for the rare one whose socket buffer is full.
//
// With BENCH_MODE set it is the floor-uring row instead (uring.go): the
// same but the publish, through io_uring, BENCH_MODE choosing the ring's
// set-up (uring.ParseMode: plain, coop, single, defer, sqpoll[N], fixed,
// qN joined by "+").
package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
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
	sealers []*sealer  // over TLS (tls.go), each member's; else nil
	sealed  []byte     // publisher's scratch, over TLS
	keep    []net.Conn // their conns, so that nothing closes them
	frame   []byte     // publisher's scratch
	blocked int64      // EAGAIN fallbacks (under mu)

	// The floor-uring row (uring.go): nil for the floor.
	ring   *ringer
	mode   string
	shorts int64 // sends the ring did not finish (under mu)
	short  []uring.Short
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
	s := &server{mode: os.Getenv("BENCH_MODE")}
	var conf *tls.Config
	if cert := os.Getenv("BENCH_CERT"); cert != "" {
		if s.mode != "" {
			fmt.Fprintln(os.Stderr, "floor: TLS with io_uring is not built")
			os.Exit(1)
		}
		if conf, err = tlsConf(cert, os.Getenv("BENCH_KEY")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if s.mode != "" {
		o, err := uring.ParseMode(s.mode)
		if err == nil {
			s.ring, err = startRing(o)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err) // no silent fall-back: this row measures io_uring
			os.Exit(1)
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if conf != nil {
				go s.tlsServe(c, conf)
				continue
			}
			go s.serve(c)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ln.Close()
	s.mu.Lock()
	if s.ring != nil {
		fmt.Fprintf(os.Stderr, "floor-uring %s: %d members, %d sends in %d io_uring_enter calls, %d short sends finished by write(2), %d writes waited in poll(2)\n",
			s.mode, len(s.members), s.ring.r.Sends, s.ring.r.Enters, s.shorts, s.blocked)
	} else {
		fmt.Fprintf(os.Stderr, "floor: %d members, %d writes waited in poll(2)\n", len(s.members), s.blocked)
	}
	s.mu.Unlock()
}

func (s *server) serve(c net.Conn) { s.serveOn(c, c, nil) }

// serveOn serves c, whose socket is raw's; keyed (over TLS) gives a
// joined member's sealer once the join's reply is written.
func (s *server) serveOn(c, raw net.Conn, keyed func() (*sealer, error)) {
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
				fd, err := rawFD(raw)
				if err != nil {
					c.Close()
					return
				}
				var out *sealer
				if keyed != nil {
					if out, err = keyed(); err != nil {
						fmt.Fprintln(os.Stderr, err)
						c.Close()
						return
					}
				}
				s.mu.Lock()
				s.members = append(s.members, fd)
				s.sealers = append(s.sealers, out)
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

// publish writes the message to every member: one frame, one write each.
func (s *server) publish(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frame = wire.AppendFrame(s.frame[:0], wire.OpText, msg, false)
	if s.ring != nil {
		s.publishRing()
		return
	}
	for i, fd := range s.members {
		if out := s.sealers[i]; out != nil {
			s.sealed = out.seal(s.sealed[:0], s.frame)
			s.write(fd, s.sealed)
			continue
		}
		s.write(fd, s.frame)
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
