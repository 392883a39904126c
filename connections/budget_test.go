package connections_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// budgetServer serves cfg on loopback for a budget test, with e's engine,
// and logs to logs as well as to the test.
func budgetServer(t *testing.T, e testkit.Engine, cfg connections.Config, logs io.Writer) (*connections.Server, string) {
	t.Helper()
	cfg.Engine, cfg.CallbackGoroutines = e.Name, e.Pool
	cfg.Logger = zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), logs))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	return s, ln.Addr().String()
}

// heldAtLeast waits until the server holds at least n bytes of input.
func heldAtLeast(t *testing.T, s *connections.Server, n int64) {
	t.Helper()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, fmt.Sprintf("%d bytes held", n), func() error {
		if got := s.Stats().InputHeld; got < n {
			return fmt.Errorf("held %d", got)
		}
		return nil
	})
}

// postPart opens a connection that sends the head of a POST with a body
// of cl bytes and the first part bytes of it.
func postPart(t *testing.T, addr string, cl, part int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", cl)
	if _, err := c.Write(append([]byte(head), bytes.Repeat([]byte("b"), part)...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// answer reads one HTTP response from c within 10 s: its status, or 0
// with the error.
func answer(c net.Conn) (int, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestInputBudgetSheds: on every engine, with a 1 MiB budget, two
// requests whose 500 KB bodies are arriving hold it; a third as large is
// refused at once (503, closed); a smaller one sheds one of the two (503)
// and is served; whole requests never touch the budget; the shedding is
// counted and logged once; and everything held is given back when the
// connections go.
func TestInputBudgetSheds(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		const (
			budget = 1 << 20
			large  = 500_000
			medium = 100_000
		)
		var logs lockedBuffer
		s, addr := budgetServer(t, e, connections.Config{
			Protocol:       http.New(),
			MaxInputMemory: budget,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, body []byte) {
				c.Send(fmt.Sprintf("got %d", len(body)), false)
			}},
		}, &logs)
		a := postPart(t, addr, large, 200_000)
		heldAtLeast(t, s, large)
		b := postPart(t, addr, large, 200_000)
		heldAtLeast(t, s, 2*large)

		// As large as the holders: refused, the holders untouched.
		c := postPart(t, addr, large, 200_000)
		if st, err := answer(c); st != 503 || err != nil {
			t.Fatalf("third large request: %d, %v; want 503", st, err)
		}
		if st := s.Stats(); st.InputShed != 1 || st.InputHeld < 2*large || st.InputHeld > budget {
			t.Fatalf("after the refusal: shed %d, held %d", st.InputShed, st.InputHeld)
		}

		// A whole request is served without the budget.
		g, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		g.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
		if st, err := answer(g); st != 200 || err != nil {
			t.Fatalf("GET during the attack: %d, %v", st, err)
		}

		// Smaller than the holders: one of them is shed for it.
		d := postPart(t, addr, medium, 50_000)
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "a holder shed", func() error {
			if st := s.Stats(); st.InputShed != 2 {
				return fmt.Errorf("shed %d", st.InputShed)
			}
			return nil
		})
		d.Write(bytes.Repeat([]byte("b"), medium-50_000))
		if st, err := answer(d); st != 200 || err != nil {
			t.Fatalf("medium request: %d, %v; want 200", st, err)
		}
		var shedOne, kept net.Conn
		for _, h := range []net.Conn{a, b} {
			h.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := h.Read(make([]byte, 1)); err == nil {
				h.SetReadDeadline(time.Time{})
				if shedOne != nil {
					t.Fatal("both holders were answered")
				}
				shedOne = h
			} else {
				kept = h
			}
		}
		if shedOne == nil || kept == nil {
			t.Fatalf("want one holder shed and one kept")
		}
		// The one kept finishes its body and is served.
		kept.SetReadDeadline(time.Time{})
		kept.Write(bytes.Repeat([]byte("b"), large-200_000))
		if st, err := answer(kept); st != 200 || err != nil {
			t.Fatalf("the holder kept: %d, %v; want 200", st, err)
		}
		if n := strings.Count(logs.String(), "input memory budget spent"); n != 1 {
			t.Errorf("%d log lines say the budget is spent, want 1:\n%s", n, logs.String())
		}
		for _, cn := range []net.Conn{a, b, c, d} {
			cn.Close()
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "nothing held", func() error {
			if st := s.Stats(); st.InputHeld != 0 || st.Connections != 1 {
				return fmt.Errorf("held %d by %d connections", st.InputHeld, st.Connections)
			}
			return nil
		})
	})
}

// TestInputBudgetLines: lines still arriving count too, though their
// length is unknown (the buffer doubles): on every engine, with a 256 KiB
// budget, connections sending 200 KiB of one line are shed (closed) as
// the budget requires, never holding more than it together, and whole
// lines keep being echoed.
func TestInputBudgetLines(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		const budget = 256 << 10
		s, addr := budgetServer(t, e, connections.Config{
			Protocol:       text.New(),
			MaxInputMemory: budget,
			Handler:        connections.Handler{OnMessage: func(c connections.Connection, d []byte) { c.SendBytes(d, false) }},
		}, io.Discard)
		var conns []net.Conn
		var maxHeld int64
		for range 8 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(bytes.Repeat([]byte("x"), 200<<10)); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "line read", func() error {
				st := s.Stats()
				maxHeld = max(maxHeld, st.InputHeld)
				if st.BytesIn < uint64(len(conns))*(200<<10) {
					return fmt.Errorf("%d bytes in", st.BytesIn)
				}
				return nil
			})
		}
		st := s.Stats()
		if st.InputShed == 0 || maxHeld > budget {
			t.Fatalf("shed %d, held at most %d (budget %d)", st.InputShed, maxHeld, budget)
		}
		closed := 0
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err == io.EOF || testkit.IsReset(err) {
				closed++
			}
		}
		if closed != int(st.InputShed) {
			t.Errorf("%d connections closed, %d shed", closed, st.InputShed)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("hello\n"))
		if got, err := bufio.NewReader(c).ReadString('\n'); got != "hello\n" || err != nil {
			t.Fatalf("echo %q, %v", got, err)
		}
	})
}

// TestShedLogSummary: shedding is logged once when it starts and then in
// one summary line per 10 s while it goes on, whatever the number of
// connections shed, and starts afresh after a quiet interval; the lines
// add up to the counter. On synctest's clock, with the standard engine on
// pipes.
func TestShedLogSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs lockedBuffer
		ln := testkit.NewPipeListener(t)
		s := connections.NewServer(connections.Config{
			Protocol:       text.New(),
			Engine:         connections.EngineStd,
			MaxInputMemory: 12 << 10, // one 8 KiB line buffer and a 4 KiB one
			Logger:         zerolog.New(&logs).Level(zerolog.InfoLevel),
		})
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		defer func() { s.Close(); <-done }()
		holder := ln.Dial(t)
		holder.Write(bytes.Repeat([]byte("h"), 6<<10)) // held: 8 KiB
		shedN := func(n int) {
			for range n {
				c := ln.Dial(t)
				c.Write(bytes.Repeat([]byte("x"), 6<<10)) // refused when it needs 8 KiB
				c.Close()
				// Each shed connection is gone, its memory given back,
				// before the next one asks: without this wait 9 of 300
				// runs (three at once) logged one shed connection fewer,
				// the next one asking while the last still held memory.
				synctest.Wait()
			}
		}
		shedN(3) // t=0: the first line at once, 2 pending
		time.Sleep(15 * time.Second)
		shedN(2) // t=15s: after the first summary
		time.Sleep(40 * time.Second)
		shedN(1) // t=55s: quiet since t=20s: a new first line
		time.Sleep(time.Second)
		type line struct {
			Message string
			Shed    uint64
		}
		var got []string
		var total uint64
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var ln line
			if err := json.Unmarshal([]byte(l), &ln); err != nil || !strings.Contains(ln.Message, "shed") {
				continue
			}
			got = append(got, fmt.Sprintf("%s:%d", ln.Message, ln.Shed))
			total += ln.Shed
		}
		want := []string{
			"input memory budget spent, shedding the largest holders:1",
			"connections shed by the input memory budget:2",
			"connections shed by the input memory budget:2",
			"input memory budget spent, shedding the largest holders:1",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("log lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if st := s.Stats(); st.InputShed != 6 || total != 6 {
			t.Fatalf("counter %d, lines say %d; want 6", st.InputShed, total)
		}
	})
}
