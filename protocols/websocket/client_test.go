package websocket_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/protocols"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// sockConn runs the codec over a dialled socket the way the connection
// runtime does (buffer, Input, Decode; Encode under a send lock), until
// outgoing connections exist in package connections.
type sockConn struct {
	nc    net.Conn
	p     *ws.Protocol
	state any
	mu    sync.Mutex // send lock
	out   []byte
	after bool
}

func (c *sockConn) State() any          { return c.state }
func (c *sockConn) SetState(v any)      { c.state = v }
func (c *sockConn) MaxPackageSize() int { return 4 << 20 }
func (c *sockConn) Draining() bool      { return false }
func (c *sockConn) CloseAfterFlush()    { c.after = true }
func (c *sockConn) WriteRaw(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *sockConn) send(msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, err := c.p.Encode(c, c.out[:0], msg)
	if err != nil {
		return err
	}
	c.out = out
	_, err = c.nc.Write(out)
	return err
}

// readLoop delivers messages to onMessage until the socket ends or the
// codec fails; it returns the codec's error, if any.
func (c *sockConn) readLoop(onMessage func([]byte)) error {
	var buf []byte
	tmp := make([]byte, 64<<10)
	for {
		n, err := c.nc.Read(tmp)
		buf = append(buf, tmp[:n]...)
		off := 0
		for off < len(buf) && !c.after {
			k, perr := c.p.Input(c, buf[off:])
			if perr != nil {
				return perr
			}
			if k == 0 {
				break
			}
			msg, derr := c.p.Decode(c, buf[off:off+k])
			off += k
			if errors.Is(derr, protocols.ErrSkip) {
				continue
			}
			if derr != nil {
				return derr
			}
			onMessage(msg)
		}
		buf = buf[:copy(buf, buf[off:])]
		if c.after {
			return nil
		}
		if err != nil {
			return nil
		}
	}
}

// TestClientMode runs the client side of the codec against the
// coder/websocket reference server, with and without compression.
func TestClientMode(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[compress], func(t *testing.T) {
			addr := serveReference(t, compress)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			opened := make(chan struct{})
			var closeCode int
			p := ws.NewClient()
			p.Compression = ws.Compression{Enabled: compress, Threshold: -1}
			var openedFirst atomic.Bool // the runtime's opened runs before OnOpen
			p.OnOpen = func(protocols.Conn) {
				if !openedFirst.Load() {
					t.Error("OnOpen before the runtime's opened")
				}
				close(opened)
			}
			p.OnClose = func(_ protocols.Conn, code int, _ string) { closeCode = code }
			c := &sockConn{nc: nc, p: p}
			if err := c.send([]byte("early")); !errors.Is(err, ws.ErrNotOpen) {
				t.Fatalf("send before StartClient: %v, want ErrNotOpen", err)
			}
			wc := &ws.Client{Protocol: p, Request: ws.ClientRequest{Host: addr, Path: "/echo"}}
			if err := wc.StartClient(c, func() { openedFirst.Store(true) }); err != nil {
				t.Fatal(err)
			}
			msgs := [][]byte{[]byte("hello"), []byte(strings.Repeat("repeat me ", 5000)), []byte(strings.Repeat("repeat me ", 5000)), {}, []byte("κόσμε")}
			got := make(chan []byte, len(msgs))
			done := make(chan error, 1)
			go func() {
				done <- c.readLoop(func(m []byte) { got <- bytes.Clone(m) })
			}()
			<-opened
			if ws.Compressed(c) != compress {
				t.Fatalf("compression negotiated = %v", ws.Compressed(c))
			}
			for i, m := range msgs {
				if err := c.send(m); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if g := <-got; !bytes.Equal(g, m) {
					t.Fatalf("echo %d: %d bytes, want %d", i, len(g), len(m))
				}
			}
			ws.SetBinary(c, true)
			if err := c.send([]byte{0, 0xff}); err != nil {
				t.Fatal(err)
			}
			if g := <-got; !bytes.Equal(g, []byte{0, 0xff}) || ws.MessageType(c) != ws.OpBinary {
				t.Fatalf("binary echo %x type %d", g, ws.MessageType(c))
			}
			if err := ws.Close(c, ws.CloseNormal, "bye"); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("read loop: %v", err)
			}
			if closeCode != ws.CloseNormal {
				t.Fatalf("server answered close with %d", closeCode)
			}
		})
	}
}

// TestClientBadAnswer: a 101 with a wrong accept key fails the handshake.
func TestClientBadAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		buf := make([]byte, 4096)
		sc.Read(buf)
		sc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"))
		sc.Read(buf)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	p := ws.NewClient()
	c := &sockConn{nc: nc, p: p}
	wc := &ws.Client{Protocol: p, Request: ws.ClientRequest{Host: "x"}}
	if err := wc.StartClient(c, func() { t.Error("opened on a bad answer") }); err != nil {
		t.Fatal(err)
	}
	if err := c.readLoop(func([]byte) {}); !errors.Is(err, ws.ErrHandshake) {
		t.Fatalf("got %v, want ErrHandshake", err)
	}
}
