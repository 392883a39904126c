//go:build unix

package http_test

import (
	"bufio"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// BenchmarkServeFileLoopback downloads a file over one keep-alive
// loopback connection, request after request: goes's ServeFile (with
// connections.WaitDrained, default engine and send buffer) side by side
// with net/http's ServeContent (the file opened per request, as
// FileServer does) and FileServer. The client is the same for all (one
// raw connection, net/http's ReadResponse, the body copied to
// io.Discard); allocations count the whole process, client included.
func BenchmarkServeFileLoopback(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		dir := b.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f.bin"), testkit.Pattern(size.n), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run("size="+size.name+"/impl=goes", func(b *testing.B) {
			ts := serve(b, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, fileHandler(b, dir, nil))
			benchDownload(b, ts.addr, size.n)
		})
		b.Run("size="+size.name+"/impl=nethttp-ServeContent", func(b *testing.B) {
			benchDownload(b, serveNetHTTP(b, nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
				f, err := os.Open(filepath.Join(dir, "f.bin"))
				if err != nil {
					nethttp.Error(w, err.Error(), 404)
					return
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					nethttp.Error(w, err.Error(), 500)
					return
				}
				nethttp.ServeContent(w, r, "f.bin", fi.ModTime(), f)
			})), size.n)
		})
		b.Run("size="+size.name+"/impl=nethttp-FileServer", func(b *testing.B) {
			benchDownload(b, serveNetHTTP(b, nethttp.FileServer(nethttp.Dir(dir))), size.n)
		})
	}
}

// serveNetHTTP serves h with net/http on a loopback listener until the
// benchmark ends.
func serveNetHTTP(b *testing.B, h nethttp.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &nethttp.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// benchDownload gets /f.bin (n bytes) from addr once per iteration on one
// keep-alive connection.
func benchDownload(b *testing.B, addr string, n int) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 64<<10)
	req := []byte("GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	greq := &nethttp.Request{Method: "GET"}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := nethttp.ReadResponse(br, greq)
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || got != int64(n) || resp.StatusCode != 200 {
			b.Fatalf("status %d, %d bytes: %v", resp.StatusCode, got, err)
		}
	}
}
