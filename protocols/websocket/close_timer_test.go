package websocket_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/textproto"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// acceptRawUpgrade reads a client's opening handshake from nc and answers
// it with 101.
func acceptRawUpgrade(t testing.TB, nc net.Conn) *bufio.Reader {
	t.Helper()
	br := bufio.NewReader(nc)
	tp := textproto.NewReader(br)
	if _, err := tp.ReadLine(); err != nil {
		t.Fatalf("read request line: %v", err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("read request head: %v", err)
	}
	sum := sha1.Sum([]byte(h.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		t.Fatalf("write 101: %v", err)
	}
	return br
}

// readFrameOp reads one client frame from br and returns its opcode byte
// (FIN included) and its unmasked payload.
func readFrameOp(t testing.TB, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	n := int(hdr[1] & 0x7f)
	if n > 125 || hdr[1]&0x80 == 0 {
		t.Fatalf("unexpected frame header % x", hdr)
	}
	var rest [4 + 125]byte
	if _, err := io.ReadFull(br, rest[:4+n]); err != nil {
		t.Fatalf("read frame body: %v", err)
	}
	payload := rest[4 : 4+n]
	for i := range payload {
		payload[i] ^= rest[i%4]
	}
	return hdr[0], payload
}

// TestCloseTimerSpansOneConnection: a ws:// Client sends a close frame, the
// server drops TCP without answering and the Client reconnects at once.
// The close timer of the first connection must not close the second one
// when CloseTimeout runs out.
func TestCloseTimerSpansOneConnection(t *testing.T) {
	const closeTimeout = time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- nc
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-acceptDone
		close(accepted)
		for nc := range accepted {
			nc.Close()
		}
	})
	nextConn := func() net.Conn {
		t.Helper()
		select {
		case nc := <-accepted:
			t.Cleanup(func() { nc.Close() })
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			return nc
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for the client to connect")
		}
		return nil
	}

	opened := make(chan struct{}, 4)
	secondClosed := make(chan struct{}, 4)
	var closes atomic.Int32
	transport, wc, err := ws.NewClientFor("ws://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	wc.CloseTimeout = closeTimeout
	cl, err := connections.NewClient(transport, connections.ClientConfig{
		Config: connections.Config{
			Protocol: wc,
			Logger:   testkit.Logger(t).Level(zerolog.InfoLevel),
			Handler: connections.Handler{
				OnClose: func(c connections.Connection) {
					if closes.Add(1) == 1 {
						c.(*connections.Client).Reconnect(0)
						return
					}
					secondClosed <- struct{}{}
				},
			},
		},
		OnOpen: func(connections.Connection) { opened <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, cl)
	waitOpen := func(what string) {
		t.Helper()
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
	}

	cl.Connect()
	nc1 := nextConn()
	br1 := acceptRawUpgrade(t, nc1)
	waitOpen("the first upgrade")

	closedAt := time.Now()
	if err := ws.Close(cl, ws.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	if op, _ := readFrameOp(t, br1); op != 0x80|byte(ws.OpClose) {
		t.Fatalf("first frame %#x, want a close frame", op)
	}
	nc1.Close() // no close frame back: the client's close timer is left running

	nc2 := nextConn()
	br2 := acceptRawUpgrade(t, nc2)
	waitOpen("the second upgrade")
	if d := time.Since(closedAt); d >= closeTimeout {
		t.Fatalf("reconnecting took %v, not under CloseTimeout %v: the test proves nothing", d, closeTimeout)
	}

	// Wait out the first connection's close timer, with a margin.
	wait := time.NewTimer(time.Until(closedAt.Add(closeTimeout + 500*time.Millisecond)))
	defer wait.Stop()
	select {
	case <-secondClosed:
		t.Fatalf("second connection closed %v after Close on the first (CloseTimeout %v)", time.Since(closedAt), closeTimeout)
	case <-wait.C:
	}

	// The second connection still carries messages both ways.
	if err := cl.Send("still open", false); err != nil {
		t.Fatalf("send on the second connection after the first one's CloseTimeout: %v", err)
	}
	if op, payload := readFrameOp(t, br2); op != 0x80|byte(ws.OpText) || string(payload) != "still open" {
		t.Fatalf("second connection got frame %#x %q, want text \"still open\"", op, payload)
	}
}
