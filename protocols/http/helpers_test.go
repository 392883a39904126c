package http

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/goes-project/goes/protocols"
)

// testConn is the protocols.Conn of the in-process tests (the runtime's
// own connections are used by the socket tests in server_test.go): it keeps
// what the protocol writes so that tests can read it.
type testConn struct {
	p          *Protocol
	state      any
	max        int
	draining   bool
	raw        []byte // WriteRaw
	out        []byte // SendBytes
	closeAfter bool
	closed     bool
	paused     bool // PauseRecv
}

func newTestConn(p *Protocol) *testConn { return &testConn{p: p, max: 10 << 20} }

func (c *testConn) State() any          { return c.state }
func (c *testConn) SetState(v any)      { c.state = v }
func (c *testConn) MaxPackageSize() int { return c.max }
func (c *testConn) WriteRaw(b []byte) error {
	c.raw = append(c.raw, b...)
	return nil
}
func (c *testConn) CloseAfterFlush() { c.closeAfter = true }
func (c *testConn) Draining() bool   { return c.draining }
func (c *testConn) Close() error     { c.closed = true; return nil }
func (c *testConn) PauseRecv()       { c.paused = true }
func (c *testConn) ResumeRecv()      { c.paused = false }

func (c *testConn) SendBytes(b []byte, raw bool) error {
	if raw {
		c.out = append(c.out, b...)
		return nil
	}
	var err error
	c.out, err = c.p.Encode(c, c.out, b)
	return err
}

// runtime feeds reads to a protocol the way the connections runtime does:
// after each read it calls Input until it needs more, Decode for each
// packet, then onMessage; consumed bytes are moved out of the buffer.
type runtime struct {
	p         *Protocol
	c         *testConn
	buf       []byte
	onMessage func(req *Request, body []byte)
	release   bool // call ReleaseState once a read is all delivered
}

// read delivers one read; it returns the first error of Input or Decode.
func (rt *runtime) read(tb testing.TB, data []byte) error {
	tb.Helper()
	rt.buf = append(rt.buf, data...)
	off := 0
	defer func() { rt.buf = rt.buf[:copy(rt.buf, rt.buf[off:])] }()
	for off < len(rt.buf) {
		n, err := rt.p.Input(rt.c, rt.buf[off:])
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n < 0 || n > len(rt.buf)-off {
			tb.Fatalf("Input returned %d with %d buffered", n, len(rt.buf)-off)
		}
		msg, err := rt.p.Decode(rt.c, rt.buf[off:off+n])
		off += n
		if errors.Is(err, protocols.ErrSkip) {
			continue
		}
		if err != nil {
			return err
		}
		if rt.onMessage != nil {
			rt.onMessage(RequestOf(rt.c), msg)
		}
	}
	if rt.release && rt.c.state != nil {
		rt.p.ReleaseState(rt.c)
	}
	return nil
}

// statusOf returns the HTTP status of an Input/Decode error (0 for nil),
// checking that it is a ReplyError whose reply says Connection: close.
func statusOf(tb testing.TB, err error) int {
	tb.Helper()
	if err == nil {
		return 0
	}
	var re *protocols.ReplyError
	if !errors.As(err, &re) {
		tb.Fatalf("error %v is not a *protocols.ReplyError", err)
	}
	var he *Error
	if !errors.As(err, &he) {
		tb.Fatalf("error %v does not wrap an *http.Error", err)
	}
	reply := string(re.Reply)
	want := fmt.Sprintf("HTTP/1.1 %d ", he.Status)
	if !strings.HasPrefix(reply, want) || !strings.Contains(reply, "\r\nConnection: close\r\n") {
		tb.Fatalf("reply %q does not start with %q or lacks Connection: close", reply, want)
	}
	return he.Status
}

// summary describes a delivered request for comparisons.
func summary(r *Request, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s host=%q path=%q q=%q ka=%v cl=%d body=%q", r.Method(), r.Target(), r.Proto(),
		r.Host(), r.PathBytes(), r.RawQuery(), r.KeepAlive(), r.ContentLength(), body)
	for k, v := range r.Headers() {
		fmt.Fprintf(&b, " h[%s]=%q", k, v)
	}
	for k, v := range r.Trailers() {
		fmt.Fprintf(&b, " t[%s]=%q", k, v)
	}
	return b.String()
}
