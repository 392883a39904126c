//go:build unix

package main_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
)

// stoppedBound is what a CLI verb may take against a master that does
// not answer (issue 18: stop and reload waited forever).
const stoppedBound = 20 * time.Second

// TestCLIStoppedMaster: against a master stopped by SIGSTOP, every verb
// gives up within 20 s (the default --timeout is 10 s), exits non-zero
// and names the master's pid; --timeout shortens the wait. What the
// verbs asked is not done when the master resumes (their clients gave
// up): it serves on and stops on the next stop.
func TestCLIStoppedMaster(t *testing.T) {
	s := newSetup(t, "10s")
	st := s.start()
	pid := st.Master.PID
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, pid)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	type run struct {
		args []string
		res  proctest.Result
		took time.Duration
	}
	runs := []*run{
		{args: []string{"stop"}},
		{args: []string{"stop", "-g"}},
		{args: []string{"reload"}},
		{args: []string{"restart", "-d"}},
		{args: []string{"status"}},
		{args: []string{"connections"}},
		{args: []string{"status", "--timeout", "2s"}},
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() {
			t0 := time.Now()
			r.res = s.cli(r.args...)
			r.took = time.Since(t0)
		})
	}
	wg.Wait()
	want := fmt.Sprintf("master pid %d did not answer within", pid)
	for _, r := range runs {
		t.Logf("%v against the stopped master: exit %d after %v: %s", r.args, r.res.Code, r.took.Round(time.Millisecond), strings.TrimSpace(r.res.Stderr))
		switch {
		case r.res.Code == 0:
			t.Errorf("%v exited 0 against a stopped master: %s", r.args, r.res)
		case r.took > stoppedBound:
			t.Errorf("%v took %v, want at most %v", r.args, r.took, stoppedBound)
		case !strings.Contains(r.res.Stderr, want) || !strings.Contains(r.res.Stderr, fmt.Sprintf("kill -CONT %d", pid)):
			t.Errorf("%v: stderr %q does not say %q and how to go on", r.args, r.res.Stderr, want)
		}
	}
	if r := runs[len(runs)-1]; r.took < 2*time.Second || r.took > 10*time.Second {
		t.Errorf("status --timeout 2s took %v", r.took)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	// The master reads what the verbs sent before they gave up (stop,
	// stop -g, restart's stop; reload and the others gave up on a ping or
	// a request that changes nothing) and drops it.
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the given-up stops dropped", func() error {
		n := 0
		for _, l := range s.logLines() {
			if strings.Contains(l, "control request dropped") && strings.Contains(l, `"request":"stop"`) {
				n++
			}
		}
		if n < 3 {
			return fmt.Errorf("%d stop requests dropped", n)
		}
		return nil
	})
	after, err := s.status()
	if err != nil || after.Master.PID != pid || after.Master.State != "running" {
		t.Fatalf("after SIGCONT: status %+v, %v; want master pid %d running", after.Master, err, pid)
	}
	s.stopAndCheck(st)
}

// TestStopProgress: a graceful stop drains for longer than --timeout (a
// client holds a connection until the stop timeout, 5 s); the master
// reports its progress every second, so the CLI waits the drain out and
// prints how it goes every 3 s instead of giving up.
func TestStopProgress(t *testing.T) {
	s := newSetup(t, "5s")
	st := s.start()
	c, err := net.Dial("tcp", s.textAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hi\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
		t.Fatalf("text echo: %q, %v", line, err)
	}
	t0 := time.Now()
	res := s.cli("stop", "-g", "--timeout", "2s")
	took := time.Since(t0)
	t.Logf("stop -g --timeout 2s: exit %d after %v\nstdout:\n%s\nstderr:\n%s", res.Code, took.Round(time.Millisecond), res.Stdout, res.Stderr)
	if res.Code != 0 || !strings.Contains(res.Stdout, "stopped") {
		t.Fatalf("stop -g --timeout 2s: %s", res)
	}
	if took < 3*time.Second {
		t.Fatalf("the drain took %v: the test wants one longer than --timeout", took)
	}
	want := fmt.Sprintf("stop: master pid %d stopping, ", st.Master.PID)
	if !strings.Contains(res.Stderr, want) || !strings.Contains(res.Stderr, "connections left after") {
		t.Fatalf("stop -g printed no progress (%q): %s", want, res)
	}
	s.checkGone(st)
}

// TestReloadProgress: a reload right after a reload waits for the
// previous generation's drain (a client holds a connection to it until
// the stop timeout, 5 s) before its new master starts: longer than
// --timeout, and the CLI waits it out on the master's progress reports,
// which say what it waits for.
func TestReloadProgress(t *testing.T) {
	s := newSetup(t, "5s")
	s.start()
	c, err := net.Dial("tcp", s.textAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hi\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
		t.Fatalf("text echo: %q, %v", line, err)
	}
	s.mustCLI("reload") // generation 1 drains, held up by c
	t0 := time.Now()
	res := s.cli("reload", "--timeout", "2s")
	took := time.Since(t0)
	t.Logf("reload --timeout 2s: exit %d after %v\nstdout:\n%s\nstderr:\n%s", res.Code, took.Round(time.Millisecond), res.Stdout, res.Stderr)
	if res.Code != 0 || !strings.Contains(res.Stdout, "reloaded") {
		t.Fatalf("reload --timeout 2s: %s", res)
	}
	if took < 3*time.Second {
		t.Fatalf("the reload took %v: the test wants one longer than --timeout", took)
	}
	if !strings.Contains(res.Stderr, "reload: master pid") || !strings.Contains(res.Stderr, "the previous generation drains") {
		t.Fatalf("reload printed no progress: %s", res)
	}
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	s.stopAndCheck(st)
}

// waitStopped waits until every thread of process pid has stopped (state
// T in /proc, where there is one): kill returns before they all have.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the master stopped", func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		// pid (comm) state ...: the state follows the last ')'.
		_, rest, _ := strings.Cut(string(b), ") ")
		if !strings.HasPrefix(rest, "T") {
			return fmt.Errorf("state %.1s", rest)
		}
		return nil
	})
}
