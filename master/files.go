//go:build unix

package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/ipc"
)

// Paths are the files of one master in its run directory.
type Paths struct {
	Dir    string // the run directory (absolute)
	PID    string // pid file: the master's pid, written once it serves
	Socket string // control socket for the CLI
	Lock   string // held (flock) by the running master
	Log    string // log file of a daemon
}

// PathsIn returns the paths in run directory dir, made absolute.
func PathsIn(dir string) (Paths, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Paths{}, fmt.Errorf("master: run dir %q: %w", dir, err)
	}
	return Paths{
		Dir:    abs,
		PID:    filepath.Join(abs, "goes.pid"),
		Socket: filepath.Join(abs, "goes.sock"),
		Lock:   filepath.Join(abs, "goes.lock"),
		Log:    filepath.Join(abs, "goes.log"),
	}, nil
}

// Errors.
var (
	// ErrRunning: a master already runs in this run directory.
	ErrRunning = errors.New("master: already running")
	// ErrNotRunning: no master answers in this run directory.
	ErrNotRunning = errors.New("master: not running")
	// ErrForeignDir: the run directory belongs to another user.
	ErrForeignDir = errors.New("master: run directory belongs to another user")
)

// EnsureDir creates the run directory owner-only (0700) or checks that an
// existing one belongs to this user, and tightens its mode.
func (p Paths) EnsureDir() error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("master: create run dir: %w", err)
	}
	fi, err := os.Stat(p.Dir)
	if err != nil {
		return fmt.Errorf("master: run dir: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d", ErrForeignDir, p.Dir, st.Uid)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(p.Dir, 0o700); err != nil {
			return fmt.Errorf("master: chmod run dir: %w", err)
		}
	}
	return nil
}

// lock takes the run directory's lock without waiting. The lock is held
// as long as the returned file (or a duplicate of it, in a new master
// after an upgrade) stays open.
func (p Paths) lock() (*os.File, error) {
	f, err := os.OpenFile(p.Lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("master: open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := p.ReadPID()
			return nil, fmt.Errorf("%w (pid %d, run dir %s)", ErrRunning, pid, p.Dir)
		}
		return nil, fmt.Errorf("master: lock %s: %w", p.Lock, err)
	}
	return f, nil
}

// Locked reports whether a master holds the run directory's lock.
func (p Paths) Locked() bool {
	f, err := os.OpenFile(p.Lock, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// ReadPID returns the pid in the pid file. The file may be stale: only an
// answer on the control socket proves a master runs.
func (p Paths) ReadPID() (int, error) {
	b, err := os.ReadFile(p.PID)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("master: pid file %s: bad content %q", p.PID, b)
	}
	return pid, nil
}

// writePID writes the pid file atomically (owner-only).
func (p Paths) writePID(pid int) error {
	tmp, err := os.CreateTemp(p.Dir, ".goes.pid.*")
	if err != nil {
		return fmt.Errorf("master: write pid file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(strconv.Itoa(pid) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p.PID)
	}
	if err != nil {
		return fmt.Errorf("master: write pid file: %w", err)
	}
	return nil
}

// Dial connects to the master's control socket. It returns ErrNotRunning
// when nothing listens there.
func (p Paths) Dial(timeout time.Duration) (*ipc.Conn, net.Conn, error) {
	c, err := net.DialTimeout("unix", p.Socket, timeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("%w (run dir %s)", ErrNotRunning, p.Dir)
		}
		return nil, nil, fmt.Errorf("master: dial %s: %w", p.Socket, err)
	}
	return ipc.NewConn(c), c, nil
}

// Request sends one request to the master and returns its answer; an
// answer of type error is returned as an error.
func (p Paths) Request(m ipc.Message, timeout time.Duration) (ipc.Message, error) {
	ctl, c, err := p.Dial(timeout)
	if err != nil {
		return ipc.Message{}, err
	}
	defer c.Close()
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	if m.ID == 0 {
		m.ID = 1
	}
	if err := ctl.Send(m); err != nil {
		return ipc.Message{}, fmt.Errorf("master: send %s: %w", m.Type, err)
	}
	ans, err := ctl.Recv()
	if err != nil {
		return ipc.Message{}, fmt.Errorf("master: %s: no answer: %w", m.Type, err)
	}
	if ans.Type == ipc.TypeError {
		return ans, fmt.Errorf("master: %s: %s", m.Type, ans.Error)
	}
	return ans, nil
}
