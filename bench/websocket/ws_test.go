// Package wsbench compares the goes WebSocket server with gorilla/websocket
// on net/http: echo throughput and the memory of 10k idle connections.
// It is a module of its own so gorilla never enters goes' go.mod.
//
//	cd bench/websocket && go test -run XXX -bench . -benchtime 1x   # idle memory
//	cd bench/websocket && go test -run XXX -bench Echo -count 5     # echo
//
// Each server runs in a child process (this test binary re-executed), so
// its memory is measured alone and neither side's file limit is shared.
package wsbench

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	ws "github.com/goes-project/goes/protocols/websocket"
)

const roleEnv = "GOES_WSBENCH_SERVER"

func TestMain(m *testing.M) {
	if kind := os.Getenv(roleEnv); kind != "" {
		serverMain(kind)
		return
	}
	os.Exit(m.Run())
}

// serverStats is what a server child reports about itself.
type serverStats struct {
	HeapInuse  uint64
	StackInuse uint64
	Sys        uint64
	RSS        uint64
	Goroutines int
}

func readStats() serverStats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := serverStats{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			s.RSS = pages * uint64(os.Getpagesize())
		}
	}
	return s
}

// serverMain runs an echo server of the given kind, prints its address and
// answers "stats" lines on stdin with JSON until stdin closes.
func serverMain(kind string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	switch kind {
	case "goes":
		srv := connections.NewServer(connections.Config{
			Protocol: ws.New(),
			Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
				c.SendBytes(data, false)
			}},
			Logger: zerolog.Nop(),
		})
		go srv.Serve(ln)
	case "gorilla":
		up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				typ, data, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(typ, data); err != nil {
					return
				}
			}
		})
		go (&http.Server{Handler: h}).Serve(ln)
	default:
		fmt.Fprintln(os.Stderr, "unknown server", kind)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		b, _ := json.Marshal(readStats())
		fmt.Println(string(b))
	}
	os.Exit(0)
}

// child is a running server process.
type child struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startServer(tb testing.TB, kind string) *child {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+kind)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("server %s: %v", kind, err)
	}
	c.addr = strings.TrimSpace(line)
	return c
}

func (c *child) stats(tb testing.TB) serverStats {
	tb.Helper()
	fmt.Fprintln(c.stdin, "stats")
	line, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatal(err)
	}
	var s serverStats
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// client is a minimal WebSocket client: handshake, masked frames out,
// unmasked frames in.
type client struct {
	nc  net.Conn
	br  *bufio.Reader
	hdr [14]byte
}

func dial(addr string) (*client, error) {
	var nc net.Conn
	var err error
	for range 50 {
		if nc, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // accept queue full: retry
	}
	if err != nil {
		return nil, err
	}
	var key [16]byte
	rand.Read(key[:])
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, err
	}
	c := &client{nc: nc, br: bufio.NewReaderSize(nc, 4096)}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			nc.Close()
			return nil, err
		}
		if line == "\r\n" {
			return c, nil
		}
		if strings.HasPrefix(line, "HTTP/") && !strings.HasPrefix(line, "HTTP/1.1 101") {
			nc.Close()
			return nil, errors.New("handshake refused: " + line)
		}
	}
}

// maskedText returns a masked text frame carrying msg.
func maskedText(msg []byte) []byte {
	f := []byte{0x81}
	switch n := len(msg); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	f = append(f, key[:]...)
	for i, b := range msg {
		f = append(f, b^key[i%4])
	}
	return f
}

// roundTrip writes frame and reads one echoed frame of n payload bytes.
func (c *client) roundTrip(frame []byte, n int, buf []byte) error {
	if _, err := c.nc.Write(frame); err != nil {
		return err
	}
	if _, err := io.ReadFull(c.br, c.hdr[:2]); err != nil {
		return err
	}
	l := int(c.hdr[1] & 0x7f)
	switch l {
	case 126:
		io.ReadFull(c.br, c.hdr[2:4])
		l = int(binary.BigEndian.Uint16(c.hdr[2:4]))
	case 127:
		io.ReadFull(c.br, c.hdr[2:10])
		l = int(binary.BigEndian.Uint64(c.hdr[2:10]))
	}
	if l != n {
		return fmt.Errorf("echo of %d bytes, want %d", l, n)
	}
	_, err := io.ReadFull(c.br, buf[:l])
	return err
}

var kinds = []string{"goes", "gorilla"}

// BenchmarkEcho: round trips of a text message, on 1 connection and on 64
// connections at once; ns/op is per message.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, conns := range []int{1, 64} {
			for _, kind := range kinds {
				b.Run(fmt.Sprintf("size=%dB/conns=%d/server=%s", size, conns, kind), func(b *testing.B) {
					srv := startServer(b, kind)
					msg := make([]byte, size)
					for i := range msg {
						msg[i] = 'a' + byte(i%26)
					}
					frame := maskedText(msg)
					pool := make(chan *client, conns)
					for range conns {
						c, err := dial(srv.addr)
						if err != nil {
							b.Fatal(err)
						}
						defer c.nc.Close()
						pool <- c
					}
					b.SetBytes(int64(size))
					b.ReportAllocs()
					b.SetParallelism((conns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						c := <-pool
						defer func() { pool <- c }()
						buf := make([]byte, size)
						for pb.Next() {
							if err := c.roundTrip(frame, size, buf); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkIdle10k opens 10,000 WebSocket connections that then stay idle
// and reports the server's memory per connection (Go heap + stacks after
// GC, and resident set size), measured from before the first connection.
// Run it with -benchtime 1x.
func BenchmarkIdle10k(b *testing.B) {
	const n = 10000
	for _, kind := range kinds {
		b.Run("server="+kind, func(b *testing.B) {
			for b.Loop() {
				srv := startServer(b, kind)
				// Warm up the server's code paths with one connection.
				if c, err := dial(srv.addr); err == nil {
					c.nc.Close()
				}
				before := srv.stats(b)
				conns := make([]*client, n)
				var wg sync.WaitGroup
				var mu sync.Mutex
				var firstErr error
				next := make(chan int, n)
				for i := range n {
					next <- i
				}
				close(next)
				for range 32 {
					wg.Go(func() {
						for i := range next {
							c, err := dial(srv.addr)
							if err != nil {
								mu.Lock()
								firstErr = err
								mu.Unlock()
								return
							}
							conns[i] = c
						}
					})
				}
				wg.Wait()
				if firstErr != nil {
					b.Fatal(firstErr)
				}
				// Every connection works: one echo on each.
				buf := make([]byte, 8)
				frame := maskedText([]byte("ping!"))
				for _, c := range conns {
					if err := c.roundTrip(frame, 5, buf); err != nil {
						b.Fatal(err)
					}
				}
				after := srv.stats(b)
				goMem := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / n
				rss := float64(after.RSS-before.RSS) / n
				b.ReportMetric(goMem, "go-bytes/conn")
				b.ReportMetric(rss, "rss-bytes/conn")
				b.ReportMetric(float64(after.Goroutines), "goroutines")
				for _, c := range conns {
					c.nc.Close()
				}
			}
		})
	}
}
