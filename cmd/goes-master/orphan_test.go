//go:build linux

package main_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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

// startWrk runs wrk -c50 against the HTTP listener for d (bounded); what
// it printed comes on the channel (parseWrk reads it).
func startWrk(t *testing.T, addr string, d time.Duration) <-chan string {
	t.Helper()
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatal("wrk not found (apt-get install wrk; .ci/run installs it)")
	}
	done := make(chan string, 1)
	cmd := exec.Command("wrk", "-t2", "-c50", "-d"+d.String(), "--timeout", "5s", "http://"+addr+"/")
	go func() {
		out, err := cmd.CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nwrk: "+err.Error())...)
		}
		done <- string(out)
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
	w := parseWrk(t, <-load)
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
	masterDead(t, s, st.Master.PID)
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
	w := parseWrk(t, <-load)
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

// maxPID is the highest pid of st: the processes started later have
// higher ones (pids wrap around only past pid_max).
func maxPID(st ipc.Status) int {
	n := st.Master.PID
	for _, w := range st.Workers {
		n = max(n, w.PID)
	}
	return n
}

// certGate is a TLS listener's cert_file as a FIFO: a worker of that
// listener cannot start (it reads the file) until the test lets it
// (open), one worker at a time.
type certGate struct {
	path string
	pem  []byte
}

func newCertGate(t *testing.T) *certGate {
	t.Helper()
	certPEM, _ := testkit.CertPEM(t)
	g := &certGate{path: filepath.Join(t.TempDir(), "cert.pem"), pem: certPEM}
	if err := syscall.Mkfifo(g.path, 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// open lets one worker read the certificate, waiting up to d for it.
func (g *certGate) open(t *testing.T, d time.Duration) {
	t.Helper()
	var f *os.File
	testkit.Eventually(t, d, testkit.Poll, "a worker reading the certificate", func() error {
		var err error
		// Non-blocking: ENXIO until a reader has it open.
		f, err = os.OpenFile(g.path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err
	})
	_, err := f.Write(g.pem)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Until the reader is done, another open would write to it too.
	testkit.Eventually(t, d, testkit.Poll, "the worker done with the certificate", func() error {
		f, err := os.OpenFile(g.path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			f.Close()
			return errors.New("still reading")
		}
		return nil
	})
}

// TestReloadKilledNewMaster: the master a reload starts is killed once it
// has started its workers, before they all serve: the reload fails, the
// old generation serves on, and it tells the orphaned workers of the dead
// new master to drain (they would serve for the orphan timeout otherwise).
func TestReloadKilledNewMaster(t *testing.T) {
	s, gate := gatedSetup(t)
	st := gatedStart(t, s, gate)
	load := startWrk(t, s.httpAddr, 4*time.Second)
	reload := make(chan proctest.Result, 1)
	go func() { reload <- s.cli("reload") }()
	// The new master's TLS worker waits for its certificate: the new
	// master cannot serve. Its HTTP and UDP workers start.
	var newPID int
	var kids []int
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the new master's workers", func() error {
		for _, pid := range childrenOf(st.Master.PID, maxPID(st)) {
			if k := childrenOf(pid, pid); len(k) == 4 {
				newPID, kids = pid, k
				return nil
			}
		}
		return errors.New("not yet")
	})
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the new master's HTTP workers ready", func() error {
		b, _ := os.ReadFile(filepath.Join(s.runDir, "goes.log"))
		if n := strings.Count(string(b), `"message":"worker ready"`); n < 4+3 {
			return fmt.Errorf("%d workers ready", n)
		}
		return nil
	})
	if err := syscall.Kill(newPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if res := <-reload; res.Code == 0 || !strings.Contains(res.Stderr, "reload failed") {
		t.Fatalf("reload whose new master was killed: %s", res)
	}
	gate.open(t, 20*time.Second) // the dead new master's TLS worker goes on
	w := parseWrk(t, <-load)
	t.Logf("wrk: %s", w)
	if w.errors() != 0 || w.requests == 0 {
		t.Errorf("wrk across a failed reload: %s\n%s", w, w.out)
	}
	allGone(t, 20*time.Second, "the dead new master's workers exit", kids)
	if n := s.countLog("found an orphan of a master that died: it drains", -1); n < 3 {
		t.Errorf("the old master found %d orphans, want the HTTP and UDP workers of the dead new master", n)
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if cur.Master.PID != st.Master.PID {
		t.Fatalf("master %d serves, want %d", cur.Master.PID, st.Master.PID)
	}
	s.stopAndCheck(cur)
}

// gatedSetup is a goes-master whose TLS worker waits for the test to
// give it its certificate (certGate): a master cannot serve until then.
func gatedSetup(t *testing.T) (*setup, *certGate) {
	t.Helper()
	gate := newCertGate(t)
	certPEM, keyPEM := testkit.CertPEM(t)
	gate.pem = certPEM
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newConfSetup(t, fmt.Sprintf(`{"log_level": "info", "stop_timeout": "10s", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"},
  {"name": "udp", "listen": "udp://127.0.0.1:0", "count": 1},
  {"name": "tls", "listen": "tls://127.0.0.1:0", "count": 1, "cert_file": %q, "key_file": %q}]}`, gate.path, keyFile))
	return s, gate
}

// gatedStart is setup.start for a gatedSetup.
func gatedStart(t *testing.T, s *setup, gate *certGate) ipc.Status {
	t.Helper()
	started := make(chan proctest.Result, 1)
	go func() { started <- s.cli("start", "-d") }()
	gate.open(t, 20*time.Second)
	if res := <-started; res.Code != 0 || !strings.Contains(res.Stdout, "started (pid") {
		t.Fatalf("start -d: %s", res)
	}
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	s.learnAddrs(st)
	return st
}

// TestKilledDuringAdoption: the master that adopts the orphans is killed
// (kill -9) once it has their sockets and most of its workers serve, but
// before it does (its TLS worker waits for its certificate). The orphans
// serve on; so do its workers, orphans in turn. The next start adopts
// both and drains both; wrk sees no error, UDP datagrams are answered.
func TestKilledDuringAdoption(t *testing.T) {
	s, gate := gatedSetup(t)
	st := gatedStart(t, s, gate)
	load := startWrk(t, s.httpAddr, 6*time.Second)
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	masterDead(t, s, st.Master.PID)
	b := proctest.Start(t, s.bin, "start", "--run-dir", s.runDir, "--config", s.conf)
	bPID := b.Cmd.Process.Pid
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the second master's HTTP and UDP workers ready", func() error {
		if n := strings.Count(b.Output(), `"message":"worker ready"`); n < 3 {
			return fmt.Errorf("%d ready", n)
		}
		return nil
	})
	bWorkers := childrenOf(bPID, bPID)
	if err := syscall.Kill(bPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Wait(10 * time.Second)
	out := b.Output()
	if n := strings.Count(out, "adopted the listening socket of an orphan"); n != 3 || strings.Contains(out, "master ready") ||
		len(bWorkers) != 4 {
		t.Fatalf("the second master adopted %d sockets (want 3) and started %d workers (want 4), not serving yet:\n%s",
			n, len(bWorkers), out)
	}
	gate.open(t, 20*time.Second) // its TLS worker goes on, masterless
	udpEcho(t, s.udpAddr)        // between the masters
	st3 := gatedStart(t, s, gate)
	w := parseWrk(t, <-load)
	t.Logf("wrk: %s", w)
	if w.errors() != 0 || w.requests == 0 {
		t.Errorf("wrk across two kills and a start: %s\n%s", w, w.out)
	}
	allGone(t, 20*time.Second, "the orphans of both masters exit", append(pidsOf(st), bWorkers...))
	udpEcho(t, s.udpAddr) // from the third master's worker
	s.stopAndCheck(st3)
}

// TestOrphansAsUser: workers running as another user (user: nobody) are
// adopted too: their worker sockets are the master's (root's, in its
// owner-only run directory), an orphan admits the new master (root), and
// nothing is left in the run directory once they have exited.
func TestOrphansAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s := newConfSetup(t, `{"log_level": "info", "user": "nobody", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"},
  {"name": "udp", "listen": "udp://127.0.0.1:0", "count": 1}]}`)
	st := s.start()
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	masterDead(t, s, st.Master.PID)
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatalf("the orphans do not serve: %v", err)
	}
	st2 := s.start()
	if n := s.countLog("adopted the listening socket of an orphan", -1); n != 2 {
		t.Fatalf("%d sockets adopted, want 2", n)
	}
	allGone(t, 20*time.Second, "the orphans exit", pidsOf(st))
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	udpEcho(t, s.udpAddr)
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "only the new workers' sockets left", func() error {
		if left := orphanSockets(t, s); len(left) != 3 {
			return fmt.Errorf("worker sockets: %v", left)
		}
		return nil
	})
	s.stopAndCheck(st2)
	if left := orphanSockets(t, s); len(left) != 0 {
		t.Fatalf("worker sockets left after stop: %v", left)
	}
}

// TestTLSAndUnixAdopted: TLS (the raw TCP socket under it), Unix and UDP
// listeners are adopted from orphans like HTTP: they answer between the
// masters and after, on the same addresses and path.
func TestTLSAndUnixAdopted(t *testing.T) {
	s, sock := tlsUnixUDPSetup(t)
	st := s.start()
	addrs := listenAddrs(t, st)
	check := func(when string) {
		t.Helper()
		c, err := tls.Dial("tcp", addrs["tls"], &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("%s: tls: %v", when, err)
		}
		echoRaw(t, c, "over tls")
		u, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("%s: unix: %v", when, err)
		}
		echoRaw(t, u, "over unix")
		udpEcho(t, addrs["udp"])
	}
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	masterDead(t, s, st.Master.PID)
	check("orphans")
	st2 := s.start()
	if n := s.countLog("adopted the listening socket of an orphan", -1); n != 3 {
		t.Fatalf("%d sockets adopted, want 3", n)
	}
	allGone(t, 20*time.Second, "the orphans exit", pidsOf(st))
	check("adopted")
	if got := listenAddrs(t, st2); got["tls"] != addrs["tls"] || got["udp"] != addrs["udp"] {
		t.Fatalf("addresses %v, want %v", got, addrs)
	}
	s.stopAndCheck(st2)
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unix socket left behind: %v", err)
	}
}
