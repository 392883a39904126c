package connections_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/text"
)

var errRefused = errors.New("hello: refused")

// helloText is the text protocol with an opening handshake of its own, a
// protocol the runtime has never heard of (as it has never heard of
// WebSocket): the client sends "HELLO", the server answers "WELCOME" to
// accept or anything else to refuse, then lines flow.
type helloText struct {
	text.Protocol
	failStart bool // StartClient fails
}

var _ protocols.ClientHandshaker = helloText{}

// helloState is a connection's handshake in progress.
type helloState struct{ opened func() }

func (p helloText) StartClient(c protocols.Conn, opened func()) error {
	if p.failStart {
		return fmt.Errorf("hello: cannot start: %w", errRefused)
	}
	c.SetState(&helloState{opened: opened})
	return c.WriteRaw([]byte("HELLO\n"))
}

func (p helloText) Decode(c protocols.Conn, packet []byte) ([]byte, error) {
	msg, err := p.Protocol.Decode(c, packet)
	if err != nil {
		return nil, err
	}
	if st, ok := c.State().(*helloState); ok && st.opened != nil {
		if string(msg) != "WELCOME" {
			return nil, fmt.Errorf("hello: answered %q: %w", msg, errRefused)
		}
		opened := st.opened
		st.opened = nil
		opened()
		return nil, protocols.ErrSkip
	}
	return msg, nil
}

// helloServer is a text server that answers "HELLO" with answer and
// echoes every other line; lines returns what it received, in order.
func helloServer(t *testing.T, answer string) (addr string, lines func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	_, addr = serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) {
			mu.Lock()
			got = append(got, string(data))
			mu.Unlock()
			if string(data) == "HELLO" {
				c.Send(answer, false)
				return
			}
			c.SendBytes(data, false)
		},
	}})
	return addr, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// TestClientHandshake: a protocols.ClientHandshaker protocol opens every
// connection with its request; what is sent before the answer (before
// Connect, from OnConnect) is held back and goes out in order once the
// answer checks out, OnOpen runs then, and the messages flow.
func TestClientHandshake(t *testing.T) {
	addr, lines := helloServer(t, "WELCOME")
	ev := newEvents(1)
	h := ev.handler()
	onConnect, onMessage := h.OnConnect, h.OnMessage
	h.OnConnect = func(c connections.Connection) {
		onConnect(c)
		if err := c.Send("from OnConnect", false); err != nil {
			t.Errorf("Send from OnConnect: %v", err)
		}
	}
	h.OnMessage = func(c connections.Connection, data []byte) {
		onMessage(c, data)
		if len(ev.msgs) == 3 {
			c.Close()
		}
	}
	cl := newClient(t, "tcp://"+addr, connections.ClientConfig{
		Config: connections.Config{Protocol: helloText{}, Handler: h},
		OnOpen: func(c connections.Connection) {
			ev.log = append(ev.log, "open")
			c.Send("from OnOpen", false)
		},
	})
	cl.Send("queued", false)
	cl.Connect()
	ev.wait(t)
	if got := strings.Join(ev.log, ","); got != "connect,open,message,message,message,close" {
		t.Fatalf("events %s", got)
	}
	if got := strings.Join(ev.msgs, ","); got != "queued,from OnConnect,from OnOpen" {
		t.Fatalf("client got %q", got)
	}
	if got := strings.Join(lines(), ","); got != "HELLO,queued,from OnConnect,from OnOpen" {
		t.Fatalf("server got %q", got)
	}
}

// TestClientHandshakeRefused: a refused handshake is the protocol's error
// in OnError, then OnClose; OnOpen never runs and nothing held back is
// sent.
func TestClientHandshakeRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		proto  helloText
		events string
		server []string // what the server receives
	}{
		{name: "answer refused", events: "connect,error,close", server: []string{"HELLO"}},
		{name: "StartClient fails", proto: helloText{failStart: true}, events: "error,close"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, lines := helloServer(t, "GO AWAY")
			ev := newEvents(1)
			cl := newClient(t, "tcp://"+addr, connections.ClientConfig{
				Config: connections.Config{Protocol: tc.proto, Handler: ev.handler()},
				OnOpen: func(connections.Connection) { ev.log = append(ev.log, "open") },
			})
			cl.Send("held back", false)
			cl.Connect()
			ev.wait(t)
			if got := strings.Join(ev.log, ","); got != tc.events {
				t.Fatalf("events %s", got)
			}
			if len(ev.errs) != 1 || !errors.Is(ev.errs[0], errRefused) {
				t.Fatalf("errors %v, want errRefused", ev.errs)
			}
			if got := lines(); strings.Join(got, ",") != strings.Join(tc.server, ",") {
				t.Fatalf("server got %q, want %q", got, tc.server)
			}
		})
	}
}

// TestClientOpenWithoutHandshake: without a handshake OnOpen follows
// OnConnect at once, over streams and datagrams.
func TestClientOpenWithoutHandshake(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			var addr string
			if network == "udp" {
				addr = serveUDP(t, connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
			} else {
				_, addr = serve(t, "tcp", connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: echo}})
			}
			ev := newEvents(1)
			h := ev.handler()
			onMessage := h.OnMessage
			h.OnMessage = func(c connections.Connection, data []byte) {
				onMessage(c, data)
				c.Close()
			}
			cl := newClient(t, network+"://"+addr, connections.ClientConfig{
				Config: connections.Config{Protocol: text.New(), Handler: h},
				OnOpen: func(c connections.Connection) {
					ev.log = append(ev.log, "open")
					c.Send("from OnOpen", false)
				},
			})
			cl.Connect()
			ev.wait(t)
			if got := strings.Join(ev.log, ","); got != "connect,open,message,close" || ev.msgs[0] != "from OnOpen" {
				t.Fatalf("events %s, messages %q", got, ev.msgs)
			}
		})
	}
}

// TestClientHandshakeNeedsStream: a protocol with a handshake over UDP is
// refused when the Client is made.
func TestClientHandshakeNeedsStream(t *testing.T) {
	for _, uri := range []string{"udp://127.0.0.1:7", "tcp://127.0.0.1:7"} {
		_, err := connections.NewClient(uri, connections.ClientConfig{Config: connections.Config{Protocol: helloText{}, Transport: "udp"}})
		if !errors.Is(err, connections.ErrBadURI) {
			t.Fatalf("%s: got %v, want ErrBadURI", uri, err)
		}
	}
}
