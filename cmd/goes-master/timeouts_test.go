//go:build unix

package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// The attacks of issue 12 against the real goes-master, by clients written
// here: slowloris heads, idle connections, bodies dribbled below the
// minimum rate, pipelining clients that never read, half-sent WebSocket
// frames and text lines. Every attack is bounded in connections and time;
// a connection the server never closes fails the test once its patience
// has passed.

// The defaults goes-master applies when the config sets no timeout (the
// values of connections.DefaultHeaderTimeout and the others; checked
// against them by TestTimeoutDefaultsMatch).
const (
	wantHeaderTimeout    = 30 * time.Second
	wantKeepAliveTimeout = 75 * time.Second
	wantSendTimeout      = 60 * time.Second
)

// TestTimeoutDefaultsMatch: the defaults the tests here expect are those
// of package connections, which goes-master applies.
func TestTimeoutDefaultsMatch(t *testing.T) {
	if wantHeaderTimeout != connections.DefaultHeaderTimeout || wantKeepAliveTimeout != connections.DefaultKeepAliveTimeout ||
		wantSendTimeout != connections.DefaultSendTimeout {
		t.Fatalf("the tests expect header %v, keep-alive %v, send %v; package connections has %v, %v, %v",
			wantHeaderTimeout, wantKeepAliveTimeout, wantSendTimeout,
			connections.DefaultHeaderTimeout, connections.DefaultKeepAliveTimeout, connections.DefaultSendTimeout)
	}
}

// closedCounts sums, from `status --json`, the closed counts by reason of
// the workers of listener name.
func closedCounts(t *testing.T, s *setup, name string) map[string]uint64 {
	t.Helper()
	var st ipc.Status
	if err := json.Unmarshal([]byte(s.mustCLI("status", "--json").Stdout), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	sum := map[string]uint64{}
	for _, w := range st.Workers {
		if w.Name == name {
			for r, n := range w.Closed {
				sum[r] += n
			}
		}
	}
	return sum
}

// cutLines returns the log lines of the daemon in which its workers
// report connections closed by a timeout rule, and the connections they
// count for reason.
func cutLines(t *testing.T, s *setup, reason string) (lines int, conns uint64) {
	t.Helper()
	b, err := os.ReadFile(s.paths().Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var e struct {
			Message     string `json:"message"`
			Reason      string `json:"reason"`
			Connections uint64 `json:"connections"`
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.Message != "connections closed by a timeout" || e.Reason != reason {
			continue
		}
		lines++
		conns += e.Connections
	}
	return lines, conns
}

// closeSlack is how late after its timeout a connection may be closed:
// the wheel is exact, the rest is a loaded machine and many connections.
const closeSlack = 5 * time.Second

// newTimeoutSetup is a goes-master whose config has the listeners given
// (a JSON array) and nothing else that bears on timeouts.
func newTimeoutSetup(t *testing.T, listeners string) *setup {
	t.Helper()
	s := newSetup(t, "10s")
	conf := fmt.Sprintf(`{"log_level": "info", "stop_timeout": "10s", "listeners": %s}`, listeners)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// ending is how the server ended a connection: after how long (from the
// mark the caller gave), what it sent, and err when it did not end it
// (the patience passed) or ended it otherwise than with EOF or a reset.
type ending struct {
	after time.Duration
	got   string
	err   error
}

// watchEnd reads c until the server ends it or patience has passed, and
// then sends how it went, measured from mark.
func watchEnd(c net.Conn, mark time.Time, patience time.Duration) <-chan ending {
	end := make(chan ending, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(patience))
		b, err := io.ReadAll(c)
		e := ending{after: time.Since(mark), got: string(b)}
		if err != nil && !testkit.IsReset(err) {
			e.err = err
		}
		end <- e
	}()
	return end
}

// checkEnd fails t unless e ended between lo and hi, with a server's
// answer starting with prefix ("" for none).
func checkEnd(t *testing.T, what string, e ending, lo, hi time.Duration, prefix string) {
	t.Helper()
	switch {
	case e.err != nil:
		t.Errorf("%s: not closed by the server after %v (%v); got %q", what, e.after.Round(time.Millisecond), e.err, clip(e.got))
	case e.after < lo || e.after > hi:
		t.Errorf("%s: closed after %v, want between %v and %v", what, e.after.Round(time.Millisecond), lo, hi)
	case prefix == "" && e.got != "":
		t.Errorf("%s: the server sent %q before closing, want nothing", what, clip(e.got))
	case !strings.HasPrefix(e.got, prefix):
		t.Errorf("%s: the server sent %q before closing, want %q...", what, clip(e.got), prefix)
	}
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// slowHead is a request head that never ends: a slowloris client sends it
// a byte at a time.
var slowHead = "GET / HTTP/1.1\r\nHost: goes\r\nUser-Agent: slowloris\r\nX-Pad: " + strings.Repeat("a", 4096)

// slowloris opens n connections to addr; each sends slowHead one byte
// every 2 to 5 s until the server ends it. It returns one ending per
// connection, measured from when its dial returned (the server accepts
// after that).
func slowloris(t *testing.T, addr string, n int, patience time.Duration) []<-chan ending {
	t.Helper()
	ends := make([]<-chan ending, n)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slowloris connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		end := watchEnd(c, time.Now(), patience)
		done := make(chan ending, 1)
		ends[i] = done
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 12))
			var e ending
			for k := 0; ; k++ {
				if k < len(slowHead) {
					c.Write([]byte{slowHead[k]})
				}
				select {
				case e = <-end:
					done <- e
					return
				case <-time.After(2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))):
				}
			}
		}()
	}
	return ends
}

// curl200 runs curl against addr and fails t unless it answers 200
// "hello, goer" within 2 s.
func curl200(t *testing.T, addr string) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (the CI image installs it): %v", err)
	}
	out, err := exec.Command(curl, "-sS", "--noproxy", "*", "--max-time", "2", "-w", " %{http_code}", "http://"+addr+"/").CombinedOutput()
	if err != nil || string(out) != "hello, goer 200" {
		t.Errorf("curl during the attack: %q, %v", out, err)
	}
}

// getOnce sends one GET on c and reads its answer.
func getOnce(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: goes\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(b) != "hello, goer" {
		t.Fatalf("GET: %d %q, %v", resp.StatusCode, b, err)
	}
	c.SetDeadline(time.Time{})
}

// keepAliveIdle opens n connections that each make one request and then
// say nothing; the endings are measured from the answer.
func keepAliveIdle(t *testing.T, addr string, n int, patience time.Duration) []<-chan ending {
	t.Helper()
	ends := make([]<-chan ending, n)
	for i := range ends {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		getOnce(t, c, br)
		if br.Buffered() > 0 {
			t.Fatalf("%d bytes after the answer", br.Buffered())
		}
		ends[i] = watchEnd(c, time.Now(), patience)
	}
	return ends
}

// silentConns opens n connections that never send a byte.
func silentConns(t *testing.T, addr string, n int, patience time.Duration) []<-chan ending {
	t.Helper()
	ends := make([]<-chan ending, n)
	for i := range ends {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ends[i] = watchEnd(c, time.Now(), patience)
	}
	return ends
}

// pipeliners opens n connections that pipeline GETs (16 KiB of them every
// 20 ms) and never read. A connection ends when a write fails (the server
// reset it) or the patience has passed; the endings are measured from the
// first write.
func pipeliners(t *testing.T, addr string, n int, patience time.Duration) []<-chan ending {
	t.Helper()
	batch := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: goes\r\n\r\n"), 16<<10/len("GET / HTTP/1.1\r\nHost: goes\r\n\r\n"))
	ends := make([]<-chan ending, n)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range ends {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		end := make(chan ending, 1)
		ends[i] = end
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c.SetWriteDeadline(start.Add(patience))
			for {
				_, err := c.Write(batch)
				if err != nil {
					e := ending{after: time.Since(start)}
					if !testkit.IsReset(err) {
						e.err = err
					}
					end <- e
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return ends
}

// collect waits for every ending.
func collect(ends []<-chan ending) []ending {
	out := make([]ending, len(ends))
	for i, ch := range ends {
		out[i] = <-ch
	}
	return out
}

// checkEnds is checkEnd for every ending, reporting at most a few.
func checkEnds(t *testing.T, what string, es []ending, lo, hi time.Duration, prefix string) {
	t.Helper()
	bad := 0
	for i, e := range es {
		ok := e.err == nil && e.after >= lo && e.after <= hi &&
			(prefix == "" && e.got == "" || prefix != "" && strings.HasPrefix(e.got, prefix))
		if ok {
			continue
		}
		if bad++; bad <= 3 {
			checkEnd(t, fmt.Sprintf("%s %d", what, i), e, lo, hi, prefix)
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d connections wrong (the first 3 shown)", what, bad, len(es))
	}
}

// TestDefaultTimeoutsAgainstAttackers: goes-master with a config that
// sets no timeout, attacked as in issue 12: slowloris heads and silent
// connections are answered 408 and closed after the default header
// timeout, idle keep-alive connections closed after the default
// keep-alive timeout, pipelining clients that never read destroyed after
// the default send timeout; meanwhile an idle text connection and an idle
// upgraded WebSocket, long-lived by nature, stay open.
func TestDefaultTimeoutsAgainstAttackers(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "10s")
	s.start()
	patience := wantKeepAliveTimeout + 2*closeSlack
	lo := func(d time.Duration) time.Duration { return d - 100*time.Millisecond }

	text := dialText(t, s.textAddr)
	text.echo(t, "before")
	ws, wsr := dialWebSocket(t, s.wsAddr)
	ws.SetDeadline(time.Time{})

	slow := slowloris(t, s.httpAddr, 100, patience)
	silent := silentConns(t, s.httpAddr, 10, patience)
	idle := keepAliveIdle(t, s.httpAddr, 10, patience)
	pipes := pipeliners(t, s.httpAddr, 4, patience)

	checkEnds(t, "slowloris", collect(slow), lo(wantHeaderTimeout), wantHeaderTimeout+closeSlack, "HTTP/1.1 408 ")
	checkEnds(t, "silent", collect(silent), lo(wantHeaderTimeout), wantHeaderTimeout+closeSlack, "HTTP/1.1 408 ")
	checkEnds(t, "pipelining non-reader", collect(pipes), lo(wantSendTimeout), wantSendTimeout+2*closeSlack, "")
	checkEnds(t, "idle keep-alive", collect(idle), lo(wantKeepAliveTimeout), wantKeepAliveTimeout+closeSlack, "")
	got := closedCounts(t, s, "web")
	if got[connections.ClosedHeaderTimeout] != 110 || got[connections.ClosedKeepAliveTimeout] != 10 || got[connections.ClosedSendTimeout] != 4 {
		t.Errorf("status --json: closed %v, want 110 header, 10 keep-alive and 4 send timeouts", got)
	}
	for _, name := range []string{"text", "ws"} {
		if got := closedCounts(t, s, name); len(got) != 0 {
			t.Errorf("status --json: %s closed %v, want none", name, got)
		}
	}

	// The long-lived connections outlived every default.
	text.echo(t, "after")
	mask := []byte{1, 2, 3, 4}
	ws.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := ws.Write([]byte{0x81, 0x80 | 2, mask[0], mask[1], mask[2], mask[3], 'h' ^ mask[0], 'i' ^ mask[1]}); err != nil {
		t.Fatalf("idle websocket after %v: %v", patience, err)
	}
	echoed := make([]byte, 4)
	if _, err := io.ReadFull(wsr, echoed); err != nil || string(echoed) != "\x81\x02hi" {
		t.Fatalf("idle websocket echo: %q, %v", echoed, err)
	}
}

// TestSlowloris: 1,000 connections each sending a header byte every 2 to
// 5 s to a listener with a 3 s header timeout are all answered 408 and
// closed 3 s after they connected (plus slack), while curl gets its 200
// all along.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	const header = 3 * time.Second
	s := newTimeoutSetup(t, `[{"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello", "header_timeout": "3s"}]`)
	s.start()
	attackStart := time.Now()
	ends := slowloris(t, s.httpAddr, 1000, header+4*closeSlack)
	for time.Since(attackStart) < header+time.Second {
		curl200(t, s.httpAddr)
		time.Sleep(200 * time.Millisecond)
	}
	checkEnds(t, "slowloris", collect(ends), header-100*time.Millisecond, header+closeSlack, "HTTP/1.1 408 ")
	curl200(t, s.httpAddr)
	if got := closedCounts(t, s, "web"); got[connections.ClosedHeaderTimeout] != 1000 || len(got) != 1 {
		t.Errorf("status --json: closed %v, want 1000 header timeouts", got)
	}
	// One log line per worker at the first cut, one summary per worker
	// ten seconds later: not one per connection.
	testkit.Eventually(t, testkit.Wait, 100*time.Millisecond, "the log counting every cut", func() error {
		lines, conns := cutLines(t, s, connections.ClosedHeaderTimeout)
		if conns != 1000 || lines > 4 {
			return fmt.Errorf("%d log lines count %d connections, want 1000 in at most 4 lines", lines, conns)
		}
		return nil
	})
}

// TestKeepAliveTimeout: with keepalive_timeout 2s, a connection idle after
// its answer is closed 2 s later, silently.
func TestKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	const ka = 2 * time.Second
	s := newTimeoutSetup(t, `[{"name": "web", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello", "keepalive_timeout": "2s"}]`)
	s.start()
	ends := keepAliveIdle(t, s.httpAddr, 20, ka+4*closeSlack)
	checkEnds(t, "idle keep-alive", collect(ends), ka-100*time.Millisecond, ka+closeSlack, "")
}

// TestBodyTimeouts: with body_timeout 3s, a body dribbled a byte every
// 500 ms (progress, but below the default minimum rate) and a body that
// stops half way are both answered 408 and closed: the first at the end
// of its first 3 s window, the second 3 s after its last byte.
func TestBodyTimeouts(t *testing.T) {
	t.Parallel()
	const body = 3 * time.Second
	s := newTimeoutSetup(t, `[{"name": "web", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello", "body_timeout": "3s"}]`)
	s.start()
	head := "POST / HTTP/1.1\r\nHost: goes\r\nContent-Length: 100000\r\n\r\n"
	patience := body + 4*closeSlack

	dribbler, err := net.Dial("tcp", s.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dribbler.Close() })
	io.WriteString(dribbler, head)
	dribbleEnd := watchEnd(dribbler, time.Now(), patience)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				if _, err := dribbler.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()

	staller, err := net.Dial("tcp", s.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { staller.Close() })
	io.WriteString(staller, head+strings.Repeat("y", 50000))
	stallEnd := watchEnd(staller, time.Now(), patience)

	checkEnd(t, "dribbled body", <-dribbleEnd, body-100*time.Millisecond, body+closeSlack, "HTTP/1.1 408 ")
	close(stop)
	wg.Wait()
	checkEnd(t, "stalled body", <-stallEnd, body-100*time.Millisecond, body+closeSlack, "HTTP/1.1 408 ")
}

// TestSlowSteadyUpload: with the default timeouts, a 5 MiB body sent at
// 200 KiB/s (20 KiB every 100 ms) is received whole and answered 200.
func TestSlowSteadyUpload(t *testing.T) {
	t.Parallel()
	s := newTimeoutSetup(t, `[{"name": "web", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello"}]`)
	s.start()
	const size, piece = 5 << 20, 20 << 10
	c, err := net.Dial("tcp", s.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(90 * time.Second))
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: goes\r\nContent-Length: %d\r\n\r\n", size)
	data := testkit.Pattern(size)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for off := 0; off < size; off += piece {
		<-tick.C
		if _, err := c.Write(data[off:min(off+piece, size)]); err != nil {
			t.Fatalf("upload after %d bytes, %v: %v", off, time.Since(start), err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("answer to the upload after %v: %v", time.Since(start), err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(b) != "hello, goer" {
		t.Fatalf("answer to the upload: %d %q, %v", resp.StatusCode, b, err)
	}
	if took := time.Since(start); took < 20*time.Second {
		t.Fatalf("5 MiB at 200 KiB/s took %v: the client was not slow", took)
	}
}

// TestSendTimeout: with send_timeout 3s, clients that pipeline requests
// and never read are destroyed 3 s after their output stopped moving,
// and meanwhile the worker holds no more than their send buffers.
func TestSendTimeout(t *testing.T) {
	t.Parallel()
	const send = 3 * time.Second
	s := newTimeoutSetup(t, `[{"name": "web", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello", "send_timeout": "3s"}]`)
	st := s.start()
	before := st.Workers[0].MemoryBytes
	const conns = 8
	ends := pipeliners(t, s.httpAddr, conns, send+6*closeSlack)
	peak := before
	done := make(chan []ending, 1)
	go func() { done <- collect(ends) }()
	var es []ending
	for es == nil {
		select {
		case es = <-done:
		case <-time.After(100 * time.Millisecond):
			if st, err := s.status(); err == nil && len(st.Workers) == 1 {
				peak = max(peak, st.Workers[0].MemoryBytes)
			}
		}
	}
	// Output stops moving once the peer's receive buffer and the socket's
	// send buffer are full: at most a few seconds after the start.
	checkEnds(t, "pipelining non-reader", es, send-100*time.Millisecond, send+2*closeSlack, "")
	if grew := int64(peak) - int64(before); grew > conns<<20+48<<20 {
		t.Errorf("worker memory grew by %d MiB under %d non-reading clients (send buffers of 1 MiB each)", grew>>20, conns)
	}
	curl200(t, s.httpAddr)
}

// TestWebSocketAndRawTimeouts: with every timeout at 2 s, an unfinished
// WebSocket handshake is answered 408 and closed after the header timeout;
// an upgraded WebSocket and a text connection that say nothing stay open
// (no idle limit after the upgrade or on raw listeners), while a half-sent
// frame gets close code 1008 and a half-sent line is closed, both once
// they have made no progress for the body timeout.
func TestWebSocketAndRawTimeouts(t *testing.T) {
	t.Parallel()
	const d = 2 * time.Second
	timeouts := `"header_timeout": "2s", "body_timeout": "2s", "keepalive_timeout": "2s", "send_timeout": "2s"`
	s := newTimeoutSetup(t, `[
  {"name": "ws", "listen": "websocket://127.0.0.1:0", "count": 1, `+timeouts+`},
  {"name": "text", "listen": "text://127.0.0.1:0", "count": 1, `+timeouts+`}
]`)
	s.start()
	patience := d + 4*closeSlack

	handshake, err := net.Dial("tcp", s.wsAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { handshake.Close() })
	io.WriteString(handshake, "GET /chat HTTP/1.1\r\nHost: goes\r\nUpgrade: websocket\r\n")
	handshakeEnd := watchEnd(handshake, time.Now(), patience)

	open, openR := dialWebSocket(t, s.wsAddr)
	open.SetDeadline(time.Time{})

	half, halfR := dialWebSocket(t, s.wsAddr)
	half.SetDeadline(time.Time{})
	// A masked text frame of 10 bytes: header and mask sent, 2 of the 10.
	half.Write([]byte{0x81, 0x80 | 10, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2})
	halfEnd := watchEnd(readerConn{half, halfR}, time.Now(), patience)

	idleText := dialText(t, s.textAddr)
	idleText.echo(t, "hello")
	halfLine := dialText(t, s.textAddr)
	io.WriteString(halfLine, "no newline yet")
	halfLineEnd := watchEnd(halfLine, time.Now(), patience)

	checkEnd(t, "unfinished websocket handshake", <-handshakeEnd, d-100*time.Millisecond, d+closeSlack, "HTTP/1.1 408 ")
	// Close frame, 1008 (policy violation).
	checkEnd(t, "half-sent websocket frame", <-halfEnd, d-100*time.Millisecond, d+closeSlack, "\x88")
	checkEnd(t, "half-sent line", <-halfLineEnd, d-100*time.Millisecond, d+closeSlack, "")

	// Twice every timeout later, the idle ones still answer.
	time.Sleep(2 * d)
	idleText.echo(t, "still here")
	mask := []byte{1, 2, 3, 4}
	open.SetDeadline(time.Now().Add(5 * time.Second))
	open.Write([]byte{0x81, 0x80 | 2, mask[0], mask[1], mask[2], mask[3], 'h' ^ mask[0], 'i' ^ mask[1]})
	got := make([]byte, 4)
	if _, err := io.ReadFull(openR, got); err != nil || string(got) != "\x81\x02hi" {
		t.Fatalf("idle websocket echo: %q, %v", got, err)
	}
}

// readerConn reads through r (which holds what the handshake's reader
// buffered) and is c otherwise.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }
