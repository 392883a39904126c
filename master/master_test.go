//go:build unix

package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/worker"
)

// The test binary is also the worker: the master re-executes it; and the
// master of TestUpgradeHandsOver (GOES_TEST_MASTER), which tableflip
// re-executes on reload.
func TestMain(m *testing.M) {
	if procenv.IsWorker(os.Getenv) {
		os.Exit(testWorker())
	}
	if dir := os.Getenv("GOES_TEST_MASTER"); dir != "" {
		os.Exit(upgradableMaster(dir))
	}
	if v := os.Getenv("GOES_TEST_FOREIGN_ORPHAN"); v != "" {
		os.Exit(foreignOrphan(v))
	}
	if path := os.Getenv("GOES_TEST_DIAL"); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Exit(8)
		}
		c.Read(make([]byte, 1)) // until the listener closes it
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testWorker answers every connection with its pid. GOES_TEST_MODE
// "fail" exits before ready; "crash" exits right after ready; "slow" takes
// a second to get ready. With GOES_TEST_ENV_DIR it writes its environment
// there first; GOES_TEST_MAX_REQUESTS is its worker.Options.MaxRequests
// (a request: what a client writes before the answer).
func testWorker() int {
	mode := os.Getenv("GOES_TEST_MODE")
	if mode == "fail" {
		fmt.Fprintln(os.Stderr, "test worker failing on purpose")
		return 3
	}
	if dir := os.Getenv("GOES_TEST_ENV_DIR"); dir != "" {
		if writeJSON(filepath.Join(dir, fmt.Sprintf("worker-%d.json", os.Getpid())), os.Environ()) != nil {
			return 9
		}
	}
	parkGoroutines(os.Getenv("GOES_TEST_GOROUTINES"))
	ctlF, sockF := os.NewFile(procenv.CtlFD, "ctl"), os.NewFile(procenv.SocketFD, "sock")
	ctl, err := net.FileConn(ctlF)
	if err != nil {
		return 4
	}
	ln, err := net.FileListener(sockF)
	if err != nil {
		return 5
	}
	ctlF.Close()
	sockF.Close()
	pid := []byte(strconv.Itoa(os.Getpid()))
	var start func() error
	switch mode {
	case "crash":
		start = func() error {
			go func() {
				time.Sleep(10 * time.Millisecond) // let the ready event out first
				os.Exit(6)
			}()
			return nil
		}
	case "slow":
		start = func() error {
			time.Sleep(time.Second) // a start that takes its time
			return nil
		}
	}
	maxReq, _ := strconv.ParseUint(os.Getenv("GOES_TEST_MAX_REQUESTS"), 10, 64)
	err = worker.Run(context.Background(), worker.Options{
		Ctl: ctl, Listener: ln, OnStart: start, MaxRequests: maxReq,
		Config: connections.Config{Handler: connections.Handler{
			OnConnect: func(c connections.Connection) {
				c.SendBytes(pid, true)
				if maxReq == 0 {
					c.Close()
				}
			},
			// With a request limit, the connection waits for its request.
			OnMessage: func(c connections.Connection, _ []byte) { c.Close() },
		}},
	})
	if err != nil {
		return 7
	}
	return 0
}

type testMaster struct {
	t      *testing.T
	paths  Paths
	ln     net.Listener
	cancel context.CancelFunc
	done   chan error
	ready  chan struct{}
}

func startMaster(t *testing.T, count int, env func(Identity) []string, tweak func(*Options)) *testMaster {
	t.Helper()
	paths, err := PathsIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMaster{t: t, paths: paths, done: make(chan error, 1), ready: make(chan struct{})}
	var mu sync.Mutex
	o := Options{
		Listeners: []Listener{{Name: "t", Network: "tcp", Addr: "127.0.0.1:0", Count: count, StopTimeout: 5 * time.Second}},
		Paths:     paths,
		Args:      []string{os.Args[0]},
		WorkerEnv: env,
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			mu.Lock()
			tm.ln = ln
			mu.Unlock()
			return ln, err
		},
		OnReady: func() { close(tm.ready) },
		Logger:  testkit.Logger(t).With().Str("role", "master").Logger(),
	}
	if tweak != nil {
		tweak(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm.cancel = cancel
	go func() { tm.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tm.done:
		case <-time.After(10 * time.Second):
			t.Error("master did not stop")
		}
	})
	return tm
}

func (tm *testMaster) waitReady() {
	tm.t.Helper()
	select {
	case <-tm.ready:
	case err := <-tm.done:
		tm.t.Fatalf("master ended: %v", err)
	case <-time.After(20 * time.Second):
		tm.t.Fatal("master not ready")
	}
}

func (tm *testMaster) status() ipc.Status {
	tm.t.Helper()
	ans, err := tm.paths.Request(ipc.Message{Type: ipc.TypeStatus}, 5*time.Second)
	if err != nil {
		tm.t.Fatal(err)
	}
	var st ipc.Status
	if err := ans.Decode(&st); err != nil {
		tm.t.Fatal(err)
	}
	return st
}

func nonBlocking(t *testing.T, c syscall.Conn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&unix.O_NONBLOCK != 0
}

// TestSharedQueueStaysNonBlocking: the workers share the master's socket
// (one accept queue: every worker gets connections), and handing it to
// them leaves the shared socket in non-blocking mode.
func TestSharedQueueStaysNonBlocking(t *testing.T) {
	tm := startMaster(t, 2, nil, nil)
	tm.waitReady()
	if !nonBlocking(t, tm.ln.(syscall.Conn)) {
		t.Fatal("the shared listening socket was switched to blocking mode")
	}
	st := tm.status()
	want := map[string]bool{}
	for _, w := range st.Workers {
		want[strconv.Itoa(w.PID)] = true
	}
	seen := map[string]bool{}
	addr := tm.ln.Addr().String()
	for i := 0; i < 400 && len(seen) < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 16)
		n, _ := c.Read(b)
		c.Close()
		pid := string(b[:n])
		if !want[pid] {
			t.Fatalf("answer %q is no worker's pid (%v)", pid, want)
		}
		seen[pid] = true
	}
	if len(seen) != 2 {
		t.Fatalf("only workers %v accepted from the shared queue", seen)
	}
	if !nonBlocking(t, tm.ln.(syscall.Conn)) {
		t.Fatal("the shared listening socket was switched to blocking mode")
	}
}

// TestStartFails: a worker that dies before it is ready fails the start
// with its exit status, and the master cleans up.
func TestStartFails(t *testing.T) {
	tm := startMaster(t, 1, func(Identity) []string { return []string{"GOES_TEST_MODE=fail"} }, nil)
	select {
	case err := <-tm.done:
		tm.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("err = %v, want the worker's exit status", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("master did not fail")
	}
	for _, f := range []string{tm.paths.PID, tm.paths.Socket} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", f)
		}
	}
	if tm.paths.Locked() {
		t.Error("lock still held")
	}
}

// TestCrashLoop: a worker id that keeps dying right after its start is
// given up after CrashLoopLimit quick deaths, with backoff in between.
// QuickDeath is a minute so that a loaded machine, on which the crashing
// worker may take seconds from ready to exit, still sees quick deaths;
// TestQuickDeathFromReady checks the default window.
func TestCrashLoop(t *testing.T) {
	var mu sync.Mutex
	spawns := 0
	env := func(Identity) []string {
		mu.Lock()
		defer mu.Unlock()
		spawns++
		if spawns > 1 {
			return []string{"GOES_TEST_MODE=crash"}
		}
		return nil
	}
	tm := startMaster(t, 1, env, func(o *Options) { o.CrashLoopLimit = 3; o.QuickDeath = time.Minute })
	tm.waitReady()
	first := tm.status().Workers[0]
	began := time.Now()
	syscall.Kill(first.PID, syscall.SIGKILL)
	var w ipc.Worker
	var took time.Duration
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "worker given up", func() error {
		if w, took = tm.status().Workers[0], time.Since(began); w.State != StateFailed {
			return fmt.Errorf("worker %+v", w)
		}
		return nil
	})
	if w.ExitCount != 3 || !strings.Contains(w.LastExit, "exit status 6") {
		t.Fatalf("failed worker: %+v", w)
	}
	// The first quick death restarts at once, the second after 100 ms.
	if took < 100*time.Millisecond {
		t.Fatalf("gave up after %v: no backoff", took)
	}
}

// TestPeerCredentials: a control client of another uid is refused, one of
// the master's uid is let in.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	dir, err := os.MkdirTemp("", "goes-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	path := dir + "/ctl.sock"
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(path, 0o777)
	// The test binary's own directory is owner-only: run a copy.
	client := dir + "/client"
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(client, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		uid     uint32
		refused bool
	}{
		{name: "same uid", uid: uint32(os.Geteuid())},
		{name: "other uid", uid: 65534, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(client, "-test.run=^$")
			cmd.Env = append(os.Environ(), "GOES_TEST_DIAL="+path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.uid}}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			ln.SetDeadline(time.Now().Add(10 * time.Second))
			c, err := ln.AcceptUnix()
			if err != nil {
				cmd.Process.Kill()
				t.Fatal(err)
			}
			err = checkPeer(c)
			c.Close()
			if tc.refused != (err != nil) {
				t.Fatalf("checkPeer = %v, refused want %v", err, tc.refused)
			}
		})
	}
}

// TestReloadWithoutUpgrades: a master without an Upgrader refuses a reload
// with a clear error, and its workers serve on untouched.
func TestReloadWithoutUpgrades(t *testing.T) {
	tm := startMaster(t, 2, nil, nil)
	tm.waitReady()
	before := tm.status()
	_, err := tm.paths.Request(ipc.Message{Type: ipc.TypeReload}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "reload refused") || !strings.Contains(err.Error(), "Options.Upgrader") {
		t.Fatalf("reload without upgrades: %v", err)
	}
	after := tm.status()
	if after.Master.Generation != 1 || len(after.Workers) != len(before.Workers) {
		t.Fatalf("after a refused reload: %+v", after)
	}
	for i, w := range after.Workers {
		if w.PID != before.Workers[i].PID || w.State != StateRunning {
			t.Fatalf("worker changed by a refused reload: %+v, was %+v", w, before.Workers[i])
		}
	}
}

// TestSlowDeathsRestart: deaths later than QuickDeath after ready are not a
// crash loop: the worker is replaced every time, past CrashLoopLimit.
func TestSlowDeathsRestart(t *testing.T) {
	const window = 100 * time.Millisecond
	tm := startMaster(t, 1, nil, func(o *Options) { o.CrashLoopLimit = 2; o.QuickDeath = window })
	tm.waitReady()
	prev := 0
	for i := 1; i <= 3; i++ {
		var w ipc.Worker
		testkit.Eventually(t, testkit.Wait, testkit.Poll, fmt.Sprintf("replacement after kill %d", i), func() error {
			if w = tm.status().Workers[0]; w.PID == prev || w.State != StateRunning {
				return fmt.Errorf("worker %+v", w)
			}
			return nil
		})
		// The master saw it ready no later than now: wait out the window
		// (measured here, so at least as long as the master's).
		seen := time.Now()
		for time.Since(seen) <= window {
			time.Sleep(5 * time.Millisecond)
		}
		syscall.Kill(w.PID, syscall.SIGKILL)
		prev = w.PID
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "replacement after the third kill", func() error {
		w := tm.status().Workers[0]
		if w.State == StateFailed {
			t.Fatalf("slow deaths taken for a crash loop: %+v", w)
		}
		if w.PID == prev || w.State != StateRunning {
			return fmt.Errorf("worker %+v", w)
		}
		if w.ExitCount != 3 {
			t.Fatalf("worker after 3 slow deaths: %+v", w)
		}
		return nil
	})
}
