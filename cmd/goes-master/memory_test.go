//go:build linux

package main_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/cmd/goes-master/app"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// defaultSetup is goes-master with its embedded default config, changed
// only where a test must: every listener on port 0, and two workers per
// listener (the default is one per CPU; the machine had two).
// extra is merged into every listener (a JSON object's fields, or "").
func defaultSetup(t *testing.T, extra string) *setup {
	t.Helper()
	s := newSetup(t, "10s")
	var cfg goes.Config
	if err := json.Unmarshal(app.DefaultConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		scheme, rest, _ := strings.Cut(lc.Listen, "://")
		host, _, err := net.SplitHostPort(rest)
		if err != nil {
			t.Fatal(err)
		}
		lc.Listen = scheme + "://" + net.JoinHostPort(host, "0")
		lc.Count = 2
		if extra != "" {
			b, _ := json.Marshal(lc)
			var m map[string]any
			json.Unmarshal(b, &m)
			if err := json.Unmarshal([]byte(extra), &m); err != nil {
				t.Fatal(err)
			}
			b, _ = json.Marshal(m)
			*lc = goes.ListenerConfig{}
			if err := json.Unmarshal(b, lc); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg.LogLevel = "info" // debug logs a line per attack connection
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// listenerPIDs returns the pids of the workers of the listener named name.
func listenerPIDs(t *testing.T, st ipc.Status, name string) []int {
	t.Helper()
	var pids []int
	for _, w := range st.Workers {
		if w.Name == name {
			pids = append(pids, w.PID)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no worker named %q in %+v", name, st.Workers)
	}
	return pids
}

// procKB returns a "kB" field of /proc/PID/status (VmRSS, VmHWM).
func procKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no %s", pid, field)
}

// sumKB sums procKB over pids.
func sumKB(t *testing.T, pids []int, field string) int64 {
	t.Helper()
	var n int64
	for _, pid := range pids {
		kb, err := procKB(pid, field)
		if err != nil {
			t.Fatal(err)
		}
		n += kb
	}
	return n
}

// attack is a set of hostile connections: each of n slots connects,
// sends head and then up to body bytes in 64 KiB writes; a connection
// whose write fails (the server shed it) is replaced by a new one, at
// most attempts times per slot and until stop; one that has sent
// everything is held until stop.
type attack struct {
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
	stopCh   chan struct{}
	stopOnce sync.Once
	sent     atomic.Int64 // body bytes written, all connections
	dials    atomic.Int64 // connections made
	failed   atomic.Int64 // connections whose writes failed
	complete atomic.Int64 // connections that sent everything and are held
	dialErr  atomic.Int64
}

func startAttack(addr string, n, attempts int, head []byte, body int, deadline time.Time) *attack {
	a := &attack{stopCh: make(chan struct{})}
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	// one connection's attack: true when it sent everything (it is held).
	once := func() bool {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			a.dialErr.Add(1)
			return false
		}
		a.dials.Add(1)
		a.mu.Lock()
		a.conns = append(a.conns, c)
		a.mu.Unlock()
		c.SetWriteDeadline(deadline)
		if _, err := c.Write(head); err != nil {
			a.failed.Add(1)
			return false
		}
		for left := body; left > 0; {
			k, err := c.Write(chunk[:min(left, len(chunk))])
			a.sent.Add(int64(k))
			left -= k
			if err != nil {
				a.failed.Add(1)
				c.Close()
				return false
			}
		}
		a.complete.Add(1)
		return true
	}
	for range n {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for range attempts {
				if !time.Now().Before(deadline) || once() {
					return
				}
				select {
				case <-a.stopCh:
					return
				default:
				}
			}
		}()
	}
	return a
}

// stop ends the attack: no new connections, and every one is closed.
func (a *attack) stop() {
	a.stopOnce.Do(func() { close(a.stopCh) })
	a.mu.Lock()
	for _, c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// curlTimed runs curl once and returns its status code and wall time.
func curlTimed(t *testing.T, curl, url string) (int, time.Duration, error) {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--noproxy", "*", url).Output()
	d := time.Since(start)
	if err != nil {
		return 0, d, fmt.Errorf("curl: %v (%s)", err, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	return code, d, err
}

// TestLargeBodiesMemoryBounded is issue 12's memory attack on goes-master
// with its default config: 150 connections each send a POST head with
// Content-Length: 10000000 and 9 MiB of its body, then hold the
// connection. The two HTTP workers' summed RSS may grow by at most
// 300 MiB, 100 curl requests made from the moment the attack has
// connected all get 200, each within a second, and status --json counts
// the connections shed.
func TestLargeBodiesMemoryBounded(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (the CI image installs it): %v", err)
	}
	const (
		conns     = 150
		body      = 9 << 20
		maxGrowth = 300 << 10 // kB
	)
	s := defaultSetup(t, "")
	st := s.start()
	addr := listenAddrs(t, st)["http-hello"]
	pids := listenerPIDs(t, st, "http-hello")
	url := "http://" + addr + "/"
	if code, _, err := curlTimed(t, curl, url); err != nil || code != 200 {
		t.Fatalf("before the attack: %d, %v", code, err)
	}
	before := sumKB(t, pids, "VmRSS")

	// A watcher samples the workers' RSS and ends the attack early (so
	// that a failing run does not take the machine's memory) once the
	// growth is over the bound.
	var peak atomic.Int64
	over := make(chan struct{})
	watchDone := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		defer close(watchDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var kb int64
			for _, pid := range pids {
				v, _ := procKB(pid, "VmRSS")
				kb += v
			}
			if kb-before > peak.Load() {
				peak.Store(kb - before)
			}
			if kb-before > maxGrowth {
				close(over)
				return
			}
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
		}
	}()

	head := []byte("POST / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n")
	a := startAttack(addr, conns, 1, head, body, time.Now().Add(60*time.Second))
	defer a.stop()
	// The requests start as soon as every attack connection is made,
	// while the bodies are on their way.
	testkit.Eventually(t, 30*time.Second, testkit.Poll, "attack connected", func() error {
		if n := a.dials.Load() + a.dialErr.Load(); n < conns {
			return fmt.Errorf("%d of %d connected", n, conns)
		}
		return nil
	})

	// 100 normal requests during the attack, one after the other.
	var slow, bad []string
	for i := range 100 {
		select {
		case <-over:
			a.stop()
			t.Fatalf("the HTTP workers' RSS grew by more than %d MiB after %d requests (%d MiB of bodies sent): attack stopped",
				maxGrowth>>10, i, a.sent.Load()>>20)
		default:
		}
		code, d, err := curlTimed(t, curl, url)
		switch {
		case err != nil || code != 200:
			bad = append(bad, fmt.Sprintf("#%d: %d %v", i, code, err))
		case d > time.Second:
			slow = append(slow, fmt.Sprintf("#%d: %v", i, d))
		}
	}
	close(stopWatch)
	<-watchDone
	select {
	case <-over:
		t.Fatalf("the HTTP workers' RSS grew by more than %d MiB (%d MiB of bodies sent)", maxGrowth>>10, a.sent.Load()>>20)
	default:
	}
	hwm := sumKB(t, pids, "VmHWM") - before
	var shed uint64
	var now ipc.Status
	if err := json.Unmarshal([]byte(s.mustCLI("status", "--json").Stdout), &now); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	for _, w := range now.Workers {
		if w.Name == "http-hello" {
			shed += w.InputShed
		}
	}
	a.stop()
	t.Logf("attack: %d connections made, %d shed by the workers (input_shed), %d write failures, %d held with their 9 MiB sent, %d MiB of bodies sent; "+
		"RSS before %d MiB, peak growth %d MiB sampled, %d MiB by VmHWM",
		a.dials.Load(), shed, a.failed.Load(), a.complete.Load(), a.sent.Load()>>20, before>>10, peak.Load()>>10, hwm>>10)
	if len(bad) > 0 {
		t.Errorf("%d of 100 requests during the attack failed: %v", len(bad), bad)
	}
	if len(slow) > 0 {
		t.Errorf("%d of 100 requests during the attack took over 1 s: %v", len(slow), slow)
	}
	if hwm > maxGrowth {
		t.Errorf("the HTTP workers' peak RSS (VmHWM) grew by %d MiB: want at most %d MiB", hwm>>10, maxGrowth>>10)
	}
	if shed == 0 {
		t.Errorf("status --json counts no connection shed (input_shed) after the attack")
	}
	if n := a.dialErr.Load(); n > 0 {
		t.Errorf("%d attack connections could not connect", n)
	}
	if b, err := os.ReadFile(s.paths().Log); err == nil && !strings.Contains(string(b), "input memory budget spent") {
		t.Errorf("the log does not say that connections were shed")
	}
}

// TestStreamedUpload: goes-master's "upload" handler takes its bodies in
// pieces (http.Protocol.StreamBody), so curl uploads 50 MiB, five times
// the default max_package_size, with Content-Length, with Expect:
// 100-continue (curl -T) and chunked, and gets the body's SHA-256 back,
// while the worker's peak RSS grows by much less than the body.
func TestStreamedUpload(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (the CI image installs it): %v", err)
	}
	const size = 50 << 20
	file := filepath.Join(t.TempDir(), "upload.bin")
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*31 + i>>13)
	}
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	want := fmt.Sprintf("%d %s\n", size, hex.EncodeToString(sum[:]))
	body = nil

	s := newSetup(t, "10s")
	conf := `{"log_level": "info", "listeners": [
  {"name": "up", "listen": "http://127.0.0.1:0", "count": 1, "handler": "upload"}
]}`
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	st := s.start()
	url := "http://" + listenAddrs(t, st)["up"] + "/upload"
	pids := listenerPIDs(t, st, "up")
	before := sumKB(t, pids, "VmRSS")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"content-length", []string{"--data-binary", "@" + file}},
		{"put with 100-continue", []string{"-T", file}},
		{"chunked", []string{"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file}},
	} {
		args := append([]string{"-sS", "--max-time", "60", "--noproxy", "*", "-H", "Content-Type: application/octet-stream"}, tc.args...)
		out, err := exec.Command(curl, append(args, url)...).Output()
		if err != nil {
			t.Fatalf("%s: curl: %v", tc.name, err)
		}
		if string(out) != want {
			t.Errorf("%s: answer %q, want %q", tc.name, out, want)
		}
	}
	growth := sumKB(t, pids, "VmHWM") - before
	t.Logf("3 uploads of %d MiB: worker RSS %d MiB before, peak growth %d MiB", size>>20, before>>10, growth>>10)
	if growth > 24<<10 {
		t.Errorf("the worker's peak RSS grew by %d MiB for streamed uploads of %d MiB: want under 24 MiB", growth>>10, size>>20)
	}
}

// TestPartialPacketsBudget: lines still arriving on a text:// listener and
// frames on a frame:// one count against the worker's input budget like
// HTTP bodies do: 60 connections each sending 2 MiB of one line (or of a
// 3 MiB frame) to workers with max_input_memory 4 MiB are shed (counted in
// status --json) before the workers' memory follows them, and a client
// sending whole lines (frames) keeps getting its echoes.
func TestPartialPacketsBudget(t *testing.T) {
	const (
		conns  = 60
		part   = 2 << 20
		budget = 4 << 20
	)
	s := newSetup(t, "10s")
	conf := fmt.Sprintf(`{"log_level": "info", "listeners": [
  {"name": "text", "listen": "text://127.0.0.1:0", "count": 1, "max_input_memory": %d},
  {"name": "frame", "listen": "frame://127.0.0.1:0", "count": 1, "max_input_memory": %d}
]}`, budget, budget)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	st := s.start()
	addrs := listenAddrs(t, st)
	frameOf := func(payload string, size int) []byte {
		b := make([]byte, 4, 4+len(payload))
		binary.BigEndian.PutUint32(b, uint32(size))
		return append(b, payload...)
	}
	for _, tc := range []struct {
		name string
		head []byte // what an attack connection sends before part bytes
		echo func(t *testing.T, c net.Conn)
	}{
		{"text", nil, func(t *testing.T, c net.Conn) {
			t.Helper()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			got, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || got != "hello\n" {
				t.Fatalf("echo %q, %v", got, err)
			}
		}},
		{"frame", frameOf("", 4+3<<20), func(t *testing.T, c net.Conn) {
			t.Helper()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(frameOf("hello", 9)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 9)
			if _, err := io.ReadFull(c, got); err != nil || string(got[4:]) != "hello" {
				t.Fatalf("echo %q, %v", got, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := addrs[tc.name]
			pids := listenerPIDs(t, st, tc.name)
			before := sumKB(t, pids, "VmRSS")
			a := startAttack(addr, conns, 1, tc.head, part, time.Now().Add(30*time.Second))
			defer a.stop()
			testkit.Eventually(t, 30*time.Second, 10*time.Millisecond, "attack sent", func() error {
				if a.complete.Load()+a.failed.Load() < conns {
					return fmt.Errorf("%d of %d attack connections done", a.complete.Load()+a.failed.Load(), conns)
				}
				return nil
			})
			for range 5 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				tc.echo(t, c)
				c.Close()
			}
			growth := sumKB(t, pids, "VmHWM") - before
			var shed uint64
			var now ipc.Status
			if err := json.Unmarshal([]byte(s.mustCLI("status", "--json").Stdout), &now); err != nil {
				t.Fatal(err)
			}
			for _, w := range now.Workers {
				if w.Name == tc.name {
					shed += w.InputShed
				}
			}
			t.Logf("%d connections made, %d shed (input_shed), %d held with %d MiB sent; RSS growth %d MiB",
				a.dials.Load(), shed, a.complete.Load(), part>>20, growth>>10)
			if shed == 0 {
				t.Errorf("no connection shed")
			}
			if growth > 32<<10 {
				t.Errorf("the worker's peak RSS grew by %d MiB with a %d MiB budget (the attack sent %d MiB)",
					growth>>10, budget>>20, a.sent.Load()>>20)
			}
		})
	}
}
