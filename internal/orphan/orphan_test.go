//go:build linux

package orphan

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

// fakeWorker is a Handler over a real TCP listener.
type fakeWorker struct {
	ln      *net.TCPListener
	info    Info
	drains  chan ipc.DrainRequest
	drained chan ipc.WorkerStats // Final's figures, when the drain is over
	written chan struct{}        // closed when Final's answer is written
}

func (f *fakeWorker) Info() Info { return f.info }
func (f *fakeWorker) Stats() (ipc.WorkerStats, error) {
	return ipc.WorkerStats{PID: os.Getpid(), State: "orphan", Load: ipc.Load{Requests: 42}}, nil
}
func (f *fakeWorker) Socket() (*os.File, error) { return procenv.DupFile(f.ln, "listener") }
func (f *fakeWorker) Drain(req ipc.DrainRequest) error {
	f.drains <- req
	return nil
}
func (f *fakeWorker) Final() (ipc.WorkerStats, func(), error) {
	return <-f.drained, func() { close(f.written) }, nil
}

func serve(t *testing.T, proto int) (path string, w *fakeWorker) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	w = &fakeWorker{ln: ln, drains: make(chan ipc.DrainRequest, 1), drained: make(chan ipc.WorkerStats), written: make(chan struct{}),
		info: Info{Proto: proto, PID: os.Getpid(), Name: "web", Network: "tcp", Key: "127.0.0.1:0#0", Bound: ln.Addr().String()}}
	path = SocketPath(t.TempDir(), 7)
	ul, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	go Serve(ul, w, nil)
	return path, w
}

// TestHandOver: a new master learns who the orphan is, takes its
// listening socket (the same socket: a connection to the orphan's address
// is accepted on the copy), reads its figures and tells it to drain.
func TestHandOver(t *testing.T) {
	path, w := serve(t, Proto)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("worker socket: %v, %v: want mode 0600", fi, err)
	}
	if got := Glob(filepath.Dir(path)); len(got) != 1 || got[0] != path {
		t.Fatalf("Glob: %v", got)
	}
	c, err := Dial(path, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Info != w.info {
		t.Fatalf("info %+v, want %+v", c.Info, w.info)
	}
	f, err := c.TakeSocket(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The socket is shared: the hand-over must not have switched it to
	// blocking mode (accept would hang, Close would not interrupt it).
	rc, _ := w.ln.SyscallConn()
	var flags int
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("the shared socket is in blocking mode after the hand-over")
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != w.ln.Addr().String() {
		t.Fatalf("took %s, want %s", ln.Addr(), w.ln.Addr())
	}
	w.ln.Close() // the orphan's copy: the socket lives on in ours
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	if a, err := ln.Accept(); err != nil {
		t.Fatalf("accept on the adopted socket: %v", err)
	} else {
		a.Close()
	}
	st, err := c.Stats(2 * time.Second)
	if err != nil || st.Requests != 42 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if err := c.Drain(ipc.DrainRequest{Timeout: 3 * time.Second, Reload: true}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if req := <-w.drains; req.Timeout != 3*time.Second || !req.Reload {
		t.Fatalf("drain %+v", req)
	}
	// The last figures, on a conversation of their own, once drained;
	// the first conversation answers meanwhile.
	fc, err := Dial(path, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	type final struct {
		st  ipc.WorkerStats
		err error
	}
	got := make(chan final, 1)
	go func() {
		st, err := fc.Final(5 * time.Second)
		got <- final{st, err}
	}()
	if st, err := c.Stats(2 * time.Second); err != nil || st.Requests != 42 {
		t.Fatalf("stats while Final waits: %+v, %v", st, err)
	}
	w.drained <- ipc.WorkerStats{Load: ipc.Load{Requests: 43}}
	if f := <-got; f.err != nil || f.st.Requests != 43 {
		t.Fatalf("final %+v, %v", f.st, f.err)
	}
	select {
	case <-w.written:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not call written after the answer")
	}
}

// TestOtherVersion: an orphan of another protocol version is told apart
// (ErrProto, with its pid) and hands nothing over; an orphan refuses every
// request but hello from a client of another version.
func TestOtherVersion(t *testing.T) {
	path, _ := serve(t, Proto+1)
	c, err := Dial(path, 2*time.Second)
	if !errors.Is(err, ErrProto) || c == nil || c.Info.PID != os.Getpid() {
		t.Fatalf("Dial of another version: %v, %+v", err, c)
	}

	path, _ = serve(t, Proto)
	nc, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	ask := func(typ string, body any) ipc.Message {
		m, _ := ipc.New(typ, 1, body)
		b, _ := json.Marshal(m)
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, maxPacket)
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		var ans ipc.Message
		if err := json.Unmarshal(buf[:n], &ans); err != nil {
			t.Fatal(err)
		}
		return ans
	}
	if ans := ask(TypeSocket, nil); ans.Type != ipc.TypeError {
		t.Fatalf("socket before hello: %+v", ans)
	}
	if ans := ask(TypeHello, HelloRequest{Proto: Proto + 1}); ans.Type != ipc.TypeOK {
		t.Fatalf("hello of another version: %+v", ans)
	}
	if ans := ask(TypeDrain, ipc.DrainRequest{}); ans.Type != ipc.TypeError {
		t.Fatalf("drain after a hello of another version: %+v", ans)
	}
}

// TestStale: a worker socket nobody listens on is stale.
func TestStale(t *testing.T) {
	path := SocketPath(t.TempDir(), 1)
	ul, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ul.Close() // the file stays (SetUnlinkOnClose false), as after kill -9
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(path, time.Second); !errors.Is(err, ErrStale) {
		t.Fatalf("Dial of a stale socket: %v", err)
	}
	if _, err := Dial(path+".none", time.Second); !errors.Is(err, ErrStale) {
		t.Fatalf("Dial of a missing socket: %v", err)
	}
}
