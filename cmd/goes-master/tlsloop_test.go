//go:build linux

package main_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/browsertest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// TestTLSOnEventLoop: a tls:// listener of goes-master runs its TLS
// connections on the worker's event loop (issue 20): 300 idle TLS
// connections do not grow the worker's goroutines (the standard engine
// had one each) and the loop reports busy time; the handshakes are
// counted and timed, and the open TLS connections shown (and less
// once half of them close).
func TestTLSOnEventLoop(t *testing.T) {
	s := tlsConfSetup(t, `{"admin": "127.0.0.1:0", "listeners": [
  {"name": "tls", "listen": "tls://127.0.0.1:0", "count": 1, "cert_file": %[1]q, "key_file": %[2]q}
]}`)
	st := s.start()
	addr := listenAddrs(t, st)["tls"]
	goroutines := func() int {
		st, err := s.status()
		if err != nil || len(st.Workers) != 1 {
			t.Fatalf("status: %v, %d workers", err, len(st.Workers))
		}
		return st.Workers[0].Goroutines
	}
	before := goroutines()
	const n = 300
	conns := make([]*tls.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "x")
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "connections counted", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if w := st.Workers[0]; w.Connections != n {
			return fmt.Errorf("%d connections, want %d", w.Connections, n)
		}
		return nil
	})
	after := goroutines()
	t.Logf("worker goroutines: %d before, %d with %d idle TLS connections", before, after, n)
	if after-before > 20 {
		t.Fatalf("%d goroutines with %d idle TLS connections, %d before: a goroutine per connection", after, n, before)
	}
	st2, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if st2.Workers[0].LoopBusySeconds == 0 {
		t.Fatal("the worker's event loop was never busy: TLS is not on the loop")
	}
	// The handshakes: counted, and timed (goes_tls_handshake_duration_seconds).
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "handshake metrics", func() error {
		m := mustFetch(t, "http://"+st.Master.Admin+"/metrics")
		if ok := listenerSum(m, "goes_tls_handshakes_total", "tls", `result="ok"`); ok != n {
			return fmt.Errorf("goes_tls_handshakes_total ok %v, want %d", ok, n)
		}
		if count, _ := sumMetric(m, "goes_tls_handshake_duration_seconds_count"); count != n {
			return fmt.Errorf("goes_tls_handshake_duration_seconds_count %v, want %d", count, n)
		}
		if inf := listenerSum(m, "goes_tls_handshake_duration_seconds_bucket", "tls", `le="+Inf"`); inf != n {
			return fmt.Errorf("goes_tls_handshake_duration_seconds_bucket{le=\"+Inf\"} %v, want %d", inf, n)
		}
		if open := listenerSum(m, "goes_tls_connections", "tls"); open != n {
			return fmt.Errorf("goes_tls_connections %v, want %d", open, n)
		}
		return nil
	})
	// The gauge goes down as they close.
	for _, c := range conns[n/2:] {
		c.Close()
	}
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "goes_tls_connections after closes", func() error {
		m := mustFetch(t, "http://"+st.Master.Admin+"/metrics")
		if open := listenerSum(m, "goes_tls_connections", "tls"); open != n-n/2 {
			return fmt.Errorf("goes_tls_connections %v, want %d", open, n-n/2)
		}
		return nil
	})
	st2.Workers = append(st2.Workers, st.Workers...)
	s.stopAndCheck(st2)
}

// TestTLSRequestAcrossReload: an https request that is half sent when a
// reload begins is answered by the old worker, which drains with its TLS
// connection on the event loop, once the rest arrives.
func TestTLSRequestAcrossReload(t *testing.T) {
	s := tlsConfSetup(t, `{"stop_timeout": "20s", "listeners": [
  {"name": "https", "listen": "https://127.0.0.1:0", "count": 1, "handler": "hello", "cert_file": %[1]q, "key_file": %[2]q}
]}`)
	st := s.start()
	addr := listenAddrs(t, st)["https"]
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("reload")
	// The old worker holds the connection, draining.
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the old worker draining", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		for _, w := range append(cur.Workers, cur.Retiring...) {
			if w.MasterPID == st.Master.PID && w.Connections == 1 {
				return nil
			}
		}
		return fmt.Errorf("no worker of the old master with our connection")
	})
	if _, err := io.WriteString(c, "Connection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("answer across the reload: %q, %v", resp, err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
		t.Fatalf("answer across the reload: %q", resp)
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}

// TestWSSChromium: headless Chromium (--ignore-certificate-errors: the
// certificate is self-signed) opens a wss connection to goes-master's
// echo listener, served on the event loop, and echoes text, binary and a
// 1.1 MiB message (many records of 16 KiB), then closes cleanly. The page
// is protocols/websocket's interop page.
func TestWSSChromium(t *testing.T) {
	s := tlsConfSetup(t, `{"listeners": [
  {"name": "wss", "listen": "wss://127.0.0.1:0", "count": 1, "cert_file": %[1]q, "key_file": %[2]q}
]}`)
	st := s.start()
	wssAddr := listenAddrs(t, st)["wss"]
	page, err := os.ReadFile(filepath.Join("..", "..", "protocols", "websocket", "testdata", "browser.html"))
	if err != nil {
		t.Fatal(err)
	}
	addr, served, results := browsertest.ServePage(t, page)
	url := "http://" + addr + "/?ws=wss://" + wssAddr + "/"
	raw := browsertest.RunWith(t, url, served, results, 90*time.Second, "--ignore-certificate-errors")
	t.Logf("chromium saw: %.300s", raw)
	var r struct {
		Error       string
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
	if r.Error != "" || r.Text != "hello from chromium ✓" || r.Binary != "0,1,2,253,254,255" || !r.Large || r.Close.Code != 4001 || !r.Close.WasClean {
		t.Fatalf("chromium over wss: %+v", r)
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if w := cur.Workers[0]; w.LoopBusySeconds == 0 || w.TLSHandshakes[ipc.TLSHandshakeOK] == 0 {
		t.Fatalf("the wss worker: loop busy %v s, handshakes %v: not on the event loop", w.LoopBusySeconds, w.TLSHandshakes)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}
