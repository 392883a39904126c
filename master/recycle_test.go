//go:build unix

package master

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// spawnModes returns a WorkerEnv function that gives the n-th spawn
// (from 1) the environment of modes[n-1], and the last one after that.
func spawnModes(modes ...[]string) func(Identity) []string {
	var mu sync.Mutex
	n := 0
	return func(Identity) []string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return modes[min(n, len(modes))-1]
	}
}

// request sends one request to the test workers' listener (a byte, which
// their request limit counts) and returns the pid that answered.
func (tm *testMaster) request() string {
	tm.t.Helper()
	c, err := net.Dial("tcp", tm.ln.Addr().String())
	if err != nil {
		tm.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 16)
	n, _ := c.Read(b) // the pid comes on connect, before the request
	c.Write([]byte("x"))
	return string(b[:n])
}

// TestRecycleReplacementFails: a replacement that dies before it serves
// leaves the worker it was to replace serving, the death counted.
func TestRecycleReplacementFails(t *testing.T) {
	limit := []string{"GOES_TEST_MAX_REQUESTS=1"}
	tm := startMaster(t, 1, spawnModes(limit, []string{"GOES_TEST_MODE=fail"}), nil)
	tm.waitReady()
	first := tm.status().Workers[0]
	// Recycles for max_requests are not held back in the first second.
	tm.request()
	var w ipc.Worker
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "failed replacement counted", func() error {
		if w = tm.status().Workers[0]; w.ExitCount != 1 {
			return fmt.Errorf("worker %+v", w)
		}
		return nil
	})
	if w.PID != first.PID || w.State != StateRunning || w.Recycles != 0 || !strings.Contains(w.LastExit, "exit status 3") {
		t.Fatalf("after a failed replacement: %+v", w)
	}
	if got := tm.request(); got != fmt.Sprint(first.PID) {
		t.Fatalf("answered by %s, want the old worker %d", got, first.PID)
	}
}

// TestRecycleOldDiesMeanwhile: a worker that dies while its replacement
// starts is not respawned: the replacement takes the id over.
func TestRecycleOldDiesMeanwhile(t *testing.T) {
	limit := []string{"GOES_TEST_MAX_REQUESTS=1"}
	var spawned sync.Map
	modes := spawnModes(limit, []string{"GOES_TEST_MODE=slow"}, nil)
	n := 0
	env := func(id Identity) []string {
		n++ // spawns are serial: the run loop calls this
		spawned.Store(n, true)
		return modes(id)
	}
	tm := startMaster(t, 1, env, nil)
	tm.waitReady()
	old := tm.status().Workers[0]
	tm.request()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "replacement spawned", func() bool {
		_, ok := spawned.Load(2)
		return ok
	})
	syscall.Kill(old.PID, syscall.SIGKILL)
	var w ipc.Worker
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "replacement serving", func() error {
		if w = tm.status().Workers[0]; w.PID == old.PID || w.PID == 0 || w.State != StateRunning {
			return fmt.Errorf("worker %+v", w)
		}
		return nil
	})
	if w.ExitCount != 1 || w.Recycles != 1 || w.LastRecycle != ipc.RecycleMaxRequests {
		t.Fatalf("after the old worker died meanwhile: %+v", w)
	}
	if _, third := spawned.Load(3); third {
		t.Fatal("the dead worker was respawned besides its replacement")
	}
	if got := tm.request(); got != fmt.Sprint(w.PID) {
		t.Fatalf("answered by %s, want %d", got, w.PID)
	}
}
