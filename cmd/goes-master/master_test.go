//go:build unix

// Integration tests of goes-master: the real binary, built into a temporary
// directory, driven only through its command line and its sockets.
package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
)

const testVersion = "1.2.3-test"

// bin is goes-master built once for the package's tests.
var bin string

func TestMain(m *testing.M) {
	runFloodClient() // a flood client process of the balance tests exits here
	runAdminFlood()  // and one of the admin flood tests (controlflood_test.go)
	dir, err := os.MkdirTemp("", "goes-master-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // workers may run as another user (TestWorkersRunAsUser)
	bin = filepath.Join(dir, "goes-master")
	if err := proctest.BuildTo(bin, ".", "-X main.version="+testVersion); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// setup is one test's goes-master: its own run dir, config and ports.
type setup struct {
	t                  *testing.T
	bin, runDir, conf  string
	httpAddr, textAddr string
	udpAddr, wsAddr    string
}

func newSetup(t *testing.T, stopTimeout string) *setup {
	t.Helper()
	s := &setup{t: t, bin: bin}
	dir := t.TempDir()
	s.runDir = filepath.Join(dir, "run")
	s.conf = filepath.Join(dir, "goes.json")
	// Port 0: the master binds free ports and status tells which
	// (learnAddrs); picking "free" ports here would race with the other
	// packages' tests.
	conf := fmt.Sprintf(`{
  "log_level": "debug",
  "stop_timeout": %q,
  "listeners": [
    {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"},
    {"name": "text", "listen": "text://127.0.0.1:0", "count": 2},
    {"name": "udp", "listen": "udp://127.0.0.1:0", "count": 1},
    {"name": "ws", "listen": "websocket://127.0.0.1:0", "count": 1}
  ]
}`, stopTimeout)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log")); err == nil {
				t.Logf("goes.log:\n%s", b)
			}
		}
	})
	return s
}

func (s *setup) cli(args ...string) proctest.Result {
	s.t.Helper()
	return proctest.Run(s.t, s.bin, append(args, "--run-dir", s.runDir, "--config", s.conf)...)
}

func (s *setup) mustCLI(args ...string) proctest.Result {
	s.t.Helper()
	res := s.cli(args...)
	if res.Code != 0 {
		s.t.Fatalf("%v: %s", args, res)
	}
	return res
}

func (s *setup) paths() master.Paths {
	p, err := master.PathsIn(s.runDir)
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// status asks the control socket directly (fast enough to poll).
func (s *setup) status() (ipc.Status, error) {
	ans, err := s.paths().Request(ipc.Message{Type: ipc.TypeStatus}, 5*time.Second)
	if err != nil {
		return ipc.Status{}, err
	}
	var st ipc.Status
	err = ans.Decode(&st)
	return st, err
}

func (s *setup) start() ipc.Status {
	s.t.Helper()
	res := s.mustCLI("start", "-d")
	if !strings.Contains(res.Stdout, "started (pid") {
		s.t.Fatalf("start -d: %s", res)
	}
	var st ipc.Status
	if err := json.Unmarshal([]byte(s.mustCLI("status", "--json").Stdout), &st); err != nil {
		s.t.Fatalf("status --json: %v", err)
	}
	s.learnAddrs(st)
	return st
}

// learnAddrs reads the bound addresses of the listeners from a status.
func (s *setup) learnAddrs(st ipc.Status) {
	s.t.Helper()
	addrs := listenAddrs(s.t, st)
	s.httpAddr, s.textAddr, s.udpAddr, s.wsAddr = addrs["web"], addrs["text"], addrs["udp"], addrs["ws"]
}

// listenAddrs maps each listener's name to the address status says its
// socket is bound to ("tcp://127.0.0.1:41301" → "127.0.0.1:41301").
func listenAddrs(t testing.TB, st ipc.Status) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, w := range st.Workers {
		_, addr, ok := strings.Cut(w.Listen, "://")
		if !ok || strings.HasSuffix(addr, ":0") {
			t.Fatalf("worker %d listens on %q: want the bound address", w.ID, w.Listen)
		}
		out[w.Name] = addr
	}
	return out
}

// stopAndCheck stops the master and checks that nothing is left.
func (s *setup) stopAndCheck(st ipc.Status, args ...string) {
	s.t.Helper()
	res := s.mustCLI(append([]string{"stop"}, args...)...)
	if !strings.Contains(res.Stdout, "stopped") {
		s.t.Fatalf("stop: %s", res)
	}
	s.checkGone(st)
}

func (s *setup) checkGone(st ipc.Status) {
	s.t.Helper()
	s.processesGone(st)
	for _, f := range []string{"goes.pid", "goes.sock"} {
		if _, err := os.Stat(filepath.Join(s.runDir, f)); !errors.Is(err, os.ErrNotExist) {
			s.t.Errorf("%s left behind (%v)", f, err)
		}
	}
}

// processesGone waits until no process of st is left.
func (s *setup) processesGone(st ipc.Status) {
	s.t.Helper()
	pids := []int{st.Master.PID}
	for _, w := range st.Workers {
		pids = append(pids, w.PID)
	}
	testkit.Eventually(s.t, 10*time.Second, testkit.Poll, "every process gone", func() error {
		for _, pid := range pids {
			if proctest.Alive(pid) {
				return fmt.Errorf("pid %d alive", pid)
			}
		}
		if !proctest.GroupGone(st.Master.PID) {
			return errors.New("daemon's process group not empty")
		}
		return nil
	})
}

func httpGet(addr string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(b) != "hello, goer" {
		return fmt.Errorf("got %d %q", resp.StatusCode, b)
	}
	return nil
}

// textConn is a held text-protocol client.
type textConn struct {
	net.Conn
	r *bufio.Reader
}

func dialText(t *testing.T, addr string) *textConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &textConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *textConn) echo(t *testing.T, line string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo %q: got %q, %v", line, got, err)
	}
}

func TestLifecycle(t *testing.T) {
	s := newSetup(t, "10s")
	st := s.start()

	// status --json shows the master and every worker.
	if st.Master.Version != testVersion || st.Master.PID <= 0 || st.Master.State != master.StateRunning {
		t.Fatalf("master: %+v", st.Master)
	}
	if len(st.Workers) != 6 {
		t.Fatalf("%d workers, want 6: %+v", len(st.Workers), st.Workers)
	}
	seen := map[int]bool{}
	for i, w := range st.Workers {
		if w.ID != i || w.PID <= 0 || seen[w.PID] || w.State != master.StateRunning || w.ExitCount != 0 {
			t.Fatalf("worker %d: %+v", i, w)
		}
		seen[w.PID] = true
	}
	if got := s.paths(); true {
		pid, err := got.ReadPID()
		if err != nil || pid != st.Master.PID {
			t.Fatalf("pid file: %d, %v; want %d", pid, err, st.Master.PID)
		}
	}
	checkPerms(t, s.runDir)

	// Every kind of listener serves.
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	held := dialText(t, s.textAddr)
	held.echo(t, "hold")
	udpEcho(t, s.udpAddr)
	wsEcho(t, s.wsAddr)

	// start while running refuses.
	if res := s.cli("start", "-d"); res.Code == 0 || !strings.Contains(res.Stderr, "already running") {
		t.Fatalf("second start: %s", res)
	}
	if res := s.cli("start"); res.Code == 0 || !strings.Contains(res.Stderr, "already running") {
		t.Fatalf("second foreground start: %s", res)
	}

	// kill -9 a worker under load: the same id comes back with a new pid.
	var okCount, errCount atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20000; n++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				if httpGet(s.httpAddr) == nil {
					okCount.Add(1)
				} else {
					errCount.Add(1)
				}
			}
		}()
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "load running", func() error {
		if okCount.Load() < 50 {
			return errors.New("few requests yet")
		}
		return nil
	})
	victim := st.Workers[0]
	killed := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var back ipc.Worker
	var readyAfter, acceptAfter time.Duration
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "worker 0 replaced", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		w := st.Workers[0]
		if w.PID == victim.PID || w.State != master.StateRunning {
			return fmt.Errorf("worker 0: pid %d state %s", w.PID, w.State)
		}
		if readyAfter == 0 {
			readyAfter = time.Since(killed)
		}
		if w.Accepted == 0 {
			return errors.New("replacement has not accepted yet")
		}
		acceptAfter = time.Since(killed)
		back = w
		return nil
	})
	close(stopLoad)
	wg.Wait()
	t.Logf("kill -9 → replacement ready %v, first accept %v (load: %d ok, %d failed)", readyAfter, acceptAfter, okCount.Load(), errCount.Load())
	if readyAfter > time.Second {
		t.Errorf("replacement took %v, want < 1s", readyAfter)
	}
	if back.ID != 0 || back.ExitCount != 1 || !strings.Contains(back.LastExit, "killed") {
		t.Errorf("replacement: %+v", back)
	}
	st2, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if st2.Master.ExitCount != 1 {
		t.Errorf("master exit_count %d, want 1", st2.Master.ExitCount)
	}
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatalf("after the kill: %v", err)
	}

	// connections lists the held client.
	var conns []ipc.ConnInfo
	res := s.mustCLI("connections", "--json")
	if err := json.Unmarshal([]byte(res.Stdout), &conns); err != nil {
		t.Fatalf("connections --json: %v\n%s", err, res.Stdout)
	}
	found := false
	for _, c := range conns {
		if c.RemoteAddr == held.LocalAddr().String() {
			found = c.LocalAddr == s.textAddr && c.Protocol == "text" && c.BytesIn == 5 && c.Worker >= 2
		}
	}
	if !found {
		t.Fatalf("held client %s not listed right: %s", held.LocalAddr(), res.Stdout)
	}
	if table := s.mustCLI("connections").Stdout; !strings.Contains(table, held.LocalAddr().String()) {
		t.Fatalf("connections table lacks the held client:\n%s", table)
	}
	if table := s.mustCLI("status").Stdout; !strings.Contains(table, "web") || !strings.Contains(table, testVersion) {
		t.Fatalf("status table:\n%s", table)
	}

	// stop leaves nothing behind.
	st2.Master.PID = st.Master.PID
	st2.Workers = append(st2.Workers, st.Workers...)
	s.stopAndCheck(st2)
	if res := s.cli("status"); res.Code == 0 || !strings.Contains(res.Stderr, "not running") {
		t.Fatalf("status after stop: %s", res)
	}
}

func checkPerms(t *testing.T, runDir string) {
	t.Helper()
	want := map[string]os.FileMode{"": 0o700, "goes.pid": 0o600, "goes.sock": 0o600, "goes.log": 0o600, "goes.lock": 0o600}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(runDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", filepath.Join(runDir, name), fi.Mode().Perm(), mode)
		}
	}
}

func udpEcho(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("udp echo: %q, %v", buf[:n], err)
	}
}

// dialWebSocket opens a WebSocket connection by hand.
func dialWebSocket(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("websocket handshake: %v, %v", resp, err)
	}
	return c, br
}

// wsEcho speaks WebSocket by hand: handshake, one masked text frame, its
// echo.
func wsEcho(t *testing.T, addr string) {
	t.Helper()
	c, br := dialWebSocket(t, addr)
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | 2, mask[0], mask[1], mask[2], mask[3], 'h' ^ mask[0], 'i' ^ mask[1]}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "\x81\x02hi" {
		t.Fatalf("websocket echo: %q, %v", got, err)
	}
}

func TestStalePidFile(t *testing.T) {
	s := newSetup(t, "10s")
	if err := os.MkdirAll(s.runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A pid that is alive but not ours (this test) and a socket file that
	// nobody listens on.
	pidFile := filepath.Join(s.runDir, "goes.pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(s.runDir, "goes.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	res := s.cli("status")
	if res.Code == 0 || !strings.Contains(res.Stderr, "not running") || !strings.Contains(res.Stderr, "stale pid file") {
		t.Fatalf("status with a stale pid file: %s", res)
	}
	if res := s.cli("stop"); res.Code == 0 || !strings.Contains(res.Stderr, "not running") {
		t.Fatalf("stop with a stale pid file: %s", res)
	}
	st := s.start()
	if st.Master.PID == os.Getpid() {
		t.Fatal("status reports the stale pid")
	}
	if pid, err := s.paths().ReadPID(); err != nil || pid != st.Master.PID {
		t.Fatalf("pid file: %d, %v; want %d", pid, err, st.Master.PID)
	}
	s.stopAndCheck(st)
}

// TestGracefulStop: stop -g lets a request that is in flight finish; a
// fast stop would cut it.
func TestGracefulStop(t *testing.T) {
	s := newSetup(t, "20s")
	st := s.start()
	c := dialText(t, s.textAddr)
	c.echo(t, "first")
	// Half a request is on the wire when the stop begins.
	if _, err := c.Write([]byte("in-fli")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res  proctest.Result
		took time.Duration
	}
	stopped := make(chan result, 1)
	began := time.Now()
	go func() {
		res := s.cli("stop", "-g")
		stopped <- result{res, time.Since(began)}
	}()
	// Wait until the worker holding the connection drains (the others,
	// idle, are gone at once), then finish the request.
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "text worker draining", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Master.State != master.StateStopping {
			return fmt.Errorf("master is %s", st.Master.State)
		}
		for _, w := range st.Workers {
			if w.Name == "text" && w.State == master.StateDraining && w.Connections == 1 {
				return nil
			}
		}
		return fmt.Errorf("no text worker draining with our connection: %+v", st.Workers)
	})
	select {
	case r := <-stopped:
		t.Fatalf("stop -g returned while a connection is open: %s", r.res)
	default:
	}
	if _, err := c.Write([]byte("ght\n")); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := c.r.ReadString('\n')
	if err != nil || got != "in-flight\n" {
		t.Fatalf("in-flight request: %q, %v", got, err)
	}
	c.Close()
	r := <-stopped
	if r.res.Code != 0 || !strings.Contains(r.res.Stdout, "stopped") {
		t.Fatalf("stop -g: %s", r.res)
	}
	if r.took > 15*time.Second {
		t.Errorf("stop -g took %v: it did not end when the last connection closed", r.took)
	}
	s.checkGone(st)
}

// TestReload: reload starts a new master (and workers) that inherits the
// sockets; the old generation drains, and status shows both meanwhile.
func TestReload(t *testing.T) {
	s := newSetup(t, "10s")
	st := s.start()
	held := dialText(t, s.textAddr)
	held.echo(t, "before")
	res := s.mustCLI("reload")
	if !strings.Contains(res.Stdout, "generation 2") || !strings.Contains(res.Stdout, "version "+testVersion) ||
		!strings.Contains(res.Stdout, fmt.Sprintf("old master pid %d", st.Master.PID)) {
		t.Fatalf("reload: %s", res)
	}
	st2, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if st2.Master.PID == st.Master.PID || st2.Master.Generation != 2 || !strings.Contains(res.Stdout, fmt.Sprintf("master pid %d,", st2.Master.PID)) {
		t.Fatalf("after reload: %+v\n%s", st2.Master, res.Stdout)
	}
	if pid, err := s.paths().ReadPID(); err != nil || pid != st2.Master.PID {
		t.Fatalf("pid file: %d, %v; want the new master %d", pid, err, st2.Master.PID)
	}
	// The new master inherited the sockets the first one bound to port 0.
	before := listenAddrs(t, st)
	for _, w := range st2.Workers {
		if want := "://" + before[w.Name]; !strings.HasSuffix(w.Listen, want) {
			t.Fatalf("after reload worker %d (master %d) listens on %s, want *%s", w.ID, w.MasterPID, w.Listen, want)
		}
	}
	// Both generations show: the old master stopping, its worker that
	// holds the connection draining (as long as it is open; the idle ones
	// exit at their own pace). A loaded machine may miss the 1 s bound of
	// one status request: poll.
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "both generations in status", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		if cur.Master.PID != st2.Master.PID {
			return fmt.Errorf("master %d, want %d", cur.Master.PID, st2.Master.PID)
		}
		if len(cur.Others) != 1 || cur.Others[0].PID != st.Master.PID || cur.Others[0].State != master.StateStopping {
			return fmt.Errorf("previous generation: %+v", cur.Others)
		}
		newWorkers, oldDraining := 0, 0
		for _, w := range cur.Workers {
			switch {
			case w.MasterPID == st2.Master.PID && w.Generation == 2 && w.State == master.StateRunning:
				newWorkers++
			case w.MasterPID == st.Master.PID && w.State == master.StateDraining && w.Connections == 1:
				oldDraining++
			}
		}
		if newWorkers != 6 || oldDraining != 1 {
			return fmt.Errorf("%d new workers (want 6), %d old draining with our connection (want 1): %+v", newWorkers, oldDraining, cur.Workers)
		}
		return nil
	})
	// The held connection lives on in its draining old worker; new
	// connections reach the new generation.
	held.echo(t, "after")
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	held.Close()
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "old master gone", func() error {
		if proctest.Alive(st.Master.PID) {
			return errors.New("old master alive")
		}
		st3, err := s.status()
		if err != nil {
			return err
		}
		if len(st3.Others) != 0 || len(st3.Workers) != 6 {
			return fmt.Errorf("status still shows the old generation: %+v", st3)
		}
		return nil
	})
	st2.Workers = append(st2.Workers, st.Workers...)
	s.stopAndCheck(st2)
}

// TestSignals: USR1 reopens the log file, HUP reloads, TERM stops.
func TestSignals(t *testing.T) {
	s := newSetup(t, "10s")
	st := s.start()
	logPath := filepath.Join(s.runDir, "goes.log")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(st.Master.PID, syscall.SIGUSR1)
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "log reopened", func() error {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "logs reopened") {
			return errors.New("no reopen line in the new log")
		}
		return nil
	})
	syscall.Kill(st.Master.PID, syscall.SIGHUP)
	var st2 ipc.Status
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "reload by SIGHUP", func() error {
		var err error
		if st2, err = s.status(); err != nil {
			return err
		}
		if st2.Master.Generation == 2 && st2.Master.State == master.StateRunning {
			return nil
		}
		return fmt.Errorf("no generation 2 yet: %+v", st2.Master)
	})
	if st2.Master.PID == st.Master.PID {
		t.Fatal("SIGHUP did not replace the master")
	}
	syscall.Kill(st2.Master.PID, syscall.SIGTERM)
	st2.Workers = append(st2.Workers, st.Workers...)
	s.checkGone(st2)
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "old master gone", func() error {
		if proctest.Alive(st.Master.PID) {
			return errors.New("old master alive")
		}
		return nil
	})
}

// TestSignalQuit: QUIT stops gracefully, waiting for a held connection.
func TestSignalQuit(t *testing.T) {
	s := newSetup(t, "20s")
	st := s.start()
	c := dialText(t, s.textAddr)
	c.echo(t, "one")
	syscall.Kill(st.Master.PID, syscall.SIGQUIT)
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "stopping", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Master.State != master.StateStopping {
			return fmt.Errorf("master is %s", st.Master.State)
		}
		return nil
	})
	c.echo(t, "two")
	if !proctest.Alive(st.Master.PID) {
		t.Fatal("master gone while a connection is open")
	}
	c.Close()
	s.checkGone(st)
}

// TestWorkersRunAsUser: with "user" set, the master (root) opens the
// sockets and the workers run as that user.
func TestWorkersRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s := newSetup(t, "10s")
	conf, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), `"log_level": "debug",`, `"log_level": "debug", "user": "nobody",`, 1))
	if err := os.WriteFile(s.conf, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	st := s.start()
	for _, w := range st.Workers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.PID))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\nUid:\t65534\t") {
			t.Fatalf("worker %d does not run as nobody:\n%s", w.ID, b)
		}
	}
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	s.stopAndCheck(st)
}

// TestMasterKilled: when the master dies (kill -9), its workers serve on
// as orphans: a held connection is still served, and so are new ones. The
// files the dead master left do not block the next start, which adopts the
// orphans: they drain (the held connection finishes first) and exit.
func TestMasterKilled(t *testing.T) {
	s := newSetup(t, "20s")
	st := s.start()
	held := dialText(t, s.textAddr)
	held.echo(t, "before")
	if err := syscall.Kill(st.Master.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	masterDead(t, s, st.Master.PID)
	held.echo(t, "after the master died")
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatalf("the orphans do not serve: %v", err)
	}
	for _, w := range st.Workers {
		if !proctest.Alive(w.PID) {
			t.Fatalf("worker %d (pid %d) exited with its master", w.ID, w.PID)
		}
	}
	res := s.cli("status")
	if res.Code == 0 || !strings.Contains(res.Stderr, "not running") ||
		!strings.Contains(res.Stderr, fmt.Sprintf("%d orphaned workers of a master that died serve on", len(st.Workers))) {
		t.Fatalf("status after the master died: %s", res)
	}
	for _, w := range st.Workers {
		if !strings.Contains(res.Stderr, strconv.Itoa(w.PID)) {
			t.Fatalf("status after the master died does not name orphan %d: %s", w.PID, res)
		}
	}
	st2 := s.start()
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	// Every orphan but the one holding the connection drains at once.
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "idle orphans gone", func() error {
		alive := 0
		for _, w := range st.Workers {
			if proctest.Alive(w.PID) {
				alive++
			}
		}
		if alive != 1 {
			return fmt.Errorf("%d orphans alive, want only the one holding the connection", alive)
		}
		return nil
	})
	held.echo(t, "while its orphan drains")
	// The new master's status shows the draining orphan among the
	// retiring processes, under the dead master's pid.
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the orphan in status", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		for _, w := range cur.Retiring {
			if w.MasterPID == st.Master.PID && w.State == "draining" && w.Name == "text" && w.Connections == 1 {
				return nil
			}
		}
		return fmt.Errorf("retiring: %+v", cur.Retiring)
	})
	if out := s.mustCLI("status").Stdout; !strings.Contains(out, fmt.Sprintf("draining (orphan of master %d)", st.Master.PID)) {
		t.Fatalf("status does not show the orphan:\n%s", out)
	}
	held.Close()
	s.processesGone(st)
	s.stopAndCheck(st2)
}

// TestStatusRefresh: status -d prints a frame every second until Ctrl-C,
// without terminal escapes when its output is not a terminal, and waits
// through a restart of the master instead of quitting.
func TestStatusRefresh(t *testing.T) {
	s := newSetup(t, "10s")
	if res := s.cli("status", "-d"); res.Code == 0 || !strings.Contains(res.Stderr, "not running") {
		t.Fatalf("status -d with nothing running: %s", res)
	}
	st := s.start()
	table := proctest.Start(t, s.bin, "status", "-d", "--run-dir", s.runDir, "--config", s.conf)
	js := proctest.Start(t, s.bin, "status", "-d", "--json", "--run-dir", s.runDir, "--config", s.conf)
	frames := func(p *proctest.Proc, mark string, n int) func() error {
		return func() error {
			if got := strings.Count(p.Output(), mark); got < n {
				return fmt.Errorf("%d frames:\n%s", got, p.Output())
			}
			return nil
		}
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "two table frames", frames(table, "---- WORKERS ----", 2))
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "two json frames", frames(js, `"master": {`, 2))
	if strings.Contains(table.Output(), "\033[") {
		t.Fatalf("terminal escapes in a non-terminal output:\n%q", table.Output())
	}
	dec := json.NewDecoder(strings.NewReader(js.Output()))
	for i := 0; i < 2; i++ {
		var frame ipc.Status
		if err := dec.Decode(&frame); err != nil || frame.Master.PID != st.Master.PID || len(frame.Workers) != 6 {
			t.Fatalf("json frame %d: %v %+v", i, err, frame.Master)
		}
	}
	// A restart: the frames say the master is gone, then show the new one.
	s.stopAndCheck(st)
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "not running reported", frames(table, "not running", 1))
	st2 := s.start()
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "new master shown", func() error {
		if !strings.Contains(js.Output(), fmt.Sprintf(`"pid": %d,`, st2.Master.PID)) {
			return errors.New("no frame of the new master yet")
		}
		return nil
	})
	for _, p := range []*proctest.Proc{table, js} {
		if err := p.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err, done := p.Wait(5 * time.Second); !done || err != nil {
			t.Fatalf("status -d after Ctrl-C: exited %v, %v", done, err)
		}
	}
	s.stopAndCheck(st2)
}

// TestForegroundUSR1: USR1 sent to the whole foreground process group (as
// `pkill -USR1 goes-master` from a logrotate script does) leaves every
// process serving; with no log file the master says there is nothing to
// reopen.
func TestForegroundUSR1(t *testing.T) {
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
	if err := fg.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "usr1 handled", func() error {
		if !strings.Contains(fg.Output(), "no log file to reopen") {
			return errors.New("no line about the reopen yet")
		}
		return nil
	})
	if err := httpGet(s.httpAddr); err != nil {
		t.Fatal(err)
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range cur.Workers {
		if w.PID != st.Workers[i].PID || w.State != master.StateRunning || w.ExitCount != 0 {
			t.Fatalf("worker %d after USR1: %+v, was pid %d", i, w, st.Workers[i].PID)
		}
	}
	s.mustCLI("stop")
	if err, done := fg.Wait(15 * time.Second); !done || err != nil {
		t.Fatalf("foreground master after stop: exited %v, %v", done, err)
	}
}

// masterDead waits until the killed master pid is gone and the run
// directory's lock is free: a killed process shows as a zombie while its
// other threads still exit, holding its descriptors (the lock) a moment.
func masterDead(t *testing.T, s *setup, pid int) {
	t.Helper()
	allGone(t, 10*time.Second, "the master gone", []int{pid})
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the run directory's lock free", func() bool {
		return !s.paths().Locked()
	})
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
