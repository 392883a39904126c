//go:build linux

package main_test

import (
	"bufio"
	"fmt"
	"maps"
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
func floodConf(count int) string { return floodConfMargin(count, "") }

// floodConfMargin is floodConf with the listener's accept_margin (none
// when margin is empty: the default).
func floodConfMargin(count int, margin string) string {
	if margin != "" {
		margin = `, "accept_margin": ` + margin
	}
	return fmt.Sprintf(`{
  "log_level": "info",
  "stop_timeout": "5s",
  "listeners": [{"name": "flood", "listen": "text://127.0.0.1:0", "count": %d%s}]
}`, count, margin)
}

// The flood of TestAcceptBalance and its control: 12,000 connections
// from four client processes on one listener of eight workers.
const (
	floodWorkers = 8
	floodClients = 4
	floodPer     = 3000
	floodTotal   = floodClients * floodPer
	floodMean    = float64(floodTotal) / floodWorkers
)

// balanceBound is the most connections a worker may hold after the flood
// with the default accept_margin: 1.25 times the mean. The share rule
// stops a worker at the mean times 1.1 plus 16 (1,666 here: 1.11 times),
// but a paused worker that sees no other accept during its 10 ms pause
// accepts regardless for 10 ms (the queue is never left unserved), and on
// a loaded machine the clients' and workers' stalls set that off: on the
// 2-core machine under -race and load, 28 runs ended at 1.098 to 1.113
// times the mean but three, at 1.136, 1.149 and 1.193. Balancing off, 20
// runs of the control ended at 1.71 to 2.73 times (TestAcceptBalanceOff).
const balanceBound = floodTotal / floodWorkers * 5 / 4

// acceptFlood runs the flood on a fresh master whose listener has
// accept_margin margin ("" for the default) and returns the workers'
// connections, sorted, and the accept pauses they report.
func acceptFlood(t *testing.T, margin string) ([]int64, uint64) {
	t.Helper()
	s := newConfSetup(t, floodConfMargin(floodWorkers, margin))
	st := s.start()
	defer s.stopAndCheck(st)
	addr := listenAddrs(t, st)["flood"]
	var cs []*floodClient
	for i := range floodClients {
		cs = append(cs, startFlood(t, addr, fmt.Sprintf("127.0.0.%d", 2+i), floodPer))
	}
	for _, c := range cs {
		c.ready(t, 2*time.Minute)
	}
	counts := s.listenerConns("flood", floodTotal)
	if len(counts) != floodWorkers {
		t.Fatalf("%d workers in status, want %d: %v", len(counts), floodWorkers, counts)
	}
	vals := slices.Sorted(maps.Values(counts))
	t.Logf("accept_margin %q: connections per worker (sorted): %v; max/mean %.3f, min/mean %.3f", margin, vals,
		float64(vals[floodWorkers-1])/floodMean, float64(vals[0])/floodMean)
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	var pauses uint64
	for _, w := range st.Workers {
		pauses += w.AcceptPauses
	}
	t.Logf("accept pauses: %d", pauses)
	return vals, pauses
}

// TestAcceptBalance: a flood of 12,000 connections from four client
// processes on one listener of eight workers, which share one accept
// queue: no worker holds more than balanceBound, 1.25 times the mean, and
// the pauses that did it are in status. TestAcceptBalanceOff is the
// control.
func TestAcceptBalance(t *testing.T) {
	vals, pauses := acceptFlood(t, "")
	if most := vals[floodWorkers-1]; most > balanceBound {
		t.Errorf("a worker holds %d connections, more than %d (the mean %.0f times 1.25): %v", most, balanceBound, floodMean, vals)
	}
	// The pauses that did it are in status (and goes_accept_pauses_total).
	if pauses == 0 {
		t.Errorf("the workers report no accept pause")
	}
}

// TestAcceptBalanceOff: the control of TestAcceptBalance, the same flood
// with balancing off (accept_margin -1): the kernel alone leaves the
// busiest worker above balanceBound, and no worker pauses.
func TestAcceptBalanceOff(t *testing.T) {
	vals, pauses := acceptFlood(t, "-1")
	if most := vals[floodWorkers-1]; most <= balanceBound {
		t.Errorf("without balancing the busiest worker holds %d connections, within the balanced bound %d: the flood does not show what balancing does: %v",
			most, balanceBound, vals)
	}
	if pauses != 0 {
		t.Errorf("%d accept pauses with balancing off", pauses)
	}
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
