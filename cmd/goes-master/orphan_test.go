//go:build linux

package main_test

import (
	"errors"
	"fmt"
	"os"
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

// parentOf returns the parent pid of pid (0: gone).
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, not ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// childrenOf lists the processes whose parent is pid (/proc), of pids
// above floor.
func childrenOf(pid, floor int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child <= floor {
			continue
		}
		if parentOf(child) == pid {
			out = append(out, child)
		}
	}
	return out
}

// stopChildren waits until pid has started n worker processes (of pids
// above floor) and stops each (SIGSTOP) as soon as it has exec'd, before
// it can tell its master that it is ready; t.Cleanup lets them go on.
func stopChildren(t *testing.T, pid, floor, n int) []int {
	t.Helper()
	var kids []int
	seen := map[int]bool{}
	testkit.Eventually(t, 20*time.Second, 50*time.Microsecond, "the new master's workers started", func() error {
		for _, k := range childrenOf(pid, floor) {
			// Not before the exec: os/exec waits for it, and the
			// master would start no other worker.
			env, _ := os.ReadFile("/proc/" + strconv.Itoa(k) + "/environ")
			if !seen[k] && strings.Contains(string(env), "GOES_ROLE=worker") {
				syscall.Kill(k, syscall.SIGSTOP)
				seen[k] = true
				kids = append(kids, k)
			}
		}
		if len(kids) < n {
			return fmt.Errorf("%d of %d", len(kids), n)
		}
		return nil
	})
	t.Cleanup(func() { cont(kids) })
	return kids
}

func cont(pids []int) {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
	}
}

// maxPID is the highest pid of st: the processes started later have
// higher ones (pids wrap around only past pid_max).
func maxPID(st ipc.Status) int {
	n := st.Master.PID
	for _, w := range st.Workers {
		n = max(n, w.PID)
	}
	return n
}

func allGone(t *testing.T, d time.Duration, what string, pids []int) {
	t.Helper()
	testkit.Eventually(t, d, testkit.Poll, what, func() error {
		for _, pid := range pids {
			if proctest.Alive(pid) {
				return fmt.Errorf("pid %d alive", pid)
			}
		}
		return nil
	})
}

// TestKilledDuringAdoption: the master that adopts the orphans is killed
// (kill -9) once it has their sockets and has started its workers, before
// they serve. The orphans serve on; so do its workers, orphans in turn.
// The next start adopts both and drains both; wrk sees no error.
func TestKilledDuringAdoption(t *testing.T) {
	s := newConfSetup(t, `{"log_level": "info", "stop_timeout": "10s", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"},
  {"name": "udp", "listen": "udp://127.0.0.1:0", "count": 1}]}`)
	st := s.start()
	load := startWrk(t, s.httpAddr, 6*time.Second)
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b := proctest.Start(t, s.bin, "start", "--run-dir", s.runDir, "--config", s.conf)
	bWorkers := stopChildren(t, b.Cmd.Process.Pid, maxPID(st), 3)
	if err := syscall.Kill(b.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Wait(10 * time.Second)
	cont(bWorkers)
	out := b.Output()
	if n := strings.Count(out, "adopted the listening socket of an orphan"); n != 2 {
		t.Fatalf("the second master adopted %d sockets, want 2:\n%s", n, out)
	}
	// Its workers are stopped as soon as they exec; should one have said
	// ready first (a loaded machine), the master may have served: the
	// outcome must be the same.
	t.Logf("the second master was killed before it served: %v", !strings.Contains(out, "master ready"))
	udpEcho(t, s.udpAddr) // between the masters
	st3 := s.start()
	w := <-load
	t.Logf("wrk: %s", w)
	if w.errors() != 0 || w.requests == 0 {
		t.Errorf("wrk across two kills and a start: %s\n%s", w, w.out)
	}
	allGone(t, 20*time.Second, "the orphans of both masters exit", append(pidsOf(st), bWorkers...))
	udpEcho(t, s.udpAddr) // after the adoption, from the third master's worker
	s.stopAndCheck(st3)
}

// TestReloadKilledNewMaster: the master a reload starts is killed once it
// has started its workers, before they serve: the reload fails, the old
// generation serves on, and it tells the orphaned workers of the dead new
// master to drain (they would serve for the orphan timeout otherwise).
func TestReloadKilledNewMaster(t *testing.T) {
	s := newConfSetup(t, `{"log_level": "info", "stop_timeout": "10s", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"}]}`)
	st := s.start()
	load := startWrk(t, s.httpAddr, 4*time.Second)
	var kids []int
	// The new master's workers are stopped as soon as they exec, before
	// they can say ready; should they have said it first (a loaded
	// machine), the reload succeeds: try again on the new master.
	for try := 0; ; try++ {
		reload := make(chan proctest.Result, 1)
		go func() { reload <- s.cli("reload") }()
		var newPID int
		testkit.Eventually(t, 20*time.Second, 50*time.Microsecond, "the new master", func() error {
			if k := childrenOf(st.Master.PID, maxPID(st)); len(k) > 0 {
				newPID = k[0]
				return nil
			}
			return errors.New("not yet")
		})
		kids = stopChildren(t, newPID, newPID, 2)
		if err := syscall.Kill(newPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cont(kids)
		res := <-reload
		if res.Code != 0 && strings.Contains(res.Stderr, "reload failed") {
			break
		}
		if res.Code != 0 || try == 2 {
			t.Fatalf("reload whose new master was killed: %s", res)
		}
		t.Logf("the new master served before it was killed (%s): again", res)
		var err error
		if st, err = s.status(); err != nil {
			t.Fatal(err)
		}
	}
	w := <-load
	t.Logf("wrk: %s", w)
	if w.errors() != 0 || w.requests == 0 {
		t.Errorf("wrk across a failed reload: %s\n%s", w, w.out)
	}
	allGone(t, 20*time.Second, "the dead new master's workers exit", kids)
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if cur.Master.PID != st.Master.PID {
		t.Fatalf("master %d serves, want %d", cur.Master.PID, st.Master.PID)
	}
	s.stopAndCheck(cur)
}
