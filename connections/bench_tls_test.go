package connections_test

import (
	"crypto/tls"
	"io"
	"testing"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

// BenchmarkTLSKeepAlive measures one HTTPS keep-alive request and its
// answer over loopback on a TLS listener served by the event loops (the
// path of bench/tlscpu.sh's keep-alive rows, issue 20): record read,
// decrypted, parsed, answered, sealed, written. cpu-ns/op is the CPU of
// the process, client (Go's tls.Conn) and server together; allocs/op
// theirs together too.
func BenchmarkTLSKeepAlive(b *testing.B) {
	ln := newTLSLn(b, 0)
	cfg := connections.Config{Protocol: http.New(), Logger: zerolog.Nop(), Transport: "tls",
		Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) { c.Send("hello", false) }}}
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	b.Cleanup(func() { s.Close(); <-done })
	c, err := tls.Dial("tcp", ln.raw.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n")
	resp := make([]byte, answerLen(b, c, req))
	b.ReportAllocs()
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/op")
	}
}
