//go:build linux

package main_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// TestTLSLimitsConfig: a listener's tls_handshake_timeout and
// max_tls_handshakes reach its workers' event loops (issue 20). A client
// that sends part of a ClientHello and no more is closed at the
// configured 300 ms, not at the default 10 s; with max_tls_handshakes 2,
// two clients that stall inside their handshakes leave no room for a
// third, which is closed at once, and room comes back when they go.
// The failures are logged at debug, one line each, and summarised at
// info when the listener closes (and each minute before).
func TestTLSLimitsConfig(t *testing.T) {
	s := tlsConfSetup(t, `{"log_level": "debug", "admin": "127.0.0.1:0", "listeners": [
  {"name": "short", "listen": "tls://127.0.0.1:0", "count": 1, "cert_file": %[1]q, "key_file": %[2]q, "tls_handshake_timeout": "300ms"},
  {"name": "bound", "listen": "https://127.0.0.1:0", "count": 1, "handler": "hello", "cert_file": %[1]q, "key_file": %[2]q, "max_tls_handshakes": 2, "tls_handshake_timeout": "1m"}
]}`)
	st := s.start()
	addrs := listenAddrs(t, st)

	// A partial ClientHello: a record header announcing 512 bytes, the
	// handshake header and the version, then silence.
	c, err := net.Dial("tcp", addrs["short"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) // half the default timeout
	n, err := c.Read(make([]byte, 64))
	took := time.Since(began)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a partial ClientHello still open after %v: the configured tls_handshake_timeout (300ms) is not applied", took)
	}
	if n != 0 || took < 150*time.Millisecond {
		t.Fatalf("a partial ClientHello: read %d bytes, %v after %v: want the connection closed at 300 ms", n, err, took)
	}
	t.Logf("a partial ClientHello was closed after %v (tls_handshake_timeout 300ms)", took)

	// max_tls_handshakes 2: two clients stalled inside their handshakes
	// (the server has answered their hello and waits for their Finished).
	var stalled []*stallConn
	defer func() {
		for _, sc := range stalled {
			sc.release()
		}
	}()
	for range 2 {
		raw, err := net.Dial("tcp", addrs["bound"])
		if err != nil {
			t.Fatal(err)
		}
		sc := &stallConn{Conn: raw, stalled: make(chan struct{}), free: make(chan struct{})}
		stalled = append(stalled, sc)
		go tls.Client(sc, &tls.Config{InsecureSkipVerify: true}).Handshake()
		select {
		case <-sc.stalled:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not answer a ClientHello within 10 s")
		}
	}
	dial := func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrs["bound"], &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err == nil {
		t.Fatal("a third handshake completed while two were in progress: max_tls_handshakes 2 is not applied")
	}
	for _, sc := range stalled {
		sc.release()
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "a handshake once the stalled ones are gone", dial)

	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the failures in the metrics", func() error {
		m := mustFetch(t, "http://"+st.Master.Admin+"/metrics")
		if f := listenerSum(m, "goes_tls_handshakes_total", "short", `result="failed"`); f != 1 {
			return fmt.Errorf("short: %v failed handshakes, want 1", f)
		}
		if f := listenerSum(m, "goes_tls_handshakes_total", "bound", `result="failed"`); f < 1 {
			return fmt.Errorf("bound: %v failed handshakes, want the refused one at least", f)
		}
		return nil
	})
	// Logged at debug when they happen.
	short := workerOf(t, st, "short")
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the timeout logged at debug", func() error {
		lines := tlsFailureLines(s, short)
		if len(lines.debug) != 1 || !strings.Contains(lines.debug[0], "TLS handshake timeout") || !strings.Contains(lines.debug[0], `"level":"debug"`) {
			return fmt.Errorf("debug lines of worker %d: %q, want one with the timeout", short, lines.debug)
		}
		return nil
	})
	s.stopAndCheck(st)
	// Summarised at info as the listener closes.
	lines := tlsFailureLines(s, short)
	if len(lines.summaries) != 1 || lines.summaries[0].Failed != 1 || lines.summaries[0].Level != "info" {
		t.Fatalf("summaries of worker %d: %+v, want one at info with failed 1", short, lines.summaries)
	}
	if sum := tlsFailureLines(s, workerOf(t, st, "bound")); len(sum.summaries) != 1 || sum.summaries[0].Failed < 1 {
		t.Fatalf("summaries of the bound listener's worker: %+v, want one", sum.summaries)
	}
}

// stallConn lets a TLS client's first write (its ClientHello) through
// and blocks the next (what it sends once the server has answered) until
// release: its handshake stays in progress on the server.
type stallConn struct {
	net.Conn
	writes  int
	once    sync.Once
	stalled chan struct{}
	free    chan struct{}
	freed   sync.Once
}

func (c *stallConn) Write(b []byte) (int, error) {
	c.writes++
	if c.writes == 1 {
		return c.Conn.Write(b)
	}
	c.once.Do(func() { close(c.stalled) })
	<-c.free
	return 0, net.ErrClosed
}

func (c *stallConn) release() {
	c.freed.Do(func() {
		close(c.free)
		c.Conn.Close()
	})
}

// workerOf is the id of the worker of the listener name (count 1).
func workerOf(t *testing.T, st ipc.Status, name string) int {
	t.Helper()
	for _, w := range st.Workers {
		if w.Name == name {
			return w.ID
		}
	}
	t.Fatalf("no worker of listener %q", name)
	return -1
}

// tlsFailures are the log's lines about a worker's failed handshakes.
type tlsFailures struct {
	debug     []string // "TLS handshake failed", each as it is
	summaries []tlsSummary
}

type tlsSummary struct {
	Level  string `json:"level"`
	Failed uint64 `json:"failed"`
	Total  uint64 `json:"failed_total"`
}

func tlsFailureLines(s *setup, worker int) tlsFailures {
	var out tlsFailures
	for _, line := range s.logLines() {
		var v struct {
			Message string `json:"message"`
			Worker  *int   `json:"worker"`
		}
		if json.Unmarshal([]byte(line), &v) != nil || v.Worker == nil || *v.Worker != worker {
			continue
		}
		switch v.Message {
		case "TLS handshake failed":
			out.debug = append(out.debug, line)
		case "TLS handshakes failed":
			var sum tlsSummary
			json.Unmarshal([]byte(line), &sum)
			out.summaries = append(out.summaries, sum)
		}
	}
	return out
}
