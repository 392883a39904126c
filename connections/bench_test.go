package connections_test

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
)

// benchServer starts a server with cfg on loopback TCP for a benchmark.
func benchServer(b *testing.B, cfg connections.Config) string {
	b.Helper()
	cfg.Logger = zerolog.Nop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := connections.NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	b.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String()
}

// BenchmarkLoopbackEcho measures one request and its answer over loopback
// TCP, through the protocol, OnMessage and Send, for every engine; with
// cpu-ns/op, the CPU time the process (client and server) spent per
// request, which other processes on a shared machine disturb less than
// the time per request. The
// allocations reported are the client's and the server's together; the
// client allocates nothing in steady state. depth=16 pipelines 16
// requests per round trip (one op is one request). proto=http is the
// seed's HTTP example: parse the request, OnMessage, encode the response.
func BenchmarkLoopbackEcho(b *testing.B) {
	cases := []struct {
		name  string
		proto func() connections.Config
		req   []byte
	}{
		{name: "proto=raw", proto: func() connections.Config {
			return connections.Config{Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				c.SendBytes(d, false)
			}}}
		}, req: []byte("ping ping ping ping ping ping\n")},
		{name: "proto=text", proto: func() connections.Config {
			return connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				c.SendBytes(d, false)
			}}}
		}, req: []byte("ping ping ping ping ping ping\n")},
		{name: "proto=http", proto: func() connections.Config {
			return connections.Config{Protocol: http.New(), Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				c.Send("hello", false)
			}}}
		}, req: []byte("GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n")},
	}
	for _, e := range testkit.Engines() {
		for _, tc := range cases {
			for _, depth := range []int{1, 16} {
				if depth > 1 && tc.name == "proto=raw" {
					continue // raw has no framing: pipelined reads merge
				}
				b.Run("engine="+e.String()+"/"+tc.name+"/depth="+itoa(depth), func(b *testing.B) {
					cfg := tc.proto()
					cfg.Engine, cfg.CallbackGoroutines = e.Name, e.Pool
					addr := benchServer(b, cfg)
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					req := bytes.Repeat(tc.req, depth)
					resp := make([]byte, depth*answerLen(b, c, tc.req))
					b.SetBytes(int64(len(tc.req)))
					b.ReportAllocs()
					n := 0
					cpu0 := cpuTime()
					for b.Loop() {
						if n%depth == 0 {
							if _, err := c.Write(req); err != nil {
								b.Fatal(err)
							}
						}
						n++
						if n%depth == 0 {
							if _, err := io.ReadFull(c, resp); err != nil {
								b.Fatal(err)
							}
						}
					}
					if n%depth != 0 {
						io.ReadFull(c, resp)
					}
					if cpu := cpuTime() - cpu0; cpu > 0 {
						b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/op")
					}
				})
			}
		}
	}
}

// answerLen makes one exchange of req on c and returns the length of the
// answer, which ends with "hello" (HTTP) or echoes req.
func answerLen(b *testing.B, c net.Conn, req []byte) int {
	b.Helper()
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.HasSuffix(got, []byte("hello")) && !bytes.Equal(got, req) {
		n, err := c.Read(buf)
		if err != nil {
			b.Fatalf("first answer %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	return len(got)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// BenchmarkIdleMemory reports the server's heap per idle connection
// (heap-B/conn: live heap after a GC, server and client sides of the
// loopback connections together minus the client's share measured on its
// own), for connections that sent nothing and for connections idle after
// one request (used=true). Run it with -benchtime=1x: every iteration
// opens and closes conns connections.
func BenchmarkIdleMemory(b *testing.B) {
	const conns = 2000
	cases := []struct {
		name string
		cfg  func() connections.Config
		req  []byte
	}{
		{name: "proto=raw", cfg: func() connections.Config {
			return connections.Config{Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				c.SendBytes(d, false)
			}}}
		}, req: []byte("ping\n")},
		{name: "proto=http", cfg: func() connections.Config {
			return connections.Config{Protocol: http.New(), Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				c.Send("hello", false)
			}}}
		}, req: []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")},
		{name: "proto=http/idle=1m", cfg: func() connections.Config {
			return connections.Config{Protocol: http.New(), IdleTimeout: time.Minute, Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
				c.Send("hello", false)
			}}}
		}, req: []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")},
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// dialAll opens n client connections (each one request first when req
	// is set) and returns them.
	dialAll := func(b *testing.B, addr string, n int, req []byte) []net.Conn {
		cs := make([]net.Conn, 0, n)
		buf := make([]byte, 4096)
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if req != nil {
				c.Write(req)
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			cs = append(cs, c)
		}
		return cs
	}
	for _, e := range testkit.Engines() {
		if e.Pool > 0 {
			continue
		}
		for _, tc := range cases {
			for _, used := range []bool{false, true} {
				b.Run("engine="+e.String()+"/"+tc.name+"/used="+strconv.FormatBool(used), func(b *testing.B) {
					// The client's own share: connections to a bare
					// listener that accepts and holds them.
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						b.Fatal(err)
					}
					defer ln.Close()
					var held []net.Conn
					acceptDone := make(chan struct{})
					go func() {
						defer close(acceptDone)
						for {
							c, err := ln.Accept()
							if err != nil {
								return
							}
							held = append(held, c)
						}
					}()
					cfg := tc.cfg()
					cfg.Engine = e.Name
					addr := benchServer(b, cfg)
					var req []byte
					if used {
						req = tc.req
					}
					for b.Loop() {
						h0 := heap()
						cs := dialAll(b, ln.Addr().String(), conns, nil)
						h1 := heap()
						ss := dialAll(b, addr, conns, req)
						h2 := heap()
						client := float64(h1-h0) / conns // client conn + its accepted twin (net.Conn, netpoll)
						both := float64(h2-h1) / conns   // client conn + the server's connection
						b.ReportMetric(both-client/2, "heap-B/conn")
						for _, c := range append(cs, ss...) {
							c.Close()
						}
					}
					ln.Close()
					<-acceptDone
					for _, c := range held {
						c.Close()
					}
				})
			}
		}
	}
}
