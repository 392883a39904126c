//go:build unix

// The seed's programs, built as real binaries and driven with real clients.
// They hard-code 127.0.0.1:8080, so these tests take a cross-package lock
// on that port and run one at a time.
package examples_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
)

const seedAddr = "127.0.0.1:8080"

// startSeed builds pkg and starts it in the foreground with its own run dir.
func startSeed(t *testing.T, pkg string) (bin, runDir string, p *proctest.Proc) {
	t.Helper()
	proctest.LockPort(t, 8080)
	bin = proctest.Build(t, pkg)
	runDir = filepath.Join(t.TempDir(), "run")
	p = proctest.Start(t, bin, "start", "--run-dir", runDir)
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "program serving", func() error {
		if _, done := p.Wait(0); done {
			return fmt.Errorf("exited early:\n%s", p.Output())
		}
		if !strings.Contains(p.Output(), "started (pid") {
			return errors.New("no started line yet")
		}
		c, err := net.Dial("tcp", seedAddr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return bin, runDir, p
}

// assertGone waits for the foreground program to exit with status 0 and
// checks that nothing of it is left: no process, pid file or socket.
func assertGone(t *testing.T, p *proctest.Proc, runDir string) {
	t.Helper()
	err, done := p.Wait(15 * time.Second)
	if !done {
		t.Fatalf("program still running after stop:\n%s", p.Output())
	}
	if err != nil {
		t.Fatalf("program exited with %v:\n%s", err, p.Output())
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "process group empty", func() error {
		if !proctest.GroupGone(p.Pgid) {
			return errors.New("processes left in the group")
		}
		return nil
	})
	for _, f := range []string{"goes.pid", "goes.sock"} {
		if _, err := os.Stat(filepath.Join(runDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", f, err)
		}
	}
	if c, err := net.DialTimeout("tcp", seedAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts", seedAddr)
	}
}

func TestSeedTCP(t *testing.T) {
	bin, runDir, p := startSeed(t, "./tcp")
	c, err := net.Dial("tcp", seedAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("hello, goer"))
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if string(buf) != "hello, goer" {
			t.Fatalf("got %q, want %q", buf, "hello, goer")
		}
	}
	res := proctest.Run(t, bin, "stop", "--run-dir", runDir)
	if res.Code != 0 || !strings.Contains(res.Stdout, "stopped") {
		t.Fatalf("stop: %s", res)
	}
	assertGone(t, p, runDir)
}

// TestSeedCtrlC stops the foreground program as a terminal's Ctrl-C does:
// SIGINT to the whole process group.
func TestSeedCtrlC(t *testing.T) {
	_, runDir, p := startSeed(t, "./tcp")
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, runDir)
}

func TestSeedBench(t *testing.T) {
	ab, err := exec.LookPath("ab")
	if err != nil {
		t.Fatal("ab (ApacheBench) is not installed: apt-get install apache2-utils")
	}
	bin, runDir, p := startSeed(t, "./bench")
	cmd := exec.Command(ab, "-k", "-n", "2000", "-c", "20", "-s", "10", "http://"+seedAddr+"/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ab: %v\n%s", err, out)
	}
	for _, want := range []string{`Complete requests:\s+2000\b`, `Failed requests:\s+0\b`, `Keep-Alive requests:\s+2000\b`, `Non-2xx responses` /* must be absent */} {
		found := regexp.MustCompile(want).Match(out)
		if want == `Non-2xx responses` {
			if found {
				t.Errorf("ab saw non-2xx responses:\n%s", out)
			}
			continue
		}
		if !found {
			t.Errorf("ab output lacks %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`Requests per second:\s+([\d.]+)`).FindSubmatch(out); m != nil {
		t.Logf("ab -k -n 2000 -c 20: %s requests/s", m[1])
	}
	res := proctest.Run(t, bin, "stop", "--run-dir", runDir)
	if res.Code != 0 {
		t.Fatalf("stop: %s", res)
	}
	assertGone(t, p, runDir)
}

func TestSeedHTTP(t *testing.T) {
	bin, runDir, p := startSeed(t, "./http")
	// A keep-alive client: several requests on one connection, then a
	// fresh connection per request.
	for _, keepAlive := range []bool{true, false} {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		for i := 0; i < 5; i++ {
			resp, err := client.Get("http://" + seedAddr + "/path?q=1")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != "hello, goer" {
				t.Fatalf("keep-alive %v, request %d: %d %q %v", keepAlive, i, resp.StatusCode, body, err)
			}
		}
		client.CloseIdleConnections()
	}
	// Garbage gets a 400, and the program keeps serving.
	c, err := net.Dial("tcp", seedAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("NOT HTTP\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.Close()
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("garbage: %v, %v", resp, err)
	}
	res := proctest.Run(t, bin, "stop", "--run-dir", runDir)
	if res.Code != 0 {
		t.Fatalf("stop: %s", res)
	}
	assertGone(t, p, runDir)
}

// TestTimer runs the timer example on a free port (a config file
// overrides the listen address of its Goer) and reads its ticks.
func TestTimer(t *testing.T) {
	bin := proctest.Build(t, "./timer")
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	conf := filepath.Join(dir, "goes.json")
	// Port 0: the master binds a free port, status says which.
	if err := os.WriteFile(conf, []byte(`{"listeners": [{"listen": "text://127.0.0.1:0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := proctest.Run(t, bin, "start", "-d", "--run-dir", runDir, "--config", conf)
	if res.Code != 0 {
		t.Fatalf("start -d: %s", res)
	}
	res = proctest.Run(t, bin, "status", "--json", "--run-dir", runDir)
	var bound struct {
		Workers []struct {
			Listen string `json:"listen"`
		} `json:"workers"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &bound); err != nil || len(bound.Workers) == 0 {
		t.Fatalf("status --json: %v\n%s", err, res)
	}
	addr := strings.TrimPrefix(bound.Workers[0].Listen, "tcp://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	var prev int
	for i := 0; i < 2; i++ {
		line, err := r.ReadString('\n')
		var n, w int
		if _, serr := fmt.Sscanf(line, "tick %d from worker %d\n", &n, &w); err != nil || serr != nil || n <= prev {
			t.Fatalf("tick %d: %q, %v %v", i, line, err, serr)
		}
		prev = n
	}
	res = proctest.Run(t, bin, "status", "--json", "--run-dir", runDir)
	var st struct {
		Workers []struct {
			Timers int `json:"timers"`
		} `json:"workers"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil || len(st.Workers) != 2 {
		t.Fatalf("status --json: %v\n%s", err, res)
	}
	for i, w := range st.Workers {
		if w.Timers != 1 {
			t.Errorf("worker %d reports %d timers, want 1", i, w.Timers)
		}
	}
	// A reload runs OnWorkerReload in the old worker: its client hears it.
	if res := proctest.Run(t, bin, "reload", "--run-dir", runDir); res.Code != 0 {
		t.Fatalf("reload: %s", res)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no reload notice: %v", err)
		}
		if line == "reloading: please reconnect\n" {
			break
		}
	}
	c.Close()
	if res := proctest.Run(t, bin, "stop", "--run-dir", runDir); res.Code != 0 {
		t.Fatalf("stop: %s", res)
	}
}

// TestProxy runs the proxy example in front of an echo server of the
// test's own: every byte a client sends comes back through the worker's
// outgoing connection, and closing the upstream closes the client.
func TestProxy(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	upConns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			upConns <- c
			go io.Copy(c, c)
		}
	}()
	t.Setenv("PROXY_UPSTREAM", up.Addr().String())
	bin := proctest.Build(t, "./proxy")
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	conf := filepath.Join(dir, "goes.json")
	if err := os.WriteFile(conf, []byte(`{"listeners": [{"listen": "tcp://127.0.0.1:0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := proctest.Run(t, bin, "start", "-d", "--run-dir", runDir, "--config", conf); res.Code != 0 {
		t.Fatalf("start -d: %s", res)
	}
	defer proctest.Run(t, bin, "stop", "--run-dir", runDir)
	res := proctest.Run(t, bin, "status", "--json", "--run-dir", runDir)
	var st struct {
		Workers []struct {
			Listen string `json:"listen"`
		} `json:"workers"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil || len(st.Workers) != 1 {
		t.Fatalf("status --json: %v\n%s", err, res)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(st.Workers[0].Listen, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := strings.Repeat("through the proxy ", 10000) // 180 KB, several reads
	go io.WriteString(c, msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo through the proxy: %d bytes, %v", len(got), err)
	}
	// The upstream goes away: the proxy closes the client's side too.
	(<-upConns).Close()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("after the upstream closed: %q, %v; want EOF", b, err)
	}
}
