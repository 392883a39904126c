package worker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/protocols/text"
)

func TestJitter(t *testing.T) {
	seen := map[uint64]bool{}
	for i := 0; i < 1000; i++ {
		v := jitter(1000)
		if v < 900 || v > 1100 {
			t.Fatalf("jitter(1000) = %d, outside ±10%%", v)
		}
		seen[v] = true
	}
	if len(seen) < 50 {
		t.Fatalf("jitter(1000) drew only %d values in 1000", len(seen))
	}
	if jitter(0) != 0 || jitter(1) != 1 {
		t.Fatalf("jitter(0) = %d, jitter(1) = %d", jitter(0), jitter(1))
	}
}

// runWorker runs a text echo worker with o's limits, on loopback and a
// control channel the test holds; it returns the listener's address and
// the test's end of the channel, the ready event read.
func runWorker(t *testing.T, o Options) (string, *ipc.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := net.Pipe()
	o.Ctl, o.Listener, o.Logger = theirs, ln, testkit.Logger(t)
	o.Config = connections.Config{Protocol: text.New(), Handler: connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) { c.SendBytes(data, false) },
	}}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), o) }()
	ctl := ipc.NewConn(mine)
	t.Cleanup(func() {
		mine.Close() // EOF: the worker drains and returns
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
	})
	mine.SetDeadline(time.Now().Add(10 * time.Second))
	if m, err := ctl.Recv(); err != nil || m.Type != ipc.TypeReady {
		t.Fatalf("first message: %+v, %v", m, err)
	}
	return ln.Addr().String(), ctl, mine
}

// TestRecycleAsk: past its request limit (jittered), and past its memory
// limit, a worker asks its master once to be replaced.
func TestRecycleAsk(t *testing.T) {
	t.Run("max_requests", func(t *testing.T) {
		addr, ctl, raw := runWorker(t, Options{MaxRequests: 20})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		for i := 0; i < 30; i++ {
			fmt.Fprintf(c, "m%d\n", i)
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		m, err := ctl.Recv()
		if err != nil || m.Type != ipc.TypeRecycle || m.ID != 0 {
			t.Fatalf("message: %+v, %v", m, err)
		}
		var req ipc.RecycleRequest
		if err := m.Decode(&req); err != nil {
			t.Fatal(err)
		}
		if req.Reason != ipc.RecycleMaxRequests || req.Limit < 18 || req.Limit > 22 || req.Requests < req.Limit {
			t.Fatalf("recycle request: %+v", req)
		}
		// Once: nothing more within the next second (it asks again after 5 s).
		raw.SetDeadline(time.Now().Add(time.Second))
		if m, err := ctl.Recv(); err == nil {
			t.Fatalf("asked again at once: %+v", m)
		}
	})
	t.Run("max_memory", func(t *testing.T) {
		_, ctl, raw := runWorker(t, Options{MaxMemory: 1})
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		m, err := ctl.Recv()
		if err != nil || m.Type != ipc.TypeRecycle {
			t.Fatalf("message: %+v, %v", m, err)
		}
		var req ipc.RecycleRequest
		if err := m.Decode(&req); err != nil {
			t.Fatal(err)
		}
		if req.Reason != ipc.RecycleMaxMemory || req.Limit != 1 || req.MemoryBytes <= 1 {
			t.Fatalf("recycle request: %+v", req)
		}
	})
}
