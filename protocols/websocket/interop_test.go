//go:build unix

package websocket_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/browsertest"
	"github.com/goes-project/goes/protocols"
	ws "github.com/goes-project/goes/protocols/websocket"
)

const interopLimit = 2 << 20

// TestInteropGoClient drives the goes server with coder/websocket's client,
// with and without compression and with both context takeover settings.
func TestInteropGoClient(t *testing.T) {
	modes := []struct {
		name   string
		server ws.Compression
		client websocket.CompressionMode
	}{
		{name: "plain", client: websocket.CompressionDisabled},
		{name: "deflate", server: ws.Compression{Enabled: true}, client: websocket.CompressionContextTakeover},
		{name: "deflate-takeover", server: ws.Compression{Enabled: true, ContextTakeover: true, Threshold: -1}, client: websocket.CompressionContextTakeover},
		{name: "deflate-no-takeover", server: ws.Compression{Enabled: true, PeerNoContextTakeover: true}, client: websocket.CompressionNoContextTakeover},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var mu sync.Mutex
			var closeCode int
			var closeReason string
			closed := make(chan struct{})
			p := &ws.Protocol{
				MaxMessageSize: interopLimit,
				Compression:    m.server,
				Subprotocols:   []string{"echo"},
				OnClose: func(c protocols.Conn, code int, reason string) {
					mu.Lock()
					closeCode, closeReason = code, reason
					mu.Unlock()
				},
			}
			h := echoHandler()
			h.OnClose = func(c connections.Connection) { close(closed) }
			addr := serveGoes(t, p, h)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{
				CompressionMode: m.client, CompressionThreshold: 1, Subprotocols: []string{"other", "echo"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(interopLimit)
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			if (m.server.Enabled) != strings.Contains(ext, "permessage-deflate") {
				t.Fatalf("extensions %q for %s", ext, m.name)
			}
			if c.Subprotocol() != "echo" {
				t.Fatalf("subprotocol %q", c.Subprotocol())
			}
			random := make([]byte, 300<<10)
			rand.Read(random)
			msgs := []struct {
				typ  websocket.MessageType
				data []byte
			}{
				{websocket.MessageText, []byte("hello")},
				{websocket.MessageBinary, []byte{0, 1, 2, 0xff}},
				{websocket.MessageText, []byte(strings.Repeat("compressible text ", 60000))},
				{websocket.MessageBinary, random},
				{websocket.MessageText, []byte("")},
				{websocket.MessageText, []byte(strings.Repeat("again and again ", 100))},
				{websocket.MessageText, []byte(strings.Repeat("again and again ", 100))},
			}
			for i, msg := range msgs {
				if err := c.Write(ctx, msg.typ, msg.data); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				if typ != msg.typ || !bytes.Equal(got, msg.data) {
					t.Fatalf("message %d: got type %v, %d bytes; want %v, %d bytes", i, typ, len(got), msg.typ, len(msg.data))
				}
			}
			// A fragmented message: every Write is one frame.
			w, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range []string{"frag", "ment", "ed ✓"} {
				if _, err := w.Write([]byte(part)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, got, err := c.Read(ctx); err != nil || string(got) != "fragmented ✓" {
				t.Fatalf("fragmented echo %q, %v", got, err)
			}
			if err := c.Close(4001, "client done"); err != nil {
				t.Fatalf("close: %v", err)
			}
			<-closed
			mu.Lock()
			defer mu.Unlock()
			if closeCode != 4001 || closeReason != "client done" {
				t.Fatalf("server saw close %d %q", closeCode, closeReason)
			}
		})
	}
}

// interopServer serves the echo server used by the Node and browser tests:
// compression on, a 2 MiB message limit.
func interopServer(t *testing.T) string {
	p := &ws.Protocol{MaxMessageSize: interopLimit, Compression: ws.Compression{Enabled: true}}
	return serveGoes(t, p, echoHandler())
}

// TestInteropNode runs the Node "ws" client (testdata/node_client.js)
// against the goes server: text, binary, fragmented, UTF-8 and large
// messages with permessage-deflate, and the close codes for a clean close,
// invalid UTF-8 and an oversized message.
//
// It needs node and testdata/node_modules: cd protocols/websocket/testdata && npm ci
func TestInteropNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (install Node.js, e.g. apt-get install -y nodejs npm): %v", err)
	}
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "ws", "package.json")); err != nil {
		t.Fatalf("the ws package is missing: run `cd protocols/websocket/testdata && npm ci` (%v)", err)
	}
	addr := interopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "node_client.js", "ws://"+addr+"/", "2097152")
	cmd.Dir = "testdata"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr.String())
	}
	var r struct {
		Extensions string
		Text       struct {
			Data     string
			IsBinary bool
		}
		Binary struct {
			Hex      string
			IsBinary bool
		}
		Fragmented  string
		UTF8        bool
		Large       bool
		Close       struct{ Code int }
		InvalidUtf8 struct{ Code int }
		TooBig      struct{ Code int }
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	t.Logf("node saw: %s", out)
	checks := []struct {
		name string
		ok   bool
	}{
		{"permessage-deflate negotiated", strings.Contains(r.Extensions, "permessage-deflate")},
		{"text echo", r.Text.Data == "hello" && !r.Text.IsBinary},
		{"binary echo", r.Binary.Hex == "000102fdfeff" && r.Binary.IsBinary},
		{"fragmented echo", r.Fragmented == "frag-ment-ed"},
		{"utf-8 echo", r.UTF8},
		{"large compressed echo", r.Large},
		{"close code echoed", r.Close.Code == 4000},
		{"invalid utf-8 closes with 1007", r.InvalidUtf8.Code == 1007},
		{"oversized message closes with 1009", r.TooBig.Code == 1009},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: failed", c.name)
		}
	}
}

// TestInteropChromium loads testdata/browser.html in headless Chromium; the
// page exchanges text, binary and a large message with the goes server
// (permessage-deflate negotiated) and posts what it saw to the test.
func TestInteropChromium(t *testing.T) {
	wsAddr := interopServer(t)
	page, err := os.ReadFile(filepath.Join("testdata", "browser.html"))
	if err != nil {
		t.Fatal(err)
	}
	addr, served, results := browsertest.ServePage(t, page)

	url := "http://" + addr + "/?ws=ws://" + wsAddr + "/"
	raw := browsertest.Run(t, url, served, results, 90*time.Second)
	t.Logf("chromium saw: %s", raw)
	var r struct {
		Error       string
		Extensions  string
		Text        string
		Binary      string
		Large       bool
		LargeLength int
		Close       struct {
			Code     int
			WasClean bool
		}
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	if r.Error != "" {
		t.Fatalf("page error: %s", r.Error)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"permessage-deflate negotiated", strings.Contains(r.Extensions, "permessage-deflate")},
		{"text echo", r.Text == "hello from chromium ✓"},
		{"binary echo", r.Binary == "0,1,2,253,254,255"},
		{"large compressed echo", r.Large},
		{"clean close with the page's code", r.Close.Code == 4001 && r.Close.WasClean},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: failed", c.name)
		}
	}
}
