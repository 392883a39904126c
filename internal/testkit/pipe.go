package testkit

import (
	"net"
	"sync"
	"testing"
)

// PipeListener is a net.Listener whose connections are in-memory pipes
// (net.Pipe): for a server under test inside a testing/synctest bubble,
// where sockets do not fit (a goroutine blocked on a socket is not durably
// blocked, so the bubble's clock would stand still). A pipe is synchronous
// and unbuffered: a Write returns once the peer has read all of it. Make
// the listener inside the bubble. Safe for concurrent use.
type PipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

var _ net.Listener = (*PipeListener)(nil)

// NewPipeListener returns a listener that t.Cleanup closes.
func NewPipeListener(t testing.TB) *PipeListener {
	l := &PipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	t.Cleanup(func() { l.Close() })
	return l
}

// Accept waits for Dial and returns the server's end of its pipe, or
// net.ErrClosed once the listener is closed.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "pipe", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close makes Accept and Dial fail; connections already made stay open.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the address "pipe" of network "pipe", as a net.Pipe's ends have.
func (l *PipeListener) Addr() net.Addr { return pipeAddr{} }

// Dial connects to the listener: it waits until Accept takes the server's
// end and returns the client's, which t.Cleanup closes. It fails t if the
// listener is closed.
func (l *PipeListener) Dial(t testing.TB) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	select {
	case l.conns <- server:
	case <-l.closed:
		client.Close()
		server.Close()
		t.Fatal("testkit: dial a closed PipeListener")
	}
	t.Cleanup(func() { client.Close() })
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// PieceConn writes in pieces of at most N bytes, each its own Write of
// the Conn under it (on TCP with TCP_NODELAY, Go's default, its own
// segment), so that the peer reads what was written in parts.
type PieceConn struct {
	net.Conn
	N int
}

func (c PieceConn) Write(b []byte) (int, error) {
	w := 0
	for len(b) > 0 {
		k := min(c.N, len(b))
		m, err := c.Conn.Write(b[:k])
		w += m
		if err != nil {
			return w, err
		}
		b = b[k:]
	}
	return w, nil
}
