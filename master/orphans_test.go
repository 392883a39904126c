//go:build linux

package master

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// foreignOrphan (GOES_TEST_FOREIGN_ORPHAN="ADDR SOCKET") plays an orphan of
// another hand-over protocol version: it holds a listening socket on ADDR
// and answers on the worker socket SOCKET with Proto+1; SIGTERM (a drain)
// closes the listener, 300 ms later, and ends it.
func foreignOrphan(v string) int {
	addr, path, _ := strings.Cut(v, " ")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 2
	}
	ul, err := orphan.Listen(path)
	if err != nil {
		return 3
	}
	go orphan.Serve(ul, foreignHandler{}, nil)
	<-term
	// A drain takes a moment to close the listener (a loaded machine): the
	// new master must wait for the address, not fail.
	time.Sleep(300 * time.Millisecond)
	ln.Close()
	ul.Close()
	os.Remove(path)
	return 0
}

type foreignHandler struct{}

func (foreignHandler) Info() orphan.Info {
	return orphan.Info{Proto: orphan.Proto + 1, PID: os.Getpid(), Name: "t", Network: "tcp"}
}
func (foreignHandler) Stats() (ipc.WorkerStats, error) { return ipc.WorkerStats{}, nil }
func (foreignHandler) Socket() (*os.File, error)       { return nil, errors.New("not in this version") }
func (foreignHandler) Drain(ipc.DrainRequest) error    { return errors.New("not in this version") }
func (foreignHandler) Final() (ipc.WorkerStats, func(), error) {
	return ipc.WorkerStats{}, nil, errors.New("not in this version")
}

// TestForeignOrphan: an orphan of another hand-over version holds the
// listener's address. The new master cannot take its socket: it tells it
// to drain (SIGTERM) and binds the address once it is free.
func TestForeignOrphan(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	paths, err := PathsIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := paths.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	sock := orphan.SocketPath(paths.Dir, 99)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "GOES_TEST_FOREIGN_ORPHAN="+addr+" "+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the foreign orphan listening", func() error {
		if _, err := os.Stat(sock); err != nil {
			return err
		}
		if c, err := net.Dial("tcp", addr); err != nil {
			return err
		} else {
			c.Close()
		}
		return nil
	})
	tm := startMaster(t, 1, nil, func(o *Options) {
		o.Paths = paths
		o.Listeners[0].Addr = addr
	})
	tm.paths = paths
	tm.waitReady()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the foreign orphan: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the foreign orphan was not told to drain")
	}
	if st := tm.status(); len(st.Workers) != 1 || !strings.HasSuffix(st.Workers[0].Listen, addr) {
		t.Fatalf("status: %+v", st.Workers)
	}
	if left, _ := filepath.Glob(filepath.Join(paths.Dir, "worker-99.sock")); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}
