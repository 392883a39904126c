//go:build unix

// Package proctest helps tests drive real goes programs: build a binary
// into a temporary directory, run its CLI, start it in the foreground or as
// a daemon, and make sure no process outlives the test (every process
// group started is killed in t.Cleanup); poll with testkit.Eventually.
package proctest

import (
	"bytes"
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

	"github.com/goes-project/goes/internal/testkit"
)

// Build compiles the package pkg (a path relative to the caller's
// directory, or an import path) into t.TempDir() and returns the binary.
// ldflags may set -X main.version=...
func Build(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), binName(pkg))
	if err := BuildTo(out, pkg, ldflags...); err != nil {
		t.Fatal(err)
	}
	return out
}

func binName(pkg string) string {
	if abs, err := filepath.Abs(pkg); err == nil && (pkg == "." || pkg == "..") {
		pkg = abs
	}
	return filepath.Base(pkg)
}

// BuildRace is Build with the race detector when this test binary has it
// (go test -race), so that the processes a test starts are checked too.
func BuildRace(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), binName(pkg))
	var flags []string
	if Race {
		flags = []string{"-race"}
	}
	if err := buildTo(out, pkg, flags, ldflags); err != nil {
		t.Fatal(err)
	}
	return out
}

// BuildTo compiles pkg into the file out (for TestMain, which has no
// testing.TB).
func BuildTo(out, pkg string, ldflags ...string) error { return buildTo(out, pkg, nil, ldflags) }

func buildTo(out, pkg string, flags, ldflags []string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtimeGOROOT(), "bin", "go")
	}
	args := append([]string{"build", "-o", out}, flags...)
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", joinSpace(ldflags))
	}
	args = append(args, pkg)
	if b, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func joinSpace(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Err            error
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.Code, r.Err, r.Stdout, r.Stderr)
}

// Run runs bin with args, bounded by 60 s, and returns what it printed.
// A daemon it starts ("started (pid N") is killed in t.Cleanup.
func Run(t testing.TB, bin string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { KillGroup(pgid) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		KillGroup(pgid)
		err = <-done
		t.Errorf("%s %v: still running after 60 s", bin, args)
	}
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Err: err, Code: cmd.ProcessState.ExitCode()}
	if m := startedRE.FindStringSubmatch(res.Stdout); m != nil {
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { KillGroup(pid) })
	}
	return res
}

var startedRE = regexp.MustCompile(`started \(pid (\d+)`)

// Proc is a program running in its own process group.
type Proc struct {
	Cmd    *exec.Cmd
	Pgid   int
	out    *os.File
	doneCh chan struct{}
	err    error
}

// Start starts bin in its own process group; t.Cleanup kills the group.
// Its output goes to a file (not a pipe: Wait returns when the program
// exits even if a process it started holds its stdout).
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := os.CreateTemp(t.TempDir(), "output-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Proc{Cmd: cmd, Pgid: cmd.Process.Pid, out: out, doneCh: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.doneCh)
	}()
	t.Cleanup(func() {
		KillGroup(p.Pgid)
		<-p.doneCh
		if t.Failed() {
			t.Logf("output of %s:\n%s", bin, p.Output())
		}
	})
	return p
}

// Output is what the program printed so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.out.Name())
	return string(b)
}

// Wait waits up to d for the program to exit and returns its error.
func (p *Proc) Wait(d time.Duration) (error, bool) {
	select {
	case <-p.doneCh:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Signal sends sig to the program's whole process group, as a terminal
// does for Ctrl-C.
func (p *Proc) Signal(sig syscall.Signal) error { return syscall.Kill(-p.Pgid, sig) }

// KillGroup kills every process of the group pgid.
func KillGroup(pgid int) {
	if pgid > 1 {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// GroupGone reports whether no process is left in group pgid. Zombies
// count as gone: an orphan is reaped by init, which may take its time (some
// sandboxes' init reaps every few seconds).
func GroupGone(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return true
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return false // no /proc: only kill can tell
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// After "pid (comm)": state ppid pgrp ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return false
		}
	}
	return true
}

// Alive reports whether process pid exists (and is not a zombie).
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// LockPort serializes the tests of every package that use a fixed port
// (the seed programs' 8080) with a file lock, and fails clearly when the
// port is taken by something else.
func LockPort(t testing.TB, port int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("goes-test-port-%d.lock", port)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	testkit.Eventually(t, testkit.Wait, testkit.Poll, fmt.Sprintf("port %d free", port), func() error {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		return ln.Close()
	})
}
