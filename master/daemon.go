//go:build unix

package master

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goes-project/goes/internal/procenv"
)

// Daemonize starts this binary again as a detached master: absolute path,
// args (args[0] excluded), its own session, stdin from /dev/null, stdout
// and stderr appended to logPath. It returns the daemon's pid once the
// daemon reports that it serves, or its error (and the daemon is gone).
// The daemon learns what it is from procenv.MasterEnv: Daemon, and the
// descriptor (procenv.DaemonNotifyFD) on which it reports (Notifier).
func Daemonize(args []string, logPath string, timeout time.Duration) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("master: daemon: find executable: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("master: daemon: open log: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("master: daemon: %w", err)
	}
	defer r.Close()
	env := append(os.Environ(), procenv.MasterEnv{Daemon: true, NotifyFD: procenv.DaemonNotifyFD}.Encode()...)
	files := make([]*os.File, procenv.DaemonNotifyFD-2) // ExtraFiles[i] is descriptor 3+i
	files[procenv.DaemonNotifyFD-3] = w
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        append([]string{exe}, args...),
		Env:         env,
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("master: daemon: start: %w", err)
	}
	type result struct {
		pid int
		err error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "ready "):
			pid, perr := strconv.Atoi(strings.TrimPrefix(line, "ready "))
			got <- result{pid: pid, err: perr}
		case strings.HasPrefix(line, "error "):
			got <- result{err: errors.New(strings.TrimPrefix(line, "error "))}
		default:
			got <- result{err: fmt.Errorf("daemon exited before it served (%v); see %s", err, logPath)}
		}
	}()
	select {
	case res := <-got:
		if res.err != nil {
			cmd.Wait()
			return 0, res.err
		}
		cmd.Process.Release()
		return res.pid, nil
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("master: daemon not ready after %s; see %s", timeout, logPath)
	}
}

// Notifier reports a daemon's start to the Daemonize that started it.
// Its zero value (not a daemon) does nothing. Not safe for concurrent use.
type Notifier struct{ f *os.File }

// TakeNotifier returns the notifier of a daemon on descriptor fd
// (procenv.MasterEnv.NotifyFD; 0, not a daemon: the zero Notifier) and
// makes fd close-on-exec. Call it once. The variable that names fd stays
// in the environment until an upgrade hands the environment on
// (procenv.SuccessorEnv.Apply removes it): workers never see it.
func TakeNotifier(fd int) Notifier {
	if fd < 3 {
		return Notifier{}
	}
	syscall.CloseOnExec(fd)
	return Notifier{f: os.NewFile(uintptr(fd), "notify")}
}

// Ready reports that the master serves.
func (n *Notifier) Ready(pid int) {
	if n.f != nil {
		fmt.Fprintf(n.f, "ready %d\n", pid)
		n.f.Close()
		n.f = nil
	}
}

// Fail reports that the master could not start.
func (n *Notifier) Fail(err error) {
	if n.f != nil {
		fmt.Fprintf(n.f, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		n.f.Close()
		n.f = nil
	}
}
