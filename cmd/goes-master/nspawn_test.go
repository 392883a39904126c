//go:build linux

package main_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
)

// TestSystemdUnit boots deploy/goes-master.service under a real systemd,
// as PID 1 of a systemd-nspawn container (the host's /usr bind-mounted
// read-only, a root directory of a few files in TempDir, the host's
// network), and checks what the unit promises:
//
//   - start: ExecStartPre's check passes, READY=1 makes the unit active;
//   - systemctl reload (check --reload, then reload) under a bounded HTTP
//     load: a new master serves, 0 failed requests;
//   - kill -9 of the master: Restart=on-failure starts a new one, which
//     adopts the orphaned workers, 0 failed requests;
//   - systemctl stop: the master drains and the unit is inactive, no goes
//     process left;
//   - the journal has the master's lines at their levels' priorities.
//
// It skips, saying why, only where systemd-nspawn cannot run: not
// installed, or not root.
func TestSystemdUnit(t *testing.T) {
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		t.Skip("systemd-nspawn is not installed (apt-get install systemd systemd-container; .ci/run does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("systemd-nspawn needs root")
	}
	if _, err := os.Stat("/usr/lib/systemd/systemd"); err != nil {
		t.Skipf("no systemd to boot: %v", err)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("nsenter is not installed (util-linux)")
	}
	// nspawn keeps its state under /run/systemd/nspawn, which a machine
	// without systemd running may not have writable.
	if err := ensureNspawnDir(); err != nil {
		t.Skipf("systemd-nspawn cannot run here: /run/systemd/nspawn: %v", err)
	}

	root := t.TempDir()
	os.Chmod(root, 0o755)
	port := proctest.FreePort(t)
	unit, err := os.ReadFile("../../deploy/goes-master.service")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/os-release": "NAME=goes-nspawn-test\nID=goes-nspawn-test\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\ngoes:x:990:990:goes:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":      "root:x:0:\ngoes:x:990:\n",
		"etc/machine-id": "",
		"etc/goes/goes.json": fmt.Sprintf(`{"log_level": "debug", "stop_timeout": "10s", "orphan_timeout": "60s",
  "listeners": [{"name": "web", "listen": "http://127.0.0.1:%d", "count": 2, "handler": "hello"}]}`, port),
		// The binary lives under /opt: /usr is the host's, read-only.
		"etc/systemd/system/goes-master.service": strings.ReplaceAll(string(unit), "/usr/local/bin/goes-master", "/opt/goes/goes-master"),
	}
	for _, d := range []string{"etc/systemd/system/multi-user.target.wants", "etc/goes", "opt/goes", "usr", "var/log", "run", "tmp", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/systemd/system/goes-master.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/goes-master.service")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "opt/goes/goes-master"), b, 0o755); err != nil {
		t.Fatal(err)
	}

	out, err := os.Create(filepath.Join(t.TempDir(), "nspawn.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	boot := exec.Command(nspawn, "--register=no", "--keep-unit", "--quiet", "--console=pipe",
		"-D", root, "--bind-ro=/usr", "-b", "systemd.unit=multi-user.target")
	boot.Stdout, boot.Stderr = out, out
	boot.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := boot.Start(); err != nil {
		t.Skipf("systemd-nspawn cannot run here: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- boot.Wait() }()
	var leader int // the container's PID 1, seen from here
	t.Cleanup(func() {
		// Halt the container (nspawn passes SIGTERM on as a shutdown
		// request); past a bound, kill its PID 1, which ends every
		// process of its PID namespace.
		boot.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			if leader > 0 {
				syscall.Kill(leader, syscall.SIGKILL)
			}
			syscall.Kill(-boot.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("systemd-nspawn output:\n%s", b)
		}
	})
	testkit.Eventually(t, 30*time.Second, testkit.Poll, "the container's PID 1", func() error {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("systemd-nspawn exited: %v\n%s", err, b)
		default:
		}
		leader = containerLeader(boot.Process.Pid)
		if leader == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	// in runs a command in the container (its namespaces: systemctl talks
	// to its systemd).
	in := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, nsenter, append([]string{"-t", strconv.Itoa(leader), "-m", "-u", "-i", "-n", "-p", "--"}, args...)...)
		b, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	mustIn := func(args ...string) string {
		t.Helper()
		s, err := in(args...)
		if err != nil {
			j, _ := in("journalctl", "--no-pager", "-o", "cat", "-u", "goes-master")
			t.Fatalf("%v: %v: %s\njournal of goes-master:\n%s", args, err, s, j)
		}
		return s
	}
	state := func() string { s, _ := in("systemctl", "is-active", "goes-master"); return s }
	mainPID := func() string { return mustIn("systemctl", "show", "-p", "MainPID", "--value", "goes-master") }

	// Start: active once the master said READY=1 (Type=notify).
	testkit.Eventually(t, 60*time.Second, 100*time.Millisecond, "goes-master active", func() error {
		switch s := state(); s {
		case "active":
			return nil
		case "failed":
			j, _ := in("journalctl", "--no-pager", "-o", "cat", "-u", "goes-master")
			t.Fatalf("goes-master failed to start:\n%s", j)
			return nil
		default:
			return fmt.Errorf("goes-master is %q", s)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if code, _, err := fetch(base); err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v", base, code, err)
	}
	t.Logf("started: MainPID %s", mainPID())

	// A bounded load through what follows: 4 clients, keep-alive, at
	// most 3 minutes or 200000 requests.
	ld := startLoad(base, 4, 200000, 3*time.Minute)

	// Reload: check --reload, then reload; a new master serves.
	first := mainPID()
	mustIn("systemctl", "reload", "goes-master")
	testkit.Eventually(t, 30*time.Second, testkit.Poll, "a new master after the reload", func() error {
		if p := mainPID(); p == first || p == "0" {
			return fmt.Errorf("MainPID %s", p)
		}
		return nil
	})
	ld.waitMore(t, 200)
	if f := ld.failed.Load(); f != 0 {
		t.Fatalf("%d failed requests across the reload: %v", f, ld.firstErr())
	}
	t.Logf("reloaded: MainPID %s -> %s, %d requests so far", first, mainPID(), ld.ok.Load())

	// kill -9 of the master: Restart=on-failure starts a new one, which
	// adopts the orphans.
	killed := mainPID()
	mustIn("kill", "-9", killed)
	testkit.Eventually(t, 60*time.Second, testkit.Poll, "a master restarted after kill -9", func() error {
		if p := mainPID(); p == killed || p == "0" || state() != "active" {
			return fmt.Errorf("MainPID %s, %s", p, state())
		}
		return nil
	})
	testkit.Eventually(t, 60*time.Second, testkit.Poll, "the orphans adopted", func() error {
		j, _ := in("journalctl", "--no-pager", "-o", "cat", "-u", "goes-master")
		for _, line := range []string{`"adopted the listening socket of an orphan"`, `"this master's workers accept: the orphans drain"`} {
			if !strings.Contains(j, line) {
				return fmt.Errorf("no %s line in the journal yet", line)
			}
		}
		return nil
	})
	ld.waitMore(t, 200)
	if f := ld.failed.Load(); f != 0 {
		t.Fatalf("%d failed requests across kill -9 of the master: %v", f, ld.firstErr())
	}
	total := ld.stop()
	if f := ld.failed.Load(); f != 0 {
		t.Fatalf("%d failed requests: %v", f, ld.firstErr())
	}
	t.Logf("restarted after kill -9: MainPID %s -> %s; %d requests, 0 failed", killed, mainPID(), total)

	// Stop: the master drains, the unit is inactive, no goes process is
	// left in the container.
	mustIn("systemctl", "stop", "goes-master")
	if s := state(); s != "inactive" {
		t.Fatalf("after stop: %s", s)
	}
	if ps, _ := in("pgrep", "-u", "goes"); ps != "" {
		t.Fatalf("processes of goes left after stop: %s", ps)
	}
	j := mustIn("journalctl", "--no-pager", "-o", "cat", "-u", "goes-master")
	if !strings.Contains(j, `"graceful":true`) || !strings.Contains(j, `"master stopped"`) {
		t.Fatalf("no graceful stop (master stopping, graceful, then master stopped) in the journal:\n%s", j)
	}
	// The journal's priorities: info lines at 6, debug at 7, and none of
	// the master's lines without its JSON.
	// Every line of the goes processes (the user goes: check, masters,
	// workers) is a JSON line: no plain text reaches the journal.
	all := mustIn("journalctl", "--no-pager", "-o", "cat", "_UID=990")
	if all == "" {
		t.Fatal("no journal lines of the user goes")
	}
	for _, line := range strings.Split(all, "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("a line that is not JSON in the journal: %q", line)
		}
	}
	for _, tc := range []struct{ prio, level string }{{"6", "info"}, {"7", "debug"}} {
		lines := mustIn("journalctl", "--no-pager", "-o", "cat", "-u", "goes-master", "-p", tc.prio+".."+tc.prio)
		if !strings.Contains(lines, `"level":"`+tc.level+`"`) {
			t.Errorf("no %s line at priority %s:\n%s", tc.level, tc.prio, lines)
		}
	}
}

// ensureNspawnDir makes /run/systemd/nspawn writable: a tmpfs on it where
// it is not.
func ensureNspawnDir() error {
	dir := "/run/systemd/nspawn"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	probe := filepath.Join(dir, ".goes-probe")
	if f, err := os.Create(probe); err == nil {
		f.Close()
		os.Remove(probe)
		return nil
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755")
}

// containerLeader returns the PID (here) of the container's PID 1: the
// descendant of nspawn whose PID in its own namespace is 1 (0: none yet).
func containerLeader(nspawn int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var ppid int
		var nspid []string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				nspid = strings.Fields(v)
			}
		}
		if len(nspid) == 2 && nspid[1] == "1" && (ppid == nspawn || parentOf(ppid) == nspawn) {
			return pid
		}
	}
	return 0
}

// load is a bounded HTTP load: n clients with keep-alive, each request
// counted ok or failed.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	err        error
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(url string, n int, max int64, bound time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	l := &load{cancel: cancel}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for ctx.Err() == nil && l.ok.Load()+l.failed.Load() < max {
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					l.mu.Lock()
					if l.err == nil {
						l.err = err
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) firstErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// waitMore waits until n more requests have succeeded.
func (l *load) waitMore(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	testkit.Eventually(t, 30*time.Second, testkit.Poll, "requests served", func() error {
		if got := l.ok.Load(); got < want {
			return fmt.Errorf("%d of %d", got, want)
		}
		return nil
	})
}

// stop ends the load and returns the requests served.
func (l *load) stop() int64 {
	l.cancel()
	l.wg.Wait()
	return l.ok.Load()
}

// TestUnitSecurityScore: systemd-analyze rates the unit's exposure at most
// 4.0 (it was 9.8 UNSAFE before the hardening).
func TestUnitSecurityScore(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
	}
	out, err := exec.Command(sa, "security", "--offline=true", "../../deploy/goes-master.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "Overall exposure level for goes-master.service: ")
	var score float64
	if ok {
		score, err = strconv.ParseFloat(strings.Fields(after)[0], 64)
	}
	if !ok || err != nil {
		t.Fatalf("no score in:\n%s", out)
	}
	t.Logf("systemd-analyze security: %.1f", score)
	if score > 4.0 {
		t.Fatalf("exposure %.1f, want at most 4.0:\n%s", score, out)
	}
}
