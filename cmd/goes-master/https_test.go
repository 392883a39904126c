//go:build unix

package main_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHTTPSAndWSS: a config's https:// and wss:// listeners (cert_file,
// key_file) serve HTTPS and a WebSocket over TLS through goes-master, to
// Go's HTTP client and coder/websocket.
func TestHTTPSAndWSS(t *testing.T) {
	s := tlsConfSetup(t, `{"listeners": [
  {"name": "https", "listen": "https://127.0.0.1:0", "count": 2, "handler": "hello", "cert_file": %[1]q, "key_file": %[2]q},
  {"name": "wss", "listen": "wss://127.0.0.1:0", "count": 2, "cert_file": %[1]q, "key_file": %[2]q}
]}`)
	st := s.start()
	addrs := listenAddrs(t, st)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addrs["https"] + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.TLS == nil || len(got) == 0 {
		t.Fatalf("https: %d %q tls=%v, %v", resp.StatusCode, got, resp.TLS != nil, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+addrs["wss"]+"/", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("over wss")); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || !strings.Contains(string(msg), "over wss") {
		t.Fatalf("wss echo: %v %q, %v", typ, msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	s.stopAndCheck(st)
}
