//go:build linux

// Package flood opens many connections to one server from one process:
// the client processes of the accept-balance test (cmd/goes-master) and
// benchmark (bench/balance). Each connection is answered by the server
// before it counts (a text line echoed, or a WebSocket opening handshake
// accepted), so a connection counted by Open has been accepted by some
// worker, not merely queued by the kernel.
package flood

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options describe one process's flood.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// Src is the source address (127.0.0.x: each process its own, so
	// that each has its own range of ephemeral ports).
	Src string
	// N is the number of connections; Parallel how many are opened at
	// once (default 64).
	N, Parallel int
	// Proto is "text" (a line, echoed) or "ws" (the WebSocket opening
	// handshake, answered 101).
	Proto string
	// Timeout bounds the whole flood (default 5 minutes).
	Timeout time.Duration
}

// Dialer dials from source address src (127.0.0.x) with the port chosen
// at connect, per destination (IP_BIND_ADDRESS_NO_PORT), so that one
// source address serves as many connections as the ephemeral range holds.
func Dialer(src string) (net.Dialer, error) {
	local, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(src, "0"))
	if err != nil {
		return net.Dialer{}, fmt.Errorf("flood: source %q: %w", src, err)
	}
	return net.Dialer{
		LocalAddr: local,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			return errors.Join(err, serr)
		},
	}, nil
}

// Open opens o.N connections, each answered by the server, and returns
// them; on the first failure it closes what it opened and says why.
func Open(o Options) ([]net.Conn, error) {
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(o.Timeout)
	d, err := Dialer(o.Src)
	if err != nil {
		return nil, err
	}
	d.Deadline = deadline
	var (
		mu    sync.Mutex
		conns = make([]net.Conn, 0, o.N)
		first error
		wg    sync.WaitGroup
		next  = make(chan struct{})
	)
	for range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := open(&d, o, deadline)
				mu.Lock()
				if err != nil {
					if first == nil {
						first = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for range o.N {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if first != nil {
		for _, c := range conns {
			c.Close()
		}
		return nil, fmt.Errorf("flood: %d of %d open: %w", len(conns), o.N, first)
	}
	return conns, nil
}

// open opens one connection and waits for the server's answer.
func open(d *net.Dialer, o Options, deadline time.Time) (net.Conn, error) {
	c, err := d.Dial("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(deadline)
	r := bufio.NewReaderSize(c, 512)
	switch o.Proto {
	case "ws":
		req := "GET / HTTP/1.1\r\nHost: " + o.Addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		if _, err = io.WriteString(c, req); err != nil {
			break
		}
		var head []byte
		for !bytes.HasSuffix(head, []byte("\r\n\r\n")) && err == nil {
			var line []byte
			line, err = r.ReadSlice('\n')
			head = append(head, line...)
		}
		if err == nil && !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
			err = fmt.Errorf("handshake answered %q", head)
		}
	default:
		if _, err = io.WriteString(c, "hi\n"); err != nil {
			break
		}
		var line string
		if line, err = r.ReadString('\n'); err == nil && line != "hi\n" {
			err = fmt.Errorf("echo answered %q", line)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// Main is a client process: it parses args (-addr, -src, -n, -parallel,
// -proto, -timeout), raises its open-file limit to the hard limit, opens
// the connections, prints "ready <n>" on stdout and holds them until
// stdin ends; a failure prints "error <why>". It returns the exit code.
func Main(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	var o Options
	fs.StringVar(&o.Addr, "addr", "", "server host:port")
	fs.StringVar(&o.Src, "src", "127.0.0.2", "source address")
	fs.IntVar(&o.N, "n", 1000, "connections")
	fs.IntVar(&o.Parallel, "parallel", 64, "connections opened at once")
	fs.StringVar(&o.Proto, "proto", "text", "text or ws")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "bound of the whole flood")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stdout, "error %v\n", err)
		return 2
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	conns, err := Open(o)
	if err != nil {
		fmt.Fprintf(stdout, "error %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "ready %d\n", len(conns))
	io.Copy(io.Discard, stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}
