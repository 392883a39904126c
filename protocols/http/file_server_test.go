//go:build unix

package http_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	nethttp "net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// fileMod is the modification time of the served test files.
var fileMod = time.Date(2026, 11, 26, 8, 0, 0, 500, time.UTC)

// fileDir writes files (name to content) in a new directory with
// modification time fileMod.
func fileDir(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fileMod, fileMod); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fileHandler serves the files of dir with ServeFile (under /poll/ through
// a wrapper that hides the connection's WaitDrained, so that the sender
// polls), mapping the
// request path as ServeFile's documentation says and its errors to 404,
// 403 and 405. conns gets every connection that asked for a file, when
// not nil.
func fileHandler(t testing.TB, dir string, conns chan<- connections.Connection) connections.Handler {
	fsys := os.DirFS(dir)
	return connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
		if conns != nil {
			select {
			case conns <- c:
			default:
			}
		}
		p := http.RequestOf(c).Path()
		var sc http.StreamConn = c
		if rest, ok := strings.CutPrefix(p, "/poll/"); ok {
			p, sc = rest, struct{ connections.Connection }{c}
		}
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if name == "" {
			name = "."
		}
		err := http.ServeFile(sc, fsys, name)
		status := 0
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			status = 404
		case errors.Is(err, http.ErrIsDir):
			status = 403
		case errors.Is(err, http.ErrFileMethod):
			status = 405
		default:
			t.Errorf("ServeFile %q: %v", name, err)
			status = 500
		}
		if status != 0 {
			http.Respond(c, &http.Response{Status: status, Body: []byte(http.StatusText(status))})
		}
	}}
}

func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// TestServeFileCurl downloads a small and a 24 MiB file with curl, whole
// and in ranges, asks conditionally and with HEAD, and gets the errors
// the handler maps.
func TestServeFileCurl(t *testing.T) {
	small, big := testkit.Pattern(3000), testkit.Pattern(24<<20)
	dir := fileDir(t, map[string][]byte{"small.txt": small, "big.bin": big, "sub/a.html": []byte("<p>a</p>")})
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, fileHandler(t, dir, nil))
	base := "http://" + ts.addr
	if got := curl(t, base+"/small.txt"); got != string(small) {
		t.Fatalf("small: %d bytes", len(got))
	}
	// Both on one connection, the big one after the small one.
	if got := curl(t, base+"/small.txt", base+"/big.bin"); sum([]byte(got)) != sum(append(small[:len(small):len(small)], big...)) {
		t.Fatalf("big: %d bytes, sha256 differs", len(got))
	}
	if got := curl(t, "-r", "100-199", base+"/big.bin"); got != string(big[100:200]) {
		t.Fatalf("-r 100-199: %d bytes", len(got))
	}
	if got := curl(t, "-r", "-50", base+"/big.bin"); got != string(big[len(big)-50:]) {
		t.Fatalf("-r -50: %d bytes", len(got))
	}
	if got := curl(t, "-r", "20000000-", base+"/big.bin"); sum([]byte(got)) != sum(big[20000000:]) {
		t.Fatalf("-r 20000000-: %d bytes", len(got))
	}
	out := curl(t, "-i", "-r", "3000-", base+"/small.txt")
	if !strings.HasPrefix(out, "HTTP/1.1 416 ") || !strings.Contains(out, "\r\nContent-Range: bytes */3000\r\n") {
		t.Fatalf("unsatisfiable range: %q", out)
	}
	code := func(args ...string) string {
		t.Helper()
		return curl(t, append([]string{"-o", "/dev/null", "-w", "%{http_code}"}, args...)...)
	}
	if got := code("-z", fileMod.Add(time.Hour).Format(nethttp.TimeFormat), base+"/big.bin"); got != "304" {
		t.Fatalf("-z later: %s", got)
	}
	if got := code("-z", fileMod.Add(-time.Hour).Format(nethttp.TimeFormat), base+"/small.txt"); got != "200" {
		t.Fatalf("-z earlier: %s", got)
	}
	head := curl(t, "-I", base+"/big.bin")
	etag := ""
	for line := range strings.SplitSeq(head, "\r\n") {
		if v, ok := strings.CutPrefix(line, "ETag: "); ok {
			etag = v
		}
	}
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "\r\nContent-Length: 25165824\r\n", "\r\nAccept-Ranges: bytes\r\n",
		"\r\nLast-Modified: " + fileMod.Format(http.TimeFormat) + "\r\n", "\r\nContent-Type: application/octet-stream\r\n"} {
		if !strings.Contains(head, want) {
			t.Fatalf("HEAD lacks %q: %q", want, head)
		}
	}
	if etag == "" {
		t.Fatalf("HEAD has no ETag: %q", head)
	}
	if got := code("-H", "If-None-Match: "+etag, base+"/big.bin"); got != "304" {
		t.Fatalf("If-None-Match %s: %s", etag, got)
	}
	if got := curl(t, "-i", base+"/sub/a.html"); !strings.Contains(got, "\r\nContent-Type: text/html; charset=utf-8\r\n") || !strings.HasSuffix(got, "\r\n\r\n<p>a</p>") {
		t.Fatalf("a.html: %q", got)
	}
	for p, want := range map[string]string{"/missing": "404", "/sub": "403", "/": "403", "/../../etc/passwd": "404"} {
		if got := code("--path-as-is", base+p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if got := code("-X", "POST", base+"/small.txt"); got != "405" {
		t.Errorf("POST: %s", got)
	}
}

// TestServeFileNetHTTPClient asks with Go's client: ranges, If-Range, a
// file larger than a piece.
func TestServeFileNetHTTPClient(t *testing.T) {
	big := testkit.Pattern(1<<20 + 123)
	dir := fileDir(t, map[string][]byte{"big.bin": big})
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, fileHandler(t, dir, nil))
	client := newClient(t)
	get := func(fields ...string) (*nethttp.Response, []byte) {
		t.Helper()
		req, err := nethttp.NewRequest("GET", "http://"+ts.addr+"/big.bin", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(fields); i += 2 {
			req.Header.Set(fields[i], fields[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, b := get()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || sum(b) != sum(big) || etag == "" {
		t.Fatalf("GET: %d, %d bytes, ETag %q", resp.StatusCode, len(b), etag)
	}
	for _, tt := range []struct {
		fields []string
		status int
		body   []byte
	}{
		{[]string{"Range", "bytes=70000-1000000"}, 206, big[70000:1000001]},
		{[]string{"Range", "bytes=-100000"}, 206, big[len(big)-100000:]},
		{[]string{"Range", "bytes=10-19", "If-Range", etag}, 206, big[10:20]},
		{[]string{"Range", "bytes=10-19", "If-Range", `"other"`}, 200, big},
		{[]string{"Range", "bytes=0-0,5-5"}, 200, big},
	} {
		resp, b := get(tt.fields...)
		if resp.StatusCode != tt.status || sum(b) != sum(tt.body) {
			t.Errorf("%q: %d, %d bytes; want %d, %d bytes", tt.fields, resp.StatusCode, len(b), tt.status, len(tt.body))
		}
	}
}

// TestServeFilePipelined writes requests for a file of several pieces,
// a small file and a missing one in one write (then the large file again,
// with the polling wait, and an HTTP/1.0 request) and reads the answers
// in order: the connection reads nothing while the large body is sent.
func TestServeFilePipelined(t *testing.T) {
	big, small := testkit.Pattern(1<<20+1), []byte("small")
	dir := fileDir(t, map[string][]byte{"big.bin": big, "small.txt": small})
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, http.New(), 0, fileHandler(t, dir, nil))
		rc := dial(t, ts.addr)
		rc.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
			"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /poll/big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HTTP/1.0\r\n\r\n")
		for i, want := range []struct {
			status int
			body   []byte
		}{{200, big}, {200, small}, {404, []byte("Not Found")}, {200, big}, {200, small}} {
			resp, body := rc.response("GET")
			if resp.StatusCode != want.status || sum([]byte(body)) != sum(want.body) {
				t.Fatalf("answer %d: %d, %d bytes; want %d, %d bytes", i, resp.StatusCode, len(body), want.status, len(want.body))
			}
		}
		rc.expectEOF()
	})
}

// TestServeFileSlowReader: a client that reads nothing at first, then
// slowly, downloads a 4 MiB file through a 64 KiB send buffer; sampled
// all along, the server connection's send buffer never holds more than
// MaxSendBufferSize plus one 64 KiB piece, and the body arrives whole.
func TestServeFileSlowReader(t *testing.T) {
	const maxSend, piece = 64 << 10, 64 << 10
	big := testkit.Pattern(4 << 20)
	dir := fileDir(t, map[string][]byte{"big.bin": big})
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		conns := make(chan connections.Connection, 1)
		lc := net.ListenConfig{Control: sockBuf(syscall.SO_SNDBUF, 16<<10)}
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ts := serveConfig(t, e, ln, connections.Config{Protocol: http.New(), MaxSendBufferSize: maxSend, Handler: fileHandler(t, dir, conns)})
		d := net.Dialer{Control: sockBuf(syscall.SO_RCVBUF, 16<<10), Timeout: ioTimeout}
		nc, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(ioTimeout))
		rc := &rawConn{t: t, nc: nc, br: bufioReader(nc)}
		rc.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		var c connections.Connection
		select {
		case c = <-conns:
		case <-time.After(ioTimeout):
			t.Fatal("no request within the deadline")
		}
		var most atomic.Int64
		stop, sampled := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				if n := int64(c.SendBufferLen()); n > most.Load() {
					most.Store(n)
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Microsecond):
				}
			}
		}()
		// Not reading: the buffer fills up to its limit.
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "a full send buffer", func() bool { return most.Load() >= maxSend })
		head := rc.readHead()
		if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "\r\nContent-Length: 4194304\r\n") {
			t.Fatalf("head: %q", head)
		}
		// Slowly at first, then as fast as it goes.
		got := make([]byte, 0, len(big))
		buf := make([]byte, 4096)
		for i := 0; len(got) < len(big); i++ {
			n, err := rc.br.Read(buf[:min(len(buf), len(big)-len(got))])
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("after %d bytes: %v", len(got), err)
			}
			if i < 64 {
				time.Sleep(time.Millisecond)
			}
		}
		close(stop)
		<-sampled
		if sum(got) != sum(big) {
			t.Fatal("body differs")
		}
		if m := most.Load(); m > maxSend+piece {
			t.Fatalf("send buffer reached %d bytes, over %d", m, maxSend+piece)
		}
		t.Logf("largest send buffer sampled: %d bytes", most.Load())
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "the sender's end", func() bool { return http.FileSenders() == 0 })
	})
}

// TestServeFilePeerCloses: the client leaves in the middle of a large
// file; the sender goroutine ends and the file is closed, and the
// connection is closed.
func TestServeFilePeerCloses(t *testing.T) {
	big := testkit.Pattern(8 << 20)
	dir := fileDir(t, map[string][]byte{"big.bin": big})
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		closed := make(chan struct{}, 1)
		h := fileHandler(t, dir, nil)
		h.OnClose = func(connections.Connection) { closed <- struct{}{} }
		ts := serveConfig(t, e, mustListen(t), connections.Config{Protocol: http.New(), MaxSendBufferSize: 128 << 10, Handler: h})
		rc := dial(t, ts.addr)
		rc.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
		rc.readHead()
		rc.readN(100 << 10)
		if http.FileSenders() == 0 {
			t.Fatal("no sender goroutine while the body is sent")
		}
		rc.nc.Close()
		select {
		case <-closed:
		case <-time.After(ioTimeout):
			t.Fatal("OnClose did not run")
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "the sender's end", func() bool { return http.FileSenders() == 0 })
	})
}

func mustListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
