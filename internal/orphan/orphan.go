//go:build unix

// Package orphan is the hand-over between a worker whose master died (an
// orphan) and the next master of the run directory.
//
// Every worker gets, from its master, a listening Unix socket of its own
// in the run directory (SocketPath: worker-ROUTE.sock, owner-only, made by
// the master so that a worker running as another user has one too). The
// worker ignores it while its master lives. Once its control channel
// reaches EOF (the master is gone), it serves on and answers there:
//
//   - TypeHello: the first request on a connection; the answer is the
//     orphan's Info, whose Proto says which protocol it speaks. A client
//     of another Proto must not go on (the orphan refuses everything but
//     TypeHello from it).
//   - TypeSocket: the answer carries a duplicate of the worker's
//     listening socket (SCM_RIGHTS).
//   - TypeDrain (ipc.DrainRequest): drain as a reload drains an old
//     generation, then exit.
//   - ipc.TypeStats: the worker's figures (ipc.WorkerStats).
//
// The socket is SOCK_SEQPACKET: one request or answer is one packet (an
// ipc.Message as JSON), and the descriptor of TypeSocket travels with its
// answer's packet. Both ends check the peer's credentials (SO_PEERCRED):
// root or the same user. On the master's end these are the credentials of
// the process that made the listening socket, the dead master (not the
// worker, which may run as another user): the socket is the master's own.
package orphan

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/ipc"
)

// maxPacket bounds one packet (a WorkerStats is about 2 KB).
const maxPacket = 64 << 10

// SocketPath is the path of the worker socket of the worker with route
// route in run directory dir.
func SocketPath(dir string, route uint32) string {
	return filepath.Join(dir, "worker-"+strconv.FormatUint(uint64(route), 10)+".sock")
}

// Glob lists the worker sockets in run directory dir.
func Glob(dir string) []string {
	list, _ := filepath.Glob(filepath.Join(dir, "worker-*.sock"))
	return list
}

// Listen makes the worker socket at path (owner-only): the master makes
// it for a worker before it starts it, and passes it on.
func Listen(path string) (*net.UnixListener, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, err
	}
	return ln, nil
}

// Serve answers the new masters that connect to ln until ln is closed.
// log, when set, is told of refused peers and failed requests.
func Serve(ln *net.UnixListener, h Handler, log func(msg string, err error)) {
	if log == nil {
		log = func(string, error) {}
	}
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: try again in a moment.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go serveConn(c, h, log)
	}
}

func serveConn(c *net.UnixConn, h Handler, log func(string, error)) {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		log("orphan: client refused", err)
		return
	}
	buf := make([]byte, maxPacket)
	hello := false
	for {
		n, _, _, _, err := c.ReadMsgUnix(buf, nil)
		if err != nil || n == 0 {
			return
		}
		var m ipc.Message
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			send(c, ipc.Message{Type: ipc.TypeError, Error: "orphan: bad request: " + err.Error()}, -1)
			return
		}
		var (
			body    any
			rerr    error
			fd      = -1
			written func()
		)
		switch {
		case m.Type == TypeHello:
			var req HelloRequest
			if rerr = json.Unmarshal(m.Body, &req); rerr == nil {
				body = h.Info()
				hello = req.Proto == Proto
			}
		case !hello:
			rerr = fmt.Errorf("orphan: %q before a hello of protocol %d", m.Type, Proto)
		case m.Type == TypeSocket:
			var f *os.File
			if f, rerr = h.Socket(); rerr == nil {
				defer f.Close()
				fd = int(f.Fd())
				body = h.Info()
			}
		case m.Type == TypeDrain:
			var req ipc.DrainRequest
			if rerr = json.Unmarshal(m.Body, &req); rerr == nil {
				rerr = h.Drain(req)
			}
		case m.Type == ipc.TypeStats:
			body, rerr = h.Stats()
		case m.Type == TypeFinal:
			body, written, rerr = h.Final()
		default:
			rerr = fmt.Errorf("orphan: unknown request %q", m.Type)
		}
		ans := ipc.Message{Type: ipc.TypeOK, ID: m.ID}
		if rerr == nil && body != nil {
			ans, rerr = ipc.New(ipc.TypeOK, m.ID, body)
		}
		if rerr != nil {
			ans = ipc.Message{Type: ipc.TypeError, ID: m.ID, Error: rerr.Error()}
			fd = -1
		}
		err = send(c, ans, fd)
		if written != nil {
			written()
		}
		if err != nil {
			log("orphan: answer failed", err)
			return
		}
	}
}

func send(c *net.UnixConn, m ipc.Message, fd int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// Client is a master's conversation with one orphan. Safe for
// concurrent use (one request at a time).
type Client struct {
	Path string
	Info Info

	mu  sync.Mutex
	c   *net.UnixConn
	seq uint64
}

// ErrStale: nothing listens on the socket any more (the worker is gone).
var ErrStale = errors.New("orphan: stale worker socket")

// ErrProto: the orphan speaks another protocol version; Client.Info has
// its Proto and PID.
var ErrProto = errors.New("orphan: another protocol version")

// Dial connects to the worker socket at path and says hello. With
// ErrProto the client is returned too (for its Info), closed.
func Dial(path string, timeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.Dial("unixpacket", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrStale, path)
		}
		return nil, err
	}
	c := &Client{Path: path, c: nc.(*net.UnixConn)}
	if err := checkPeer(c.c); err != nil {
		c.c.Close()
		return nil, err
	}
	ans, _, err := c.request(TypeHello, HelloRequest{Proto: Proto}, timeout)
	if err == nil {
		err = ans.Decode(&c.Info)
	}
	if err != nil {
		c.c.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("orphan: %s: no answer to hello: %w", path, err)
		}
		return nil, fmt.Errorf("orphan: %s: hello: %w", path, err)
	}
	if c.Info.Proto != Proto {
		c.c.Close()
		return c, fmt.Errorf("%w: %s speaks %d, this master %d", ErrProto, path, c.Info.Proto, Proto)
	}
	return c, nil
}

// TakeSocket asks for the orphan's listening socket.
func (c *Client) TakeSocket(timeout time.Duration) (*os.File, error) {
	_, f, err := c.request(TypeSocket, nil, timeout)
	if err == nil && f == nil {
		err = errors.New("orphan: no socket in the answer")
	}
	return f, err
}

// Drain tells the orphan to drain and exit.
func (c *Client) Drain(req ipc.DrainRequest, timeout time.Duration) error {
	_, _, err := c.request(TypeDrain, req, timeout)
	return err
}

// Stats asks for the orphan's figures.
func (c *Client) Stats(timeout time.Duration) (ipc.WorkerStats, error) {
	var st ipc.WorkerStats
	ans, _, err := c.request(ipc.TypeStats, nil, timeout)
	if err == nil {
		err = ans.Decode(&st)
	}
	return st, err
}

// Final waits (up to timeout) for the orphan to drain and returns its
// last figures (TypeFinal). Call it on a conversation of its own: it
// holds this one until the answer.
func (c *Client) Final(timeout time.Duration) (ipc.WorkerStats, error) {
	var st ipc.WorkerStats
	ans, _, err := c.request(TypeFinal, nil, timeout)
	if err == nil {
		err = ans.Decode(&st)
	}
	return st, err
}

// Close ends the conversation (the orphan serves on).
func (c *Client) Close() error { return c.c.Close() }

func (c *Client) request(typ string, body any, timeout time.Duration) (ipc.Message, *os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	m, err := ipc.New(typ, c.seq, body)
	if err != nil {
		return ipc.Message{}, nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return ipc.Message{}, nil, err
	}
	c.c.SetDeadline(time.Now().Add(timeout))
	defer c.c.SetDeadline(time.Time{})
	if _, err := c.c.Write(b); err != nil {
		return ipc.Message{}, nil, err
	}
	buf := make([]byte, maxPacket)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := c.c.ReadMsgUnix(buf, oob)
		if err != nil {
			return ipc.Message{}, nil, err
		}
		if n == 0 {
			return ipc.Message{}, nil, fmt.Errorf("orphan: %s: %w", typ, net.ErrClosed)
		}
		f := rights(oob[:oobn])
		var ans ipc.Message
		if err := json.Unmarshal(buf[:n], &ans); err != nil {
			if f != nil {
				f.Close()
			}
			return ipc.Message{}, nil, fmt.Errorf("orphan: %s: bad answer: %w", typ, err)
		}
		if ans.ID != m.ID {
			if f != nil {
				f.Close()
			}
			continue // the answer to an earlier request that timed out
		}
		if ans.Type == ipc.TypeError {
			if f != nil {
				f.Close()
			}
			return ans, nil, errors.New(ans.Error)
		}
		return ans, f, nil
	}
}

// rights returns the first descriptor passed in oob (the others closed).
func rights(oob []byte) *os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var f *os.File
	for _, msg := range msgs {
		fds, err := unix.ParseUnixRights(&msg)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if f == nil {
				unix.CloseOnExec(fd)
				f = os.NewFile(uintptr(fd), "adopted")
				continue
			}
			unix.Close(fd)
		}
	}
	return f
}
