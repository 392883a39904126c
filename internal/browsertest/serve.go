//go:build unix

package browsertest

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// ServePage serves page at / of a loopback HTTP server for the test's
// life, for Run: served is set once the page was fetched, and the body
// the page posts to /result arrives on results (the first one). addr is
// the server's host:port.
func ServePage(t testing.TB, page []byte) (addr string, served *atomic.Bool, results <-chan []byte) {
	t.Helper()
	res := make(chan []byte, 1)
	served = new(atomic.Bool)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		served.Store(true)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("/result", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case res <- b:
		default:
		}
	})
	mux.HandleFunc("/favicon.ico", http.NotFound)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String(), served, res
}
