//go:build linux

package main_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/flood"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// floodEnv makes the test binary a flood client process (TestMain):
// internal/flood's Main with the process's arguments.
const floodEnv = "GOES_TEST_FLOOD_CLIENT"

// runFloodClient runs the process as a flood client when floodEnv says
// so, and then exits.
func runFloodClient() {
	if os.Getenv(floodEnv) == "1" {
		os.Exit(flood.Main(os.Args[1:], os.Stdin, os.Stdout))
	}
}

// floodClient is a client process holding n connections to a server,
// every one answered by it, until the test ends.
type floodClient struct {
	n     int
	lines chan string
}

// startFlood starts a client process that opens n text connections to
// addr from source address src.
func startFlood(t *testing.T, addr, src string, n int) *floodClient {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-addr", addr, "-src", src, "-n", fmt.Sprint(n), "-proto", "text", "-timeout", "2m")
	cmd.Env = append(os.Environ(), floodEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &floodClient{n: n, lines: make(chan string, 1)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		in.Close() // the client closes its connections and exits
		cmd.Wait()
	})
	return c
}

// ready waits until the client holds all its connections.
func (c *floodClient) ready(t *testing.T, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case line := <-c.lines:
		if line != fmt.Sprintf("ready %d", c.n) {
			t.Fatalf("flood client: %q, want ready %d", line, c.n)
		}
	case <-timer.C:
		t.Fatalf("flood client: %d connections not all answered within %v", c.n, d)
	}
}

// listenerConns returns the connections of the workers of listener
// name, by worker id, once they sum to want (a worker counts a
// connection before it answers on it; status may be a moment behind).
func (s *setup) listenerConns(name string, want int64) map[int]int64 {
	s.t.Helper()
	var counts map[int]int64
	testkit.Eventually(s.t, testkit.Wait, 50*time.Millisecond, "status counts every connection", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		counts = map[int]int64{}
		var sum int64
		for _, w := range st.Workers {
			if w.Name == name && w.MasterPID == st.Master.PID {
				counts[w.ID] = w.Connections
				sum += w.Connections
			}
		}
		if sum != want {
			return fmt.Errorf("workers hold %d connections, want %d: %v", sum, want, counts)
		}
		return nil
	})
	return counts
}

// floodConf is a config with one text listener of count workers.
func floodConf(count int) string {
	return fmt.Sprintf(`{
  "log_level": "info",
  "stop_timeout": "5s",
  "listeners": [{"name": "flood", "listen": "text://127.0.0.1:0", "count": %d}]
}`, count)
}

// TestAcceptBalance: a flood of 12,000 connections from four client
// processes on one listener of eight workers, which share one accept
// queue: no worker holds more than 1.25 times the mean. (Without
// balancing, accept_margin -1, the same flood leaves the busiest worker
// at 1.4 to 2 times the mean: bench/README.md, "Balance".)
func TestAcceptBalance(t *testing.T) {
	const (
		workers = 8
		clients = 4
		per     = 3000
		total   = clients * per
	)
	s := newConfSetup(t, floodConf(workers))
	st := s.start()
	defer s.stopAndCheck(st)
	addr := listenAddrs(t, st)["flood"]
	var cs []*floodClient
	for i := range clients {
		cs = append(cs, startFlood(t, addr, fmt.Sprintf("127.0.0.%d", 2+i), per))
	}
	for _, c := range cs {
		c.ready(t, 2*time.Minute)
	}
	counts := s.listenerConns("flood", total)
	if len(counts) != workers {
		t.Fatalf("%d workers in status, want %d: %v", len(counts), workers, counts)
	}
	vals := slices.Sorted(func(yield func(int64) bool) {
		for _, n := range counts {
			if !yield(n) {
				return
			}
		}
	})
	mean := float64(total) / workers
	t.Logf("connections per worker (sorted): %v; max/mean %.2f, min/mean %.2f", vals, float64(vals[workers-1])/mean, float64(vals[0])/mean)
	if float64(vals[workers-1]) > 1.25*mean {
		t.Errorf("a worker holds %d connections, more than 1.25 times the mean %.0f: %v", vals[workers-1], mean, counts)
	}
	// The pauses that did it are in status (and goes_accept_pauses_total).
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	var pauses uint64
	for _, w := range st.Workers {
		pauses += w.AcceptPauses
	}
	if pauses == 0 {
		t.Errorf("the workers report no accept pause")
	}
	t.Logf("accept pauses: %d", pauses)
}

// TestAcceptBalanceSingleWorker: one worker alone takes a whole flood.
func TestAcceptBalanceSingleWorker(t *testing.T) {
	const n = 4000
	s := newConfSetup(t, floodConf(1))
	st := s.start()
	defer s.stopAndCheck(st)
	c := startFlood(t, listenAddrs(t, st)["flood"], "127.0.0.2", n)
	c.ready(t, 2*time.Minute)
	s.listenerConns("flood", n)
}

// TestAcceptBalancePeersStopped: the workers of a listener hold about a
// quarter of 2,000 connections each; three of them are stopped (kill
// -STOP: they cannot accept, and their share slots still count them).
// The last one takes a flood of 3,000 more, far above its share: a
// worker above its share that sees nobody else accept goes on
// accepting, so the accept queue is never left unserved.
func TestAcceptBalancePeersStopped(t *testing.T) {
	const (
		first = 2000
		more  = 3000
	)
	s := newConfSetup(t, floodConf(4))
	st := s.start()
	defer s.stopAndCheck(st)
	addr := listenAddrs(t, st)["flood"]
	startFlood(t, addr, "127.0.0.2", first).ready(t, 2*time.Minute)
	before := s.listenerConns("flood", first)

	var alive ipc.Worker
	var stopped []int
	for _, w := range st.Workers {
		if w.Name != "flood" {
			continue
		}
		if alive.PID == 0 {
			alive = w
			continue
		}
		if err := syscall.Kill(w.PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped = append(stopped, w.PID)
	}
	t.Cleanup(func() {
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	for _, pid := range stopped {
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "worker stopped", func() error {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return err
			}
			// The state follows the command name in parentheses.
			if _, rest, _ := strings.Cut(string(b), ") "); !strings.HasPrefix(rest, "T") {
				return fmt.Errorf("pid %d: stat %q", pid, b)
			}
			return nil
		})
	}

	startFlood(t, addr, "127.0.0.3", more).ready(t, 2*time.Minute)
	// Only the running worker answers; its count grows by every one.
	testkit.Eventually(t, testkit.Wait, 50*time.Millisecond, "the running worker counts the flood", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		for _, w := range st.Workers {
			if w.PID == alive.PID {
				if w.Connections != before[alive.ID]+more {
					return fmt.Errorf("worker %d holds %d, want %d+%d", w.ID, w.Connections, before[alive.ID], more)
				}
				return nil
			}
		}
		return fmt.Errorf("worker pid %d not in status", alive.PID)
	})
	for _, pid := range stopped {
		syscall.Kill(pid, syscall.SIGCONT)
	}
}
