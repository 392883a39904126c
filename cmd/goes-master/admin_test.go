//go:build unix

package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// newAdminSetup is newSetup with the admin endpoint on a loopback port
// the master picks (status tells which: startAdmin).
func newAdminSetup(t *testing.T, stopTimeout string) *setup {
	t.Helper()
	s := newSetup(t, stopTimeout)
	b, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	conf["admin"] = "127.0.0.1:0"
	if b, err = json.Marshal(conf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// startAdmin starts the daemon and returns its status and the admin
// endpoint's base URL.
func (s *setup) startAdmin() (ipc.Status, string) {
	s.t.Helper()
	st := s.start()
	if a := st.Master.Admin; a == "" || strings.HasSuffix(a, ":0") {
		s.t.Fatalf("status shows the admin endpoint at %q", a)
	}
	return st, "http://" + st.Master.Admin
}

// fetch GETs url on a new connection.
func fetch(url string) (int, []byte, error) {
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func mustFetch(t *testing.T, url string) []byte {
	t.Helper()
	code, b, err := fetch(url)
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v %.300s", url, code, err, b)
	}
	return b
}

// metric is the value of series (name{labels}, as the text format
// writes it) in a scrape.
func metric(scrape []byte, series string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(scrape))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// prometheus is a Prometheus server the test runs on loopback.
type prometheus struct {
	t    *testing.T
	base string
}

// startPrometheus runs Debian's prometheus (installed by .ci/run) with
// its own data directory, scraping target's /metrics every second; extra
// lines are added to the job's scrape config.
func startPrometheus(t *testing.T, target string, extra ...string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (apt-get install prometheus; .ci/run does): %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: goes
    static_configs:
      - targets: [%q]
%s`, target, strings.Join(extra, ""))), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port that was free a moment ago: another program may take it
	// first, then Prometheus exits and the next port is tried.
	for try := 1; ; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
		p := proctest.Start(t, bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		prom := &prometheus{t: t, base: "http://" + addr}
		var exited bool
		testkit.Eventually(t, 30*time.Second, testkit.Poll, "prometheus ready", func() error {
			if _, done := p.Wait(0); done {
				exited = true
				return nil
			}
			code, _, err := fetch(prom.base + "/-/ready")
			if err != nil || code != 200 {
				return fmt.Errorf("/-/ready: %d %v", code, err)
			}
			return nil
		})
		if !exited {
			return prom
		}
		if try == 3 {
			t.Fatalf("prometheus exited three times:\n%s", p.Output())
		}
	}
}

// run runs an instant query and returns its results' values.
func (p *prometheus) run(q string) ([]string, error) {
	code, b, err := fetch(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Status != "success" {
		return nil, fmt.Errorf("query %s: %d %v %s %s", q, code, err, ans.Error, b)
	}
	var out []string
	for _, r := range ans.Data.Result {
		s, _ := r.Value[1].(string)
		out = append(out, s)
	}
	return out, nil
}

// query runs an instant query and returns the value of its one result
// (false when it has none yet).
func (p *prometheus) query(q string) (float64, bool, error) {
	res, err := p.run(q)
	switch {
	case err != nil:
		return 0, false, err
	case len(res) == 0:
		return 0, false, nil
	case len(res) > 1:
		return 0, false, fmt.Errorf("query %s: %d results", q, len(res))
	}
	v, err := strconv.ParseFloat(res[0], 64)
	return v, err == nil, err
}

// TestAdminPrometheus: a real Prometheus scrapes goes-master's /metrics
// every second; after 300 HTTP requests its query API shows
// goes_requests_total risen by exactly 300, and promtool finds nothing to say
// about a scrape.
func TestAdminPrometheus(t *testing.T) {
	s := newAdminSetup(t, "10s")
	st, admin := s.startAdmin()

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (apt-get install prometheus; .ci/run does): %v", err)
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(mustFetch(t, admin+"/metrics"))
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	prom := startPrometheus(t, st.Master.Admin)
	const requests = `sum(goes_requests_total{job="goes",listener="web"})`
	var before float64
	testkit.Eventually(t, 30*time.Second, 100*time.Millisecond, "the first scrape", func() error {
		v, ok, err := prom.query(requests)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no %s yet", requests)
		}
		before = v
		return nil
	})
	const n = 300
	for i := range n {
		if err := httpGet(s.httpAddr); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// Wait for the scrape that has them all, then require exactly them:
	// a request counted twice must not pass.
	var after float64
	testkit.Eventually(t, 30*time.Second, 100*time.Millisecond, "goes_requests_total risen in Prometheus", func() error {
		v, _, err := prom.query(requests)
		if err != nil {
			return err
		}
		if after = v; v < before+n {
			return fmt.Errorf("%s = %v, was %v before %d requests", requests, v, before, n)
		}
		return nil
	})
	if after != before+n {
		t.Fatalf("%s = %v, was %v before %d requests: risen by %v", requests, after, before, n, after-before)
	}
	checkDashboard(t, prom, mustFetch(t, admin+"/metrics"))
	for q, want := range map[string]float64{
		`up{job="goes"}`:                                  1,
		`count(goes_worker_up{job="goes"} == 1)`:          6,
		`goes_master_workers{job="goes",state="running"}`: 6,
	} {
		if v, ok, err := prom.query(q); err != nil || !ok || v != want {
			t.Errorf("%s = %v (%v, %v), want %v", q, v, ok, err, want)
		}
	}
	s.stopAndCheck(st)
}

// TestAdminWorkerProfiles: go tool pprof reads a CPU and a heap profile of
// worker 1 from /debug/pprof, and the profiles are the worker's.
func TestAdminWorkerProfiles(t *testing.T) {
	s := newAdminSetup(t, "10s")
	st, admin := s.startAdmin()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	// Load on the HTTP workers (0 and 1) while the CPU profile runs,
	// bounded in count and time.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			httpGet(s.httpAddr)
		}
	}()
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad()

	pprofTop := func(url string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", url)
		cmd.Env = append(os.Environ(), "PPROF_TMPDIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go tool pprof -top %s: %v\n%s", url, err, out)
		}
		return string(out)
	}
	if out := pprofTop(admin + "/debug/pprof/profile?worker=1&seconds=2"); !strings.Contains(out, "Type: cpu") || !strings.Contains(out, "Duration: 2") {
		t.Errorf("cpu profile of worker 1:\n%s", out)
	}
	if out := pprofTop(admin + "/debug/pprof/heap?worker=1"); !strings.Contains(out, "Type: inuse_space") {
		t.Errorf("heap profile of worker 1:\n%s", out)
	}
	// The worker's goroutines, not the master's.
	g := string(mustFetch(t, admin+"/debug/pprof/goroutine?worker=1&debug=1"))
	if !strings.Contains(g, "worker.(*worker).run") || strings.Contains(g, "master.(*master).run") {
		t.Errorf("goroutines of worker 1:\n%s", g)
	}
	if g := string(mustFetch(t, admin+"/debug/pprof/goroutine?debug=1")); !strings.Contains(g, "master.(*master).run") {
		t.Errorf("goroutines of the master:\n%s", g)
	}
	// A trace go tool trace reads.
	trace := filepath.Join(t.TempDir(), "trace.out")
	if err := os.WriteFile(trace, mustFetch(t, admin+"/debug/pprof/trace?worker=1&seconds=0.5"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(goBin, "tool", "trace", "-pprof=sched", trace).CombinedOutput(); err != nil {
		t.Errorf("go tool trace: %v\n%.500s", err, out)
	}
	stopLoad()
	s.stopAndCheck(st)
}

// TestAdminReadyzDrain: /readyz is 200 while serving and 503 while a
// graceful stop drains (a held connection keeps the drain going), while
// /healthz stays 200.
func TestAdminReadyzDrain(t *testing.T) {
	s := newAdminSetup(t, "30s")
	st, admin := s.startAdmin()
	if b := mustFetch(t, admin+"/readyz"); !bytes.HasPrefix(b, []byte("ready\n")) {
		t.Fatalf("/readyz: %q", b)
	}
	if out := s.mustCLI("status").Stdout; !strings.Contains(out, "admin: "+admin+"/") {
		t.Errorf("status does not name the admin endpoint %s:\n%s", admin, out)
	}
	held := dialText(t, s.textAddr)
	held.echo(t, "held")
	stopper := proctest.Start(t, s.bin, "stop", "-g", "--run-dir", s.runDir, "--config", s.conf)
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "/readyz not ready during the drain", func() error {
		code, b, err := fetch(admin + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("master stopping")) {
			return fmt.Errorf("/readyz: %d %q", code, b)
		}
		return nil
	})
	if code, b, err := fetch(admin + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz during the drain: %d %v %q", code, err, b)
	}
	held.echo(t, "still served while draining")
	if _, done := stopper.Wait(0); done {
		t.Fatal("stop -g returned while a connection was open")
	}
	held.Close()
	if err, done := stopper.Wait(30 * time.Second); !done || err != nil {
		t.Fatalf("stop -g: done %v, %v\n%s", done, err, stopper.Output())
	}
	s.checkGone(st)
}

// TestAdminAcrossReload: the admin socket passes to the new master in a
// reload; /readyz, probed all along on new connections, never fails; the
// new master's metrics show the reload and, once the old generation is
// gone, its drain.
func TestAdminAcrossReload(t *testing.T) {
	s := newAdminSetup(t, "10s")
	st, admin := s.startAdmin()
	stop := make(chan struct{})
	type probe struct {
		ok   int
		fail []string
	}
	probed := make(chan probe, 1)
	go func() {
		var p probe
		defer func() { probed <- p }()
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			code, b, err := fetch(admin + "/readyz")
			if err != nil || code != 200 {
				p.fail = append(p.fail, fmt.Sprintf("%d %v %q", code, err, b))
				continue
			}
			p.ok++
		}
	}()
	s.mustCLI("reload")
	var cur ipc.Status
	testkit.Eventually(t, 30*time.Second, 50*time.Millisecond, "the new master's metrics", func() error {
		var err error
		if cur, err = s.status(); err != nil {
			return err
		}
		if cur.Master.PID == st.Master.PID || cur.Master.Admin != st.Master.Admin {
			return fmt.Errorf("master %d at %s", cur.Master.PID, cur.Master.Admin)
		}
		m := mustFetch(t, admin+"/metrics")
		for series, ok := range map[string]func(float64) bool{
			"goes_master_generation":                 func(v float64) bool { return v == 2 },
			`goes_master_reloads_total{result="ok"}`: func(v float64) bool { return v == 1 },
			"goes_master_reload_duration_seconds":    func(v float64) bool { return v > 0 && v < 30 },
			"goes_master_drain_duration_seconds":     func(v float64) bool { return v >= 0 && v < 30 },
			"process_start_time_seconds":             func(v float64) bool { return v > 0 },
			`goes_master_workers{state="running"}`:   func(v float64) bool { return v == 6 },
		} {
			if v, found := metric(m, series); !found || !ok(v) {
				return fmt.Errorf("%s = %v (found %v)", series, v, found)
			}
		}
		return nil
	})
	if b := mustFetch(t, admin+"/healthz"); !bytes.Contains(b, []byte(fmt.Sprintf("pid %d,", cur.Master.PID))) {
		t.Fatalf("/healthz answered by %q, the new master is %d", b, cur.Master.PID)
	}
	close(stop)
	p := <-probed
	if len(p.fail) > 0 || p.ok == 0 {
		t.Fatalf("/readyz across the reload: %d ok, %d failed: %q", p.ok, len(p.fail), p.fail[:min(len(p.fail), 5)])
	}
	t.Logf("/readyz across the reload: %d probes, all 200", p.ok)
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}

// checkDashboard runs every query of deploy/grafana-dashboard.json through
// Prometheus (the variables set to match everything) and checks that the
// metrics they name are ones goes-master serves.
func checkDashboard(t *testing.T, prom *prometheus, scrape []byte) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	walk(dash)
	if len(exprs) < 20 {
		t.Fatalf("%d queries in the dashboard", len(exprs))
	}
	served := map[string]bool{
		// Shown once a reload has happened, and a worker has exited.
		"goes_master_reload_duration_seconds": true,
		"goes_master_drain_duration_seconds":  true,
		"goes_master_worker_exits_total":      true,
	}
	sc := bufio.NewScanner(bytes.NewReader(scrape))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 3 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = true
			if f[3] == "histogram" {
				served[f[2]+"_bucket"], served[f[2]+"_sum"], served[f[2]+"_count"] = true, true, true
			}
		}
	}
	vars := strings.NewReplacer("$job", ".*", "$listener", ".*", "$worker", ".*", "$__rate_interval", "5s")
	names := regexp.MustCompile(`\b(goes|go|process)_[a-z_]+\b`)
	for _, e := range exprs {
		q := vars.Replace(e)
		if _, err := prom.run(q); err != nil {
			t.Errorf("dashboard query %s: %v", e, err)
		}
		for _, n := range names.FindAllString(e, -1) {
			if !served[n] {
				t.Errorf("dashboard query %s: no metric %s", e, n)
			}
		}
	}
}
