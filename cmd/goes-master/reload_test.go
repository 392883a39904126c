//go:build unix

package main_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
)

// loadResult counts what a load saw. Every request is sent once on a raw
// connection: nothing retries behind the counters' back.
type loadResult struct {
	ok, failed, non2xx int
	latencies          []time.Duration
	firstErrs          []string
}

func (r *loadResult) add(o loadResult) {
	r.ok += o.ok
	r.failed += o.failed
	r.non2xx += o.non2xx
	r.latencies = append(r.latencies, o.latencies...)
	if len(r.firstErrs) < 5 {
		r.firstErrs = append(r.firstErrs, o.firstErrs...)
	}
}

func (r *loadResult) p99() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	return r.latencies[len(r.latencies)*99/100]
}

// runLoad sends GET requests from conns clients until stop is closed (or
// 2 minutes pass): keep-alive clients reuse their connection until the
// server says Connection: close; churn clients open one per request.
func runLoad(addr string, conns int, churn bool, stop <-chan struct{}) <-chan loadResult {
	out := make(chan loadResult, 1)
	var wg sync.WaitGroup
	results := make([]loadResult, conns)
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(res *loadResult) {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			fail := func(err error) {
				res.failed++
				if len(res.firstErrs) < 3 {
					res.firstErrs = append(res.firstErrs, err.Error())
				}
				if c != nil {
					c.Close()
					c = nil
				}
			}
			req := "GET / HTTP/1.1\r\nHost: goes\r\n\r\n"
			if churn {
				req = "GET / HTTP/1.1\r\nHost: goes\r\nConnection: close\r\n\r\n"
			}
			for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					if c != nil {
						c.Close()
					}
					return
				default:
				}
				began := time.Now()
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
						c = nil
						fail(err)
						continue
					}
					br = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, req); err != nil {
					fail(err)
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(err)
					continue
				}
				if resp.StatusCode != 200 || string(body) != "hello, goer" {
					res.non2xx++
				} else {
					res.ok++
					res.latencies = append(res.latencies, time.Since(began))
				}
				if resp.Close {
					c.Close()
					c = nil
				}
			}
		}(&results[i])
	}
	go func() {
		wg.Wait()
		var total loadResult
		for _, r := range results {
			total.add(r)
		}
		out <- total
	}()
	return out
}

// upgradeSetup is a goes-master started from a binary path that the test
// swaps with mv between two builds.
type upgradeSetup struct {
	*setup
	live     string
	versions [2]string
	builds   [2]string
}

func newUpgradeSetup(t *testing.T) *upgradeSetup {
	t.Helper()
	s := newSetup(t, "10s")
	u := &upgradeSetup{setup: s, versions: [2]string{"v1.0.0-test", "v2.0.0-test"}}
	dir := t.TempDir()
	for i, v := range u.versions {
		u.builds[i] = filepath.Join(dir, "goes-master-"+v)
		if err := proctest.BuildTo(u.builds[i], ".", "-X main.version="+v); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "live"), 0o755); err != nil {
		t.Fatal(err)
	}
	u.live = filepath.Join(dir, "live", "goes-master")
	u.install(0)
	s.bin = u.live
	return u
}

// install puts build i at the live path the way an operator does:
// copy next to it, then mv over it.
func (u *upgradeSetup) install(i int) {
	u.t.Helper()
	b, err := os.ReadFile(u.builds[i])
	if err != nil {
		u.t.Fatal(err)
	}
	tmp := u.live + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		u.t.Fatal(err)
	}
	if out, err := exec.Command("mv", tmp, u.live).CombinedOutput(); err != nil {
		u.t.Fatalf("mv: %v %s", err, out)
	}
}

// reloads swaps the binary and reloads n times under the running load,
// checking each generation; it returns the time each reload took.
func (u *upgradeSetup) reloads(n int, check bool) []time.Duration {
	t := u.t
	t.Helper()
	st, err := u.status()
	if err != nil {
		t.Fatal(err)
	}
	var took []time.Duration
	for i := 1; i <= n; i++ {
		want := u.versions[i%2]
		u.install(i % 2)
		began := time.Now()
		res := u.cli("reload")
		took = append(took, time.Since(began))
		if res.Code != 0 || !strings.Contains(res.Stdout, "version "+want) {
			t.Fatalf("reload %d: %s", i, res)
		}
		old := st
		var cur ipc.Status
		// The old generation exits fully; status then shows only the new one.
		testkit.Eventually(t, 20*time.Second, testkit.Poll, fmt.Sprintf("reload %d: old generation gone", i), func() error {
			for _, pid := range append([]int{old.Master.PID}, workerPIDs(old)...) {
				if proctest.Alive(pid) {
					return fmt.Errorf("old pid %d alive", pid)
				}
			}
			var err error
			if cur, err = u.status(); err != nil {
				return err
			}
			if len(cur.Others) != 0 {
				return fmt.Errorf("status still shows %d other masters", len(cur.Others))
			}
			return nil
		})
		if !check {
			st = cur
			continue
		}
		if cur.Master.PID == old.Master.PID || cur.Master.Version != want || cur.Master.Generation != old.Master.Generation+1 ||
			cur.Master.State != master.StateRunning {
			t.Fatalf("reload %d: master %+v after %+v", i, cur.Master, old.Master)
		}
		if !strings.Contains(res.Stdout, fmt.Sprintf("master pid %d,", cur.Master.PID)) {
			t.Fatalf("reload %d printed %q, master is %d", i, res.Stdout, cur.Master.PID)
		}
		if pid, err := u.paths().ReadPID(); err != nil || pid != cur.Master.PID {
			t.Fatalf("reload %d: pid file %d (%v), master %d", i, pid, err, cur.Master.PID)
		}
		if len(cur.Workers) != 6 {
			t.Fatalf("reload %d: %d workers", i, len(cur.Workers))
		}
		for _, w := range cur.Workers {
			if w.MasterPID != cur.Master.PID || w.State != master.StateRunning || w.Generation != cur.Master.Generation {
				t.Fatalf("reload %d: worker %+v", i, w)
			}
		}
		st = cur
	}
	return took
}

func workerPIDs(st ipc.Status) []int {
	var pids []int
	for _, w := range st.Workers {
		pids = append(pids, w.PID)
	}
	return pids
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(1, len(ds)))
}

// TestZeroDowntimeReload swaps the binary with mv and reloads 20 times
// under keep-alive load, then 20 times under a load that opens a
// connection per request: no request may fail.
func TestZeroDowntimeReload(t *testing.T) {
	if testing.Short() {
		t.Skip("long integration test (skipped with -short)")
	}
	for _, tc := range []struct {
		name  string
		churn bool
		conns int
	}{
		{name: "keep-alive", conns: 8},
		{name: "churn", churn: true, conns: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpgradeSetup(t)
			st := u.start()
			if st.Master.Version != u.versions[0] {
				t.Fatalf("started %s", st.Master.Version)
			}
			stop := make(chan struct{})
			load := runLoad(u.httpAddr, tc.conns, tc.churn, stop)
			took := u.reloads(20, true)
			close(stop)
			res := <-load
			t.Logf("%s: 20 reloads, %d requests, %d failed, %d non-2xx, p99 %v, mean reload %v (max %v)",
				tc.name, res.ok+res.failed+res.non2xx, res.failed, res.non2xx, res.p99(), mean(took), slicesMax(took))
			if res.failed != 0 || res.non2xx != 0 {
				t.Fatalf("%d requests failed, %d non-2xx; first errors: %q", res.failed, res.non2xx, res.firstErrs)
			}
			if res.ok < 100 {
				t.Fatalf("only %d requests: the load did not run", res.ok)
			}
			cur, err := u.status()
			if err != nil {
				t.Fatal(err)
			}
			u.stopAndCheck(cur)
		})
	}
}

// TestReloadNegativeControl proves the harness can fail: draining workers
// that simply close their connections lose requests.
func TestReloadNegativeControl(t *testing.T) {
	if testing.Short() {
		t.Skip("long integration test (skipped with -short)")
	}
	t.Setenv("GOES_UNSAFE_CLOSE_ON_DRAIN", "1")
	u := newUpgradeSetup(t)
	u.start()
	stop := make(chan struct{})
	load := runLoad(u.httpAddr, 8, false, stop)
	u.reloads(5, false)
	close(stop)
	res := <-load
	t.Logf("negative control: 5 reloads, %d requests, %d failed (%q)", res.ok+res.failed+res.non2xx, res.failed, res.firstErrs)
	if res.failed == 0 {
		t.Fatal("closing connections on drain lost no request: the harness cannot see failures")
	}
	cur, err := u.status()
	if err != nil {
		t.Fatal(err)
	}
	u.stopAndCheck(cur)
}

func slicesMax(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// TestReloadFails: a new binary that exits, or never becomes ready, fails
// the reload clearly and leaves the old generation serving.
func TestReloadFails(t *testing.T) {
	if testing.Short() {
		t.Skip("long integration test (skipped with -short)")
	}
	u := newUpgradeSetup(t)
	// A short upgrade timeout bounds the never-ready case.
	conf, err := os.ReadFile(u.conf)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), `"log_level": "debug",`, `"log_level": "debug", "upgrade_timeout": "2s",`, 1))
	if err := os.WriteFile(u.conf, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	st := u.start()
	// The CLI is a good build; the binary at the live path is broken.
	u.bin = u.builds[0]
	for _, tc := range []struct{ name, script, want string }{
		{name: "exits", script: "#!/bin/sh\necho broken build >&2\nexit 3\n", want: "exit status 3"},
		{name: "never ready", script: "#!/bin/sh\nexec sleep 600\n", want: "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := u.live + ".new"
			if err := os.WriteFile(tmp, []byte(tc.script), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mv", tmp, u.live).CombinedOutput(); err != nil {
				t.Fatalf("mv: %v %s", err, out)
			}
			res := u.cli("reload")
			if res.Code == 0 || !strings.Contains(res.Stderr, "reload failed") || !strings.Contains(res.Stderr, tc.want) ||
				!strings.Contains(res.Stderr, "still serves") {
				t.Fatalf("reload of a broken binary: %s", res)
			}
			cur, err := u.status()
			if err != nil {
				t.Fatal(err)
			}
			if cur.Master.PID != st.Master.PID || cur.Master.State != master.StateRunning || len(cur.Others) != 0 {
				t.Fatalf("after a failed reload: %+v", cur)
			}
			if err := httpGet(u.httpAddr); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A good binary reloads after the failures.
	u.install(1)
	if res := u.cli("reload"); res.Code != 0 || !strings.Contains(res.Stdout, "version "+u.versions[1]) {
		t.Fatalf("reload after the failures: %s", res)
	}
	cur, err := u.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	u.stopAndCheck(cur)
}

// TestReloadDrainTimeout: connections that stay past the drain timeout
// are closed (WebSocket peers get close code 1001 at the timeout; every
// connection is closed a second later, by EOF or a reset, not before and
// not long after), and a reload asked while the previous generation still
// drains waits for it.
func TestReloadDrainTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("long integration test (skipped with -short)")
	}
	const (
		drain   = 2 * time.Second // stop_timeout below
		goodbye = time.Second     // the goodbye second after it (worker.drainWait)
		late    = 3 * time.Second // how late the close may come on a loaded machine
	)
	s := newSetup(t, drain.String())
	st := s.start()
	text := dialText(t, s.textAddr)
	text.echo(t, "held")
	// The held connection's end, read as it happens: when and how.
	type end struct {
		at  time.Time
		err error
	}
	ended := make(chan end, 1)
	text.SetDeadline(time.Now().Add(drain + goodbye + late + 30*time.Second))
	go func() {
		line, err := text.r.ReadString('\n')
		if err == nil {
			err = fmt.Errorf("read %q", line)
		}
		ended <- end{time.Now(), err}
	}()
	ws, wsr := dialWebSocket(t, s.wsAddr)
	// Generation 1's drain starts within the first reload: after asked,
	// before reloaded (the old master drains, then answers).
	asked := time.Now()
	s.mustCLI("reload")
	reloaded := time.Now()
	res := s.mustCLI("reload") // waits for generation 1 to exit
	waited := time.Since(reloaded)
	if !strings.Contains(res.Stdout, "generation 3") {
		t.Fatalf("second reload: %s", res)
	}
	if waited < time.Second {
		t.Errorf("second reload took %v: it did not wait for the draining generation", waited)
	}
	// The raw connection was closed at the drain timeout and its goodbye
	// second: EOF or a reset (not the read deadline), not before the
	// drain began plus both...
	e := <-ended
	if !errors.Is(e.err, io.EOF) && !errors.Is(e.err, syscall.ECONNRESET) {
		t.Fatalf("held text connection: read %v, want EOF or a reset at the drain timeout", e.err)
	}
	if early, by := e.at.Sub(asked), e.at.Sub(reloaded); early < drain+goodbye || by > drain+goodbye+late {
		t.Fatalf("held text connection closed %v after the reload was asked, %v after it answered: want the drain timeout %v and goodbye %v (at most %v late)",
			early, by, drain, goodbye, late)
	}
	t.Logf("held text connection: %v, %v after the reload was asked, %v after it answered", e.err, e.at.Sub(asked), e.at.Sub(reloaded))
	// ... and the WebSocket peer got "going away" first.
	ws.SetDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 4)
	if _, err := io.ReadFull(wsr, head); err != nil || head[0] != 0x88 || int(head[2])<<8|int(head[3]) != 1001 {
		t.Fatalf("websocket close frame: % x, %v", head, err)
	}
	if proctest.Alive(st.Master.PID) {
		t.Fatal("generation 1 master alive")
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	s.stopAndCheck(cur)
}

// TestReloadForeground: in the foreground, reload hands over to a new
// master that keeps running detached from the terminal; the foreground
// process says so and exits once its workers have drained.
func TestReloadForeground(t *testing.T) {
	if testing.Short() {
		t.Skip("long integration test (skipped with -short)")
	}
	s := newSetup(t, "10s")
	fg := proctest.Start(t, s.bin, "start", "--run-dir", s.runDir, "--config", s.conf)
	var st ipc.Status
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "foreground master serving", func() error {
		var err error
		if st, err = s.status(); err != nil {
			return err
		}
		if st.Master.State != master.StateRunning {
			return fmt.Errorf("master is %s", st.Master.State)
		}
		return nil
	})
	s.learnAddrs(st)
	res := s.mustCLI("reload")
	err, done := fg.Wait(15 * time.Second)
	if !done || err != nil {
		t.Fatalf("foreground process after the reload: exited %v, %v\n%s", done, err, fg.Output())
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if cur.Master.PID == st.Master.PID || !strings.Contains(fg.Output(), fmt.Sprintf("upgraded: master pid %d serves now", cur.Master.PID)) {
		t.Fatalf("reload: %s\nforeground output:\n%s", res, fg.Output())
	}
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("stop")
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "process group empty", func() error {
		if !proctest.GroupGone(fg.Pgid) {
			return errors.New("processes left in the foreground group")
		}
		return nil
	})
}

// TestStopDuringDrain: stop also stops a previous generation that still
// drains, so nothing is left running.
func TestStopDuringDrain(t *testing.T) {
	s := newSetup(t, "20s")
	st := s.start()
	held := dialText(t, s.textAddr)
	held.echo(t, "held")
	s.mustCLI("reload")
	var cur ipc.Status
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "old generation draining", func() error {
		var err error
		if cur, err = s.status(); err != nil {
			return err
		}
		if len(cur.Others) != 1 {
			return fmt.Errorf("%d other masters: %+v", len(cur.Others), cur)
		}
		return nil
	})
	began := time.Now()
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
	if proctest.Alive(st.Master.PID) {
		t.Fatal("old master alive after stop")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("stop took %v: it waited for the old generation's drain", took)
	}
}

// TestTLSAndUnixAcrossReload: TLS, Unix and UDP listeners serve before and
// after a reload (the new master inherits them), and stop removes the Unix
// socket file.
func TestTLSAndUnixAcrossReload(t *testing.T) {
	s, sock := tlsUnixUDPSetup(t)
	st := s.start()
	addrs := listenAddrs(t, st)
	tlsAddr, udpAddr := addrs["tls"], addrs["udp"]
	check := func(when string) {
		t.Helper()
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("%s: tls: %v", when, err)
		}
		echoRaw(t, c, "over tls")
		u, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("%s: unix: %v", when, err)
		}
		echoRaw(t, u, "over unix")
		udpEcho(t, udpAddr)
	}
	check("before reload")
	s.mustCLI("reload")
	check("after reload")
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unix socket left behind: %v", err)
	}
}

func echoRaw(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// tlsUnixUDPSetup is a goes-master with one TLS, one Unix and one UDP
// listener, a worker each; sock is the Unix socket's path.
func tlsUnixUDPSetup(t *testing.T) (s *setup, sock string) {
	t.Helper()
	dir := t.TempDir()
	cert, key := testkit.WriteCert(t, dir)
	sock = filepath.Join(dir, "echo.sock")
	conf := filepath.Join(dir, "goes.json")
	body := fmt.Sprintf(`{"listeners": [
  {"name": "tls", "listen": "tls://127.0.0.1:0", "count": 1, "cert_file": %q, "key_file": %q},
  {"name": "unix", "listen": "unix://%s", "count": 1},
  {"name": "udp", "listen": "udp://127.0.0.1:0", "count": 1}
]}`, cert, key, sock)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return &setup{t: t, bin: bin, runDir: filepath.Join(dir, "run"), conf: conf}, sock
}
