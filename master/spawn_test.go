//go:build unix

package master

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

// fakeProc is a worker process that exits when the test says.
type fakeProc struct {
	pid  int
	exit chan string
}

func (p *fakeProc) Pid() int { return p.pid }
func (p *fakeProc) Wait() (string, error) {
	s := <-p.exit
	return s, nil
}
func (p *fakeProc) Kill() error {
	select {
	case p.exit <- "signal: killed":
	default:
	}
	return nil
}

// fakeSpawner records what the master would start, and starts nothing
// (or fails with fail). check, when set, looks at each command while its
// descriptors are open.
type fakeSpawner struct {
	mu    sync.Mutex
	cmds  []*exec.Cmd
	procs []*fakeProc
	fail  error
	check func(cmd *exec.Cmd)
}

func (f *fakeSpawner) start(cmd *exec.Cmd) (process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	if f.check != nil {
		f.check(cmd)
	}
	if f.fail != nil {
		return nil, f.fail
	}
	p := &fakeProc{pid: 1000 + len(f.procs), exit: make(chan string, 1)}
	f.procs = append(f.procs, p)
	return p, nil
}

// unitMaster is a master of one worker on a loopback listener whose
// processes f makes; the test is its run loop (next, m.handle).
func unitMaster(t *testing.T, f *fakeSpawner, opt func(*Options)) *master {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	paths, err := PathsIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Listeners:     []Listener{{Name: "t", Network: "tcp", Addr: ln.Addr().String(), Count: 1}},
		Paths:         paths,
		Exe:           "/goes-test/worker",
		Args:          []string{"goes-test"},
		Env:           []string{"KEEP=1"},
		Logger:        zerolog.New(zerolog.NewTestWriter(t)),
		OrphanTimeout: time.Minute,
	}
	if opt != nil {
		opt(&o)
	}
	m, err := newMaster(o)
	if err != nil {
		t.Fatal(err)
	}
	m.sockets = []*socket{{l: m.o.Listeners[0], ln: ln}}
	m.state = StateRunning
	m.sp.start = f.start
	t.Cleanup(func() {
		close(m.done) // m.send returns
		for p := range m.procs {
			p.conn.Close()
		}
		for _, s := range m.slots {
			if s.timer != nil {
				s.timer.Stop()
			}
		}
	})
	return m
}

// next returns the next event the master sent itself, of type E.
func next[E event](t *testing.T, m *master) E {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-m.events:
			if x, ok := e.(E); ok {
				return x
			}
		case <-deadline:
			var zero E
			t.Fatalf("no %T event", zero)
			return zero
		}
	}
}

// TestSpawnPassesDescriptors: a worker gets its control channel, its
// listener and its worker socket at the descriptors procenv names, and
// its identity in the environment; the control channel reaches the
// master (a ready message comes back as evReady).
func TestSpawnPassesDescriptors(t *testing.T) {
	f := &fakeSpawner{}
	var child *os.File // the worker's end of the control channel
	var env procenv.WorkerEnv
	port := 0 // the listener's
	f.check = func(cmd *exec.Cmd) {
		if cmd.Path != "/goes-test/worker" || !strings.HasPrefix(cmd.Args[0], "goes-test") {
			t.Errorf("path %q args %q", cmd.Path, cmd.Args)
		}
		if len(cmd.ExtraFiles) != procenv.OrphanFD-2 {
			t.Fatalf("%d extra files, want %d", len(cmd.ExtraFiles), procenv.OrphanFD-2)
		}
		kind := func(fd int) (syscall.Sockaddr, int) {
			f := cmd.ExtraFiles[fd-3]
			if f == nil {
				t.Fatalf("descriptor %d not passed", fd)
			}
			sa, err := syscall.Getsockname(int(f.Fd()))
			if err != nil {
				t.Fatalf("descriptor %d: %v", fd, err)
			}
			typ, err := syscall.GetsockoptInt(int(f.Fd()), syscall.SOL_SOCKET, syscall.SO_TYPE)
			if err != nil {
				t.Fatalf("descriptor %d: %v", fd, err)
			}
			return sa, typ
		}
		if sa, _ := kind(procenv.SocketFD); func() bool { in, ok := sa.(*syscall.SockaddrInet4); return !ok || in.Port != port }() {
			t.Errorf("descriptor %d is not the listener: %v", procenv.SocketFD, sa)
		}
		if sa, typ := kind(procenv.CtlFD); typ != syscall.SOCK_STREAM {
			t.Errorf("descriptor %d is not a stream socket: %v", procenv.CtlFD, sa)
		} else if _, ok := sa.(*syscall.SockaddrUnix); !ok {
			t.Errorf("descriptor %d is not a Unix socket: %v", procenv.CtlFD, sa)
		}
		if sa, _ := kind(procenv.OrphanFD); func() bool { un, ok := sa.(*syscall.SockaddrUnix); return !ok || !strings.HasSuffix(un.Name, ".sock") }() {
			t.Errorf("descriptor %d is not the worker socket: %v", procenv.OrphanFD, sa)
		}
		fd, err := syscall.Dup(int(cmd.ExtraFiles[procenv.CtlFD-3].Fd()))
		if err != nil {
			t.Fatal(err)
		}
		child = os.NewFile(uintptr(fd), "child-control")
		vars := map[string]string{}
		for _, kv := range cmd.Env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		if vars["KEEP"] != "1" {
			t.Errorf("the master's environment is not passed on: %q", cmd.Env)
		}
		if _, ok := vars["GOMAXPROCS"]; ok {
			t.Errorf("one worker got GOMAXPROCS: %q", cmd.Env)
		}
		var err2 error
		if env, err2 = procenv.DecodeWorkerEnv(func(k string) string { return vars[k] }); err2 != nil {
			t.Errorf("worker env: %v", err2)
		}
	}
	m := unitMaster(t, f, nil)
	port = m.sockets[0].ln.Addr().(*net.TCPAddr).Port
	s := m.slots[0]
	if err := m.spawn(s); err != nil {
		t.Fatal(err)
	}
	if s.cur == nil || s.cur.pid != 1000 || s.state != StateStarting || len(m.procs) != 1 {
		t.Fatalf("slot %+v, procs %d", s, len(m.procs))
	}
	if env.Identity.ID != 0 || env.Identity.Route != s.cur.route || env.OrphanTimeout != time.Minute {
		t.Errorf("worker env %+v", env)
	}
	if child == nil {
		t.FailNow()
	}
	defer child.Close()
	c, err := net.FileConn(child)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello, _ := ipc.New(ipc.TypeReady, 0, ipc.Hello{PID: 1000})
	if err := ipc.NewConn(c).Send(hello); err != nil {
		t.Fatal(err)
	}
	if e := next[evReady](t, m); e.p != s.cur {
		t.Fatalf("ready from %p, want %p", e.p, s.cur)
	}
}

// TestSpawnExecFailure: a worker that cannot be started leaves nothing
// behind (no process, no worker socket), and its respawn backs off.
func TestSpawnExecFailure(t *testing.T) {
	f := &fakeSpawner{fail: &exec.Error{Name: "/goes-test/worker", Err: exec.ErrNotFound}}
	m := unitMaster(t, f, nil)
	s := m.slots[0]
	err := m.spawn(s)
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "start worker 0") {
		t.Fatalf("spawn = %v", err)
	}
	if s.cur != nil || len(m.procs) != 0 {
		t.Fatalf("slot %+v, procs %d", s, len(m.procs))
	}
	if left := orphan.Glob(m.o.Paths.Dir); len(left) != 0 {
		t.Fatalf("worker sockets left behind: %v", left)
	}
	m.scheduleRespawn(s)
	if s.state != StateBackoff || s.timer == nil {
		t.Fatalf("after a failed respawn: state %s, timer %v", s.state, s.timer)
	}
	if len(f.cmds) != 2 {
		t.Fatalf("%d starts, want 2", len(f.cmds))
	}
}

// TestSpawnCrashLoop: quick deaths restart at once, then back off (100
// ms after the second), and the id is given up after CrashLoopLimit of
// them; a death after QuickDeath of service restarts at once.
func TestSpawnCrashLoop(t *testing.T) {
	f := &fakeSpawner{}
	m := unitMaster(t, f, func(o *Options) { o.CrashLoopLimit = 3; o.QuickDeath = time.Minute })
	s := m.slots[0]
	if err := m.spawn(s); err != nil {
		t.Fatal(err)
	}
	die := func(n int) {
		t.Helper()
		f.procs[n].exit <- "exit status 6"
		m.handle(next[evExit](t, m))
	}
	die(0)
	if len(f.procs) != 2 || s.cur == nil || s.quickFails != 1 {
		t.Fatalf("after a first quick death: %d starts, slot %+v", len(f.procs), s)
	}
	began := time.Now()
	die(1)
	if len(f.procs) != 2 || s.state != StateBackoff {
		t.Fatalf("after a second quick death: %d starts, state %s", len(f.procs), s.state)
	}
	m.handle(next[evRespawn](t, m))
	if took := time.Since(began); took < 100*time.Millisecond {
		t.Fatalf("respawned after %v, want a 100 ms back-off", took)
	}
	if len(f.procs) != 3 {
		t.Fatalf("%d starts after the back-off", len(f.procs))
	}
	die(2)
	if s.state != StateFailed || s.exitCount != 3 || s.lastExit != "exit status 6" || len(f.procs) != 3 || s.timer != nil {
		t.Fatalf("after %d quick deaths: %d starts, slot %+v", 3, len(f.procs), s)
	}

	// A worker that served longer than QuickDeath is not counted.
	f2 := &fakeSpawner{}
	m2 := unitMaster(t, f2, func(o *Options) { o.CrashLoopLimit = 1; o.QuickDeath = time.Minute })
	s2 := m2.slots[0]
	if err := m2.spawn(s2); err != nil {
		t.Fatal(err)
	}
	s2.cur.ready, s2.cur.readyAt = true, time.Now().Add(-2*time.Minute)
	f2.procs[0].exit <- "signal: killed"
	m2.handle(next[evExit](t, m2))
	if s2.state == StateFailed || len(f2.procs) != 2 || s2.quickFails != 0 {
		t.Fatalf("a worker that served died: %d starts, slot %+v", len(f2.procs), s2)
	}
}

// TestWorkerRuntimeEnv: when the workers outnumber the CPUs, each gets
// GOMAXPROCS=1 unless the master's environment sets GOMAXPROCS (then
// that value passes on); with no more workers than CPUs nothing is added.
func TestWorkerRuntimeEnv(t *testing.T) {
	get := func(env []string, k string) []string {
		var vs []string
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				vs = append(vs, v)
			}
		}
		return vs
	}
	for _, c := range []struct {
		env           []string
		workers, cpus int
		maxprocs      []string
	}{
		{[]string{"A=1"}, 53, 2, []string{"1"}},
		{nil, 3, 2, []string{"1"}},
		{nil, 2, 2, nil},
		{nil, 1, 2, nil},
		{nil, 4, 8, nil},
		{[]string{"GOMAXPROCS=4"}, 53, 2, []string{"4"}},
		{[]string{"GOMAXPROCSX=1", "B=2"}, 9, 8, []string{"1"}},
	} {
		env := workerRuntimeEnv(c.env, c.workers, c.cpus)
		if m := get(env, "GOMAXPROCS"); !slices.Equal(m, c.maxprocs) {
			t.Errorf("%q, %d workers on %d CPUs: GOMAXPROCS %q, want %q", c.env, c.workers, c.cpus, m, c.maxprocs)
		}
		if len(env) < len(c.env) || !slices.Equal(env[:len(c.env)], c.env) {
			t.Errorf("%q: got %q", c.env, env)
		}
	}
}

// TestSpawnManyWorkersOneProc: a master with more workers than CPUs
// starts each with GOMAXPROCS=1 in its environment.
func TestSpawnManyWorkersOneProc(t *testing.T) {
	f := &fakeSpawner{}
	var got []string
	f.check = func(cmd *exec.Cmd) {
		for _, kv := range cmd.Env {
			if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
				got = append(got, v)
			}
		}
	}
	m := unitMaster(t, f, func(o *Options) { o.Listeners[0].Count = runtime.GOMAXPROCS(0) + 1 })
	if err := m.spawn(m.slots[0]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"1"}) {
		t.Fatalf("%d workers on %d CPUs: GOMAXPROCS %q, want [1]", len(m.slots), runtime.GOMAXPROCS(0), got)
	}
}
