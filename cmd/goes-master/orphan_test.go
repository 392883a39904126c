//go:build linux

package main_test

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// wrkResult is what wrk printed: its totals and the errors it counted.
type wrkResult struct {
	out                                   string
	requests                              int
	connect, read, write, timeout, non2xx int
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(t *testing.T, out string) wrkResult {
	t.Helper()
	r := wrkResult{out: out}
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("wrk printed no total:\n%s", out)
	}
	r.requests, _ = strconv.Atoi(m[1])
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		r.connect, _ = strconv.Atoi(m[1])
		r.read, _ = strconv.Atoi(m[2])
		r.write, _ = strconv.Atoi(m[3])
		r.timeout, _ = strconv.Atoi(m[4])
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	return r
}

func (r wrkResult) errors() int { return r.connect + r.read + r.write + r.timeout + r.non2xx }

func (r wrkResult) String() string {
	return fmt.Sprintf("%d requests, socket errors: connect %d, read %d, write %d, timeout %d; non-2xx %d",
		r.requests, r.connect, r.read, r.write, r.timeout, r.non2xx)
}

// startWrk runs wrk -c50 against the HTTP listener for d (bounded).
func startWrk(t *testing.T, addr string, d time.Duration) <-chan wrkResult {
	t.Helper()
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatal("wrk not found (apt-get install wrk; .ci/run installs it)")
	}
	done := make(chan wrkResult, 1)
	cmd := exec.Command("wrk", "-t2", "-c50", "-d"+d.String(), "--timeout", "5s", "http://"+addr+"/")
	go func() {
		out, err := cmd.CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nwrk: "+err.Error())...)
		}
		done <- parseWrk(t, string(out))
	}()
	return done
}

func pidsOf(st ipc.Status) []int {
	var pids []int
	for _, w := range st.Workers {
		if w.MasterPID == st.Master.PID {
			pids = append(pids, w.PID)
		}
	}
	return pids
}

// TestMasterKilledUnderLoad: kill -9 of the master under wrk -c50, start
// again a second later: the orphaned workers serve until the new master's
// workers accept on the sockets it took from them, then drain and exit.
// Not one request is lost.
func TestMasterKilledUnderLoad(t *testing.T) {
	s := newConfSetup(t, `{"log_level": "info", "stop_timeout": "10s", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"}]}`)
	st := s.start()
	load := startWrk(t, s.httpAddr, 6*time.Second)
	time.Sleep(time.Second) // load before the kill: the point of the test, not a wait for readiness
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(time.Second) // the operator (or systemd's RestartSec) takes a second
	res := s.cli("start", "-d")
	t.Logf("start after kill -9 (%v after it): %s", time.Since(killed), res)
	w := <-load
	t.Logf("wrk: %s", w)
	if res.Code != 0 {
		t.Fatalf("start after kill -9 failed: %s\nwrk: %s", res, w.out)
	}
	if w.errors() != 0 || w.requests == 0 {
		t.Errorf("wrk across kill -9 and start: %s\n%s", w, w.out)
	}
	st2, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the orphans exit after their drain", func() error {
		for _, pid := range pidsOf(st) {
			if proctest.Alive(pid) {
				return fmt.Errorf("orphan pid %d alive", pid)
			}
		}
		return nil
	})
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatalf("the new master does not serve: %v", err)
	}
	if !strings.Contains(s.mustCLI("status").Stdout, strconv.Itoa(st2.Master.PID)) {
		t.Fatal("status does not name the new master")
	}
	s.stopAndCheck(st2)
}

// TestOrphanTimeout: orphans that no new master adopts serve for their
// orphan timeout, then drain and exit.
func TestOrphanTimeout(t *testing.T) {
	const timeout = 3 * time.Second
	s := newConfSetup(t, `{"log_level": "info", "orphan_timeout": "3s", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"}]}`)
	st := s.start()
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Serve until the timeout: the last answered request comes late.
	var lastOK time.Time
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "the orphans stop serving", func() error {
		if err := httpGet(s.httpAddr); err == nil {
			lastOK = time.Now()
			return errors.New("still serving")
		}
		return nil
	})
	if served := lastOK.Sub(killed); served < timeout-500*time.Millisecond {
		t.Fatalf("the orphans served %v after the master died, want about the orphan timeout %v", served, timeout)
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the orphans exit", func() error {
		for _, pid := range pidsOf(st) {
			if proctest.Alive(pid) {
				return fmt.Errorf("orphan pid %d alive", pid)
			}
		}
		return nil
	})
	if gone := time.Since(killed); gone < timeout {
		t.Fatalf("the orphans exited %v after the master died, before the orphan timeout %v", gone, timeout)
	}
	for _, w := range st.Workers {
		if n := s.countLog("no new master adopted this orphan: draining", w.ID); n != 1 {
			t.Fatalf("worker %d logged the end of its orphan time %d times", w.ID, n)
		}
	}
	if left := orphanSockets(t, s); len(left) != 0 {
		t.Fatalf("worker sockets left behind: %v", left)
	}
}

func orphanSockets(t *testing.T, s *setup) []string {
	t.Helper()
	list, err := filepath.Glob(filepath.Join(s.runDir, "worker-*.sock"))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestStartRace: two starts racing after the master died: one adopts the
// orphans and serves, the other says a master runs; nothing is lost.
func TestStartRace(t *testing.T) {
	s := newConfSetup(t, `{"log_level": "info", "stop_timeout": "10s", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"}]}`)
	st := s.start()
	load := startWrk(t, s.httpAddr, 4*time.Second)
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	results := make(chan proctest.Result, 2)
	for i := 0; i < 2; i++ {
		go func() { results <- s.cli("start", "-d") }()
	}
	a, b := <-results, <-results
	if a.Code != 0 {
		a, b = b, a
	}
	if a.Code != 0 || b.Code == 0 || !strings.Contains(b.Stderr+b.Stdout, "already running") {
		t.Fatalf("two starts: want one to start and the other to say a master runs:\n%s\n%s", a, b)
	}
	w := <-load
	t.Logf("wrk: %s", w)
	if w.errors() != 0 || w.requests == 0 {
		t.Errorf("wrk across kill -9 and two starts: %s\n%s", w, w.out)
	}
	if n := s.countLog("adopted the listening socket of an orphan", -1); n != 1 {
		t.Errorf("%d adoptions logged, want 1", n)
	}
	st2, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	s.processesGone(st)
	s.stopAndCheck(st2)
}
