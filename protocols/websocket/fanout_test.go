package websocket_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// TestFanoutEncodesPerClass publishes with a connections.Fanout to
// WebSocket members of every encoding class at once — text and binary
// (SetBinary), compressed without context (permessage-deflate, the
// default) and not negotiated, and, on a server that keeps compression
// contexts, each its own — short messages (sent uncompressed) and long
// ones: every member, read by coder/websocket, gets every message once, in
// order, whole and of its type.
func TestFanoutEncodesPerClass(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("context-takeover=%v", takeover), func(t *testing.T) {
			testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) { testFanoutClasses(t, e, takeover) })
		})
	}
}

func testFanoutClasses(t *testing.T, e testkit.Engine, takeover bool) {
	const perKind, msgs = 8, 20
	var (
		mu     sync.Mutex
		joined []connections.Connection
	)
	p := &ws.Protocol{MaxMessageSize: testLimit, Compression: ws.Compression{Enabled: true, ContextTakeover: takeover}}
	srv := connections.NewServer(connections.Config{
		Engine: e.Name, CallbackGoroutines: e.Pool,
		Protocol:       p,
		MaxPackageSize: 2 * testLimit,
		Logger:         testkit.Logger(t),
		Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
			ws.SetBinary(c, string(data) == "join binary")
			mu.Lock()
			joined = append(joined, c)
			mu.Unlock()
			// A long answer of its own to each: with context takeover
			// their compression histories differ from here on.
			c.Send(fmt.Sprintf("ok %d %s", c.ID(), strings.Repeat("own ", 40)), false)
		}},
	})
	addr := serveOn(t, srv)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type member struct {
		c      *websocket.Conn
		binary bool
	}
	var members []member
	for _, compress := range []websocket.CompressionMode{websocket.CompressionNoContextTakeover, websocket.CompressionContextTakeover, websocket.CompressionDisabled} {
		for _, binary := range []bool{false, true} {
			for i := 0; i < perKind; i++ {
				c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{CompressionMode: compress})
				if err != nil {
					t.Fatal(err)
				}
				c.SetReadLimit(testLimit)
				t.Cleanup(func() { c.CloseNow() })
				join := "join text"
				if binary {
					join = "join binary"
				}
				if err := c.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
					t.Fatal(err)
				}
				if _, b, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(b), "ok ") {
					t.Fatalf("join: %q, %v", b, err)
				}
				members = append(members, member{c, binary})
			}
		}
	}

	message := func(m int) string {
		if m%2 == 0 {
			return fmt.Sprintf("short %d", m)
		}
		return fmt.Sprintf("long %d %s", m, strings.Repeat("fan-out ", 60)) // past the compression threshold
	}
	var f connections.Fanout
	for m := 0; m < msgs; m++ {
		mu.Lock()
		cs := joined
		mu.Unlock()
		f.Begin([]byte(message(m)), false)
		for _, c := range cs {
			if err := f.Add(c); err != nil {
				t.Fatalf("message %d: %v", m, err)
			}
		}
		if n := f.End(); n != len(members) {
			t.Fatalf("message %d sent to %d of %d", m, n, len(members))
		}
	}

	for i, mb := range members {
		want := websocket.MessageText
		if mb.binary {
			want = websocket.MessageBinary
		}
		for m := 0; m < msgs; m++ {
			typ, b, err := mb.c.Read(ctx)
			if err != nil {
				t.Fatalf("member %d, message %d: %v", i, m, err)
			}
			if typ != want || string(b) != message(m) {
				t.Fatalf("member %d, message %d: %v %.40q, want %v %.40q", i, m, typ, b, want, message(m))
			}
		}
	}
}

// TestEncodeKeyClasses asks a real connection of each kind for its key:
// a compressor that keeps its context, or a connection not open, has
// none; the opcode, compression and a peer's window limit make classes.
func TestEncodeKeyClasses(t *testing.T) {
	long := []byte(strings.Repeat("x", 200))
	short := []byte("hi")
	type want struct {
		key uint32
		ok  bool
	}
	cases := []struct {
		name     string
		takeover bool
		mode     websocket.CompressionMode
		binary   bool
		msg      []byte
		want     want
	}{
		{"plain text", false, websocket.CompressionDisabled, false, long, want{0, true}},
		{"plain binary", false, websocket.CompressionDisabled, true, long, want{1, true}},
		{"deflate short", false, websocket.CompressionNoContextTakeover, false, short, want{0, true}},
		{"deflate long", false, websocket.CompressionNoContextTakeover, false, long, want{2, true}},
		{"deflate long binary", false, websocket.CompressionNoContextTakeover, true, long, want{3, true}},
		{"takeover short", true, websocket.CompressionContextTakeover, false, short, want{0, true}},
		{"takeover long", true, websocket.CompressionContextTakeover, false, long, want{0, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan want, 1)
			p := &ws.Protocol{Compression: ws.Compression{Enabled: true, ContextTakeover: tc.takeover}}
			addr := serveGoes(t, p, connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				ws.SetBinary(c, tc.binary)
				k, ok := p.EncodeKey(c, tc.msg)
				got <- want{k, ok}
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{CompressionMode: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if err := c.Write(ctx, websocket.MessageText, []byte("key?")); err != nil {
				t.Fatal(err)
			}
			if g := <-got; g != tc.want {
				t.Fatalf("EncodeKey = %d, %v; want %d, %v", g.key, g.ok, tc.want.key, tc.want.ok)
			}
		})
	}
}
