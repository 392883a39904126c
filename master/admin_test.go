//go:build unix

package master

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// parkGoroutines, in a test worker with GOES_TEST_GOROUTINES=N, parks N
// goroutines each 40 calls deep, so that its goroutine profile with
// debug=2 is several megabytes (TestAdminLargeProfile).
func parkGoroutines(n string) {
	count, _ := strconv.Atoi(n)
	for range count {
		go parkDeep(40)
	}
}

func parkDeep(depth int) {
	if depth > 0 {
		parkDeep(depth - 1)
		return
	}
	select {}
}

// startAdmin starts a master of count test workers with an admin
// endpoint on a loopback port and returns it with the endpoint's URL.
func startAdmin(t *testing.T, count int, env func(Identity) []string, tweaks ...func(*Options)) (*testMaster, string) {
	t.Helper()
	tm := startMaster(t, count, env, func(o *Options) {
		o.Admin = "127.0.0.1:0"
		for _, tw := range tweaks {
			tw(o)
		}
	})
	tm.waitReady()
	addr := tm.status().Master.Admin
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("status shows the admin endpoint at %q", addr)
	}
	return tm, "http://" + addr
}

type response struct {
	code int
	head http.Header
	body []byte
}

func get(t *testing.T, url string) response {
	t.Helper()
	return getWithin(t, url, 30*time.Second)
}

func getWithin(t *testing.T, url string, timeout time.Duration) response {
	t.Helper()
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return response{code: resp.StatusCode, head: resp.Header, body: b}
}

// sample finds the value of the sample name{labels} in a scrape.
func sample(scrape []byte, series string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(scrape))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestAdminEndpoints: the admin endpoint answers health, readiness,
// metrics with every worker's figures, and the master's and the workers'
// profiles, and refuses what it cannot serve with a reason.
func TestAdminEndpoints(t *testing.T) {
	tm, base := startAdmin(t, 2, nil)

	if r := get(t, base+"/healthz"); r.code != 200 || !bytes.HasPrefix(r.body, []byte("ok: master pid")) {
		t.Errorf("/healthz: %d %q", r.code, r.body)
	}
	if r := get(t, base+"/readyz"); r.code != 200 || !bytes.HasPrefix(r.body, []byte("ready\n")) ||
		!bytes.Contains(r.body, []byte("2 of 2 workers running")) {
		t.Errorf("/readyz: %d %q", r.code, r.body)
	}

	// Five connections (each test worker answers one with its pid and
	// closes it) show in the workers' counters.
	for range 5 {
		c, err := net.Dial("tcp", tm.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(c)
		c.Close()
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "accepted connections in /metrics", func() error {
		r := get(t, base+"/metrics")
		if r.code != 200 {
			return fmt.Errorf("/metrics: %d %s", r.code, r.body)
		}
		sum := 0.0
		for id := range 2 {
			if up, _ := sample(r.body, fmt.Sprintf(`goes_worker_up{listener="t",worker="%d"}`, id)); up != 1 {
				return fmt.Errorf("worker %d not up: %s", id, r.body)
			}
			n, _ := sample(r.body, fmt.Sprintf(`goes_connections_accepted_total{listener="t",worker="%d"}`, id))
			sum += n
		}
		if sum != 5 {
			return fmt.Errorf("%v connections accepted", sum)
		}
		for _, s := range []string{`goes_master_workers{state="running"}`, "go_goroutines", "process_resident_memory_bytes"} {
			if _, ok := sample(r.body, s); !ok {
				return fmt.Errorf("no %s in the scrape", s)
			}
		}
		return nil
	})

	for _, tc := range []struct {
		path string
		code int
		has  string // in the body
	}{
		{path: "/", code: 200, has: "/debug/pprof/?worker=ID"},
		{path: "/debug/pprof/", code: 200, has: "goroutine"},
		{path: "/debug/pprof/?worker=1", code: 200, has: "profile?worker=1"},
		{path: "/debug/pprof/heap?worker=0", code: 200, has: "\x1f\x8b"}, // a gzipped protocol buffer
		{path: "/debug/pprof/allocs?worker=1", code: 200, has: "\x1f\x8b"},
		{path: "/debug/pprof/goroutine?worker=1&debug=1", code: 200, has: "goroutine profile: total"},
		{path: "/debug/pprof/mutex?worker=0&debug=1", code: 200, has: "--- mutex:"},
		{path: "/debug/pprof/cmdline?worker=0", code: 404, has: "master only"},
		{path: "/debug/pprof/heap?worker=7", code: 404, has: "no worker 7"},
		{path: "/debug/pprof/profile?worker=99&seconds=1", code: 404, has: "no worker 99"},
		{path: "/debug/pprof/heap?worker=x", code: 400, has: "want an id"},
		{path: "/debug/pprof/nothing?worker=0", code: 500, has: `no profile "nothing"`},
		{path: "/debug/pprof/heap?worker=0&seconds=1", code: 400, has: "only profile and trace"},
		{path: "/debug/pprof/trace?worker=0&seconds=0.2", code: 200, has: "go 1."},
		{path: "/nothing", code: 404},
	} {
		r := get(t, base+tc.path)
		if r.code != tc.code || !bytes.Contains(r.body, []byte(tc.has)) {
			t.Errorf("%s: %d %.200q; want %d with %q", tc.path, r.code, r.body, tc.code, tc.has)
		}
	}
}

// TestAdminUnresponsiveWorker: kill -STOP of a worker. /metrics answers
// all along without waiting for it (its scrape would otherwise fail at
// the collector's bound), showing the worker's last figures with
// goes_worker_up 0, its silence and the watchdog's counts, never zeros;
// /readyz counts it out of the running workers. kill -CONT: up again.
func TestAdminUnresponsiveWorker(t *testing.T) {
	tm, base := startAdmin(t, 2, nil, func(o *Options) {
		o.WatchdogInterval = 200 * time.Millisecond
		o.UnresponsiveTimeout = time.Second
		o.KillUnresponsive = -1 // never
	})
	for range 6 {
		c, err := net.Dial("tcp", tm.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(c)
		c.Close()
	}
	const (
		up       = `goes_worker_up{listener="t",worker="1"}`
		accepted = `goes_connections_accepted_total{listener="t",worker="1"}`
		silent   = `goes_worker_silent_seconds{listener="t",worker="1"}`
	)
	// scrape fails unless /metrics answers in time: far more than the
	// status bounds, far less than the collector's 5 s.
	scrape := func() []byte {
		t.Helper()
		r := getWithin(t, base+"/metrics", 3*time.Second)
		if r.code != 200 {
			t.Fatalf("/metrics: %d %s", r.code, r.body)
		}
		return r.body
	}
	var before float64
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "six connections in /metrics", func() error {
		m := scrape()
		n0, _ := sample(m, `goes_connections_accepted_total{listener="t",worker="0"}`)
		before, _ = sample(m, accepted)
		if n0+before != 6 {
			return fmt.Errorf("%v+%v connections accepted", n0, before)
		}
		return nil
	})
	pid := tm.status().Workers[1].PID
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the stopped worker unresponsive in /metrics", func() error {
		m := scrape()
		if n, ok := sample(m, accepted); !ok || n != before {
			t.Fatalf("stopped worker: %s = %v (%v), want its last figure %v", accepted, n, ok, before)
		}
		if v, _ := sample(m, `goes_master_workers{state="unresponsive"}`); v != 1 {
			return fmt.Errorf("%v workers unresponsive", v)
		}
		for series, want := range map[string]float64{
			up: 0,
			`goes_worker_up{listener="t",worker="0"}`:                 1,
			`goes_worker_unresponsive_total{listener="t",worker="1"}`: 1,
			"goes_master_unresponsive_workers":                        1,
			"goes_master_worker_unresponsive_total":                   1,
			"goes_master_worker_watchdog_kills_total":                 0,
			`goes_master_workers{state="running"}`:                    1,
		} {
			if v, ok := sample(m, series); !ok || v != want {
				t.Errorf("%s = %v (%v), want %v", series, v, ok, want)
			}
		}
		if v, ok := sample(m, silent); !ok || v < 1 {
			t.Errorf("%s = %v (%v), want at least the unresponsive timeout", silent, v, ok)
		}
		return nil
	})
	if r := getWithin(t, base+"/readyz", 3*time.Second); r.code != 200 || !bytes.Contains(r.body, []byte("1 of 2 workers running")) {
		t.Errorf("/readyz with a worker stopped: %d %q", r.code, r.body)
	}
	if r := getWithin(t, base+"/debug/pprof/heap?worker=1", 3*time.Second); r.code != 500 || !bytes.Contains(r.body, []byte("worker 1 is unresponsive")) {
		t.Errorf("profile of a stopped worker: %d %q", r.code, r.body)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the worker up again", func() error {
		m := scrape()
		if v, _ := sample(m, up); v != 1 {
			return fmt.Errorf("%s = %v", up, v)
		}
		if v, ok := sample(m, silent); !ok || v >= 1 {
			return fmt.Errorf("%s = %v (%v)", silent, v, ok)
		}
		return nil
	})
}

// TestAdminProfileDoesNotBlockStatus: while a worker takes a 3 s CPU
// profile, its control channel answers status requests with its figures.
func TestAdminProfileDoesNotBlockStatus(t *testing.T) {
	tm, base := startAdmin(t, 1, nil)
	began := time.Now()
	prof := make(chan response, 1)
	go func() {
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Get(base + "/debug/pprof/profile?worker=0&seconds=3")
		if err != nil {
			prof <- response{code: -1, body: []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		prof <- response{code: resp.StatusCode, body: b}
	}()
	answered := 0
	var r response
	for done := false; !done; {
		select {
		case r = <-prof:
			done = true
		default:
			st := tm.status()
			if time.Since(began) > 3*time.Second {
				continue // the profile may have ended meanwhile
			}
			if time.Since(began) > 500*time.Millisecond {
				// The worker has had the request for a while: it profiles.
				if w := st.Workers[0]; w.MemoryBytes == 0 || w.Goroutines == 0 {
					t.Fatalf("status during the profile has no figures of the worker: %+v", w)
				}
				answered++
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if r.code != 200 || !bytes.HasPrefix(r.body, []byte("\x1f\x8b")) {
		t.Fatalf("profile: %d %.200q", r.code, r.body)
	}
	if took := time.Since(began); took < 3*time.Second {
		t.Fatalf("a 3 s profile came back after %v", took)
	}
	if answered < 3 {
		t.Fatalf("%d status answers during the profile", answered)
	}
}

// TestAdminLargeProfile: a profile larger than one control frame may
// carry comes through whole, in chunks.
func TestAdminLargeProfile(t *testing.T) {
	// About 4 KB of text per goroutine: 1300 make a little over one
	// chunk. (Under -race with every package's tests running, the 5 MB
	// take a while to pass through the JSON frames: hence the bound.)
	const parked = 1300
	_, base := startAdmin(t, 1, func(Identity) []string { return []string{"GOES_TEST_GOROUTINES=" + strconv.Itoa(parked)} })
	r := getWithin(t, base+"/debug/pprof/goroutine?worker=0&debug=2", 2*time.Minute)
	if r.code != 200 {
		t.Fatalf("goroutine profile: %d %.200q", r.code, r.body)
	}
	const chunk = 4 << 20 // the worker's chunk size
	if len(r.body) <= chunk {
		t.Fatalf("the profile has %d bytes: too few to need chunks", len(r.body))
	}
	if cl := r.head.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Fatalf("Content-Length %s, body %d bytes", cl, len(r.body))
	}
	if n := bytes.Count(r.body, []byte("master.parkDeep(")); n < parked*40 {
		t.Fatalf("%d frames of parkDeep in the profile, want %d", n, parked*40)
	}
	if !bytes.HasPrefix(r.body, []byte("goroutine ")) || !bytes.HasSuffix(r.body, []byte("\n")) {
		t.Fatalf("profile starts %.100q, ends %q", r.body, r.body[len(r.body)-100:])
	}
}

// BenchmarkAdminScrape measures one scrape of /metrics: the master asks
// each worker for its figures over the control channel and encodes them
// (with the master's Go and process collectors). The workers' share is
// one stats request each; their request path is untouched.
func BenchmarkAdminScrape(b *testing.B) {
	for _, workers := range []int{2, 8} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			paths, err := PathsIn(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			ready := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{
					Listeners: []Listener{{Name: "t", Network: "tcp", Addr: "127.0.0.1:0", Count: workers}},
					Paths:     paths,
					Args:      []string{os.Args[0]},
					Admin:     "127.0.0.1:0",
					OnReady:   func() { close(ready) },
					Logger:    zerolog.Nop(),
				})
			}()
			defer func() { cancel(); <-done }()
			select {
			case <-ready:
			case err := <-done:
				b.Fatal(err)
			}
			ans, err := paths.Request(ipc.Message{Type: ipc.TypeStatus}, 5*time.Second)
			var st ipc.Status
			if err == nil {
				err = ans.Decode(&st)
			}
			if err != nil {
				b.Fatal(err)
			}
			url := "http://" + st.Master.Admin + "/metrics"
			c := &http.Client{Timeout: 10 * time.Second}
			var size int64
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("/metrics: %d", resp.StatusCode)
				}
				size = n
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}

// TestAdminToken: with a token, every path but the probes answers 401
// without Authorization: Bearer TOKEN, or with another token, and serves
// with it.
func TestAdminToken(t *testing.T) {
	const token = "s3cret-token"
	_, base := startAdmin(t, 1, nil, func(o *Options) { o.AdminToken = token })
	do := func(path, auth string) response {
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{code: resp.StatusCode, head: resp.Header, body: b}
	}
	for _, path := range []string{"/metrics", "/", "/debug/pprof/", "/debug/pprof/heap?worker=0", "/debug/pprof/cmdline", "/nothing"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", token, "Basic " + token} {
			if r := do(path, auth); r.code != 401 || r.head.Get("WWW-Authenticate") == "" {
				t.Errorf("%s with %q: %d %.100q; want 401", path, auth, r.code, r.body)
			}
		}
	}
	if r := do("/metrics", "Bearer "+token); r.code != 200 || !bytes.Contains(r.body, []byte("goes_worker_up")) {
		t.Errorf("/metrics with the token: %d %.200q", r.code, r.body)
	}
	if r := do("/debug/pprof/heap?worker=0", "Bearer "+token); r.code != 200 {
		t.Errorf("worker heap with the token: %d %.200q", r.code, r.body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := do(path, ""); r.code != 200 {
			t.Errorf("%s without a token: %d %q", path, r.code, r.body)
		}
	}
}

// TestAdminUnixSocket: "admin": "unix://PATH" serves on an owner-only
// Unix socket.
func TestAdminUnixSocket(t *testing.T) {
	path := t.TempDir() + "/admin.sock"
	tm := startMaster(t, 1, nil, func(o *Options) { o.Admin = "unix://" + path })
	tm.waitReady()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode %v; want an owner-only socket", fi.Mode())
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	resp, err := c.Get("http://admin/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("goes_worker_up")) {
		t.Errorf("/metrics over the Unix socket: %d %.200q", resp.StatusCode, b)
	}
}
