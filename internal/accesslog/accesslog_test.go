//go:build unix

package accesslog

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/protocols/http"
)

// TestDropWhenFull: with the file stalled (a FIFO nobody reads), LogAccess
// never waits: entries beyond what the queue, the buffer and the pipe hold
// are dropped and counted, and every entry is either written whole or
// counted.
func TestDropWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := Open(path, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		e := &http.AccessEntry{Method: "GET", Path: "/x", Status: 200, BytesIn: 10, BytesOut: 20, Start: time.Now()}
		for range n {
			w.LogAccess(nil, e)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("LogAccess blocked on a stalled file")
	}
	if w.Dropped() == 0 {
		t.Fatal("nothing dropped with the file stalled")
	}
	// Now read: the drainer catches up; Close writes out the queue.
	if err := syscall.SetNonblock(int(r.Fd()), false); err != nil {
		t.Fatal(err)
	}
	lines := 0
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				readDone <- err
				return
			}
			if m["method"] != "GET" || m["worker"] != float64(3) || m["duration_ms"] == nil {
				t.Errorf("line %s", sc.Bytes())
			}
			lines++
		}
		readDone <- sc.Err()
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The writer's end is closed: the reader sees EOF.
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if got := uint64(lines) + w.Dropped(); got != n {
		t.Fatalf("%d lines + %d dropped = %d, want %d", lines, w.Dropped(), got, n)
	}
	t.Logf("%d written, %d dropped", lines, w.Dropped())
}
