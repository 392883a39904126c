// Command harness runs the goes benchmark: it starts each server of
// bench/servers in turn on a loopback port, loads it with wrk (-t1 -c100)
// and ab (-k -c100, as the seed did) for several rounds, measures
// requests per second, latency percentiles and the CPU time of every
// server process (master and workers included) per request, then holds
// thousands of idle connections to measure the server memory per idle
// connection, and prints one table with medians and ratios to gnet and
// net/http.
//
// Run it through bench/run.sh, which builds the servers first.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one program under test.
type server struct {
	name string
	bin  string
	args []string // after the binary; goes programs need "start"
	goes bool
}

// sample is one load run's result.
type sample struct {
	rps       float64
	p50, p99  time.Duration
	cpuPerReq time.Duration
	requests  float64
}

type result struct {
	srv      server
	wrk, ab  []sample
	idle     map[int]idleMem // by connection count
	idleUsed map[int]idleMem // the same, each connection after one request
	failures []string
}

type idleMem struct {
	rssPerConn, pssPerConn float64 // bytes
	procs                  int
}

func main() {
	binDir := flag.String("bin", "bin", "directory of the built servers")
	rounds := flag.Int("rounds", 3, "load rounds per server")
	dur := flag.Duration("duration", 8*time.Second, "wrk duration per round")
	abN := flag.Int("ab-n", 200000, "ab requests per round")
	idleList := flag.String("idle", "10000,19000", "idle connection counts to measure (empty: none)")
	usedList := flag.String("idle-used", "10000", "idle connection counts to measure after one request on each (empty: none)")
	only := flag.String("servers", "", "comma-separated subset of servers to run")
	quick := flag.Bool("quick", false, "one short round, 1000 idle connections (for CI)")
	extra := flag.String("extra", "", "comma-separated extra programs in -bin run like the goes ones (NAME start), e.g. variants under study")
	flag.Parse()
	if *quick {
		*rounds, *dur, *abN, *idleList, *usedList = 1, 2*time.Second, 20000, "1000", "1000"
	}
	for _, tool := range []string{"wrk", "ab"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatalf("%s not found: apt-get install -y wrk apache2-utils", tool)
		}
	}
	servers := []server{
		{name: "gnet", bin: "gnet"},
		{name: "nbio", bin: "nbio"},
		{name: "rawnet", bin: "rawnet"},
		{name: "fasthttp", bin: "fasthttp"},
		{name: "net/http", bin: "nethttp"},
		{name: "goes raw (seed bench)", bin: "goesraw", args: []string{"start"}, goes: true},
		{name: "goes http (seed http)", bin: "goeshttp", args: []string{"start"}, goes: true},
	}
	if *only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		var sel []server
		for _, s := range servers {
			if keep[s.bin] {
				sel = append(sel, s)
			}
		}
		servers = sel
	}
	for _, e := range strings.Split(*extra, ",") {
		if e = strings.TrimSpace(e); e != "" {
			servers = append(servers, server{name: e, bin: e, args: []string{"start"}, goes: true})
		}
	}
	idleCounts, usedCounts := counts(*idleList), counts(*usedList)

	results := make([]*result, len(servers))
	for i, s := range servers {
		s.bin = filepath.Join(*binDir, s.bin)
		results[i] = &result{srv: s, idle: map[int]idleMem{}, idleUsed: map[int]idleMem{}}
	}
	start := time.Now()
	// Rounds interleave the servers so that a noisy neighbour hurts all alike.
	for r := 1; r <= *rounds; r++ {
		for _, res := range results {
			logf("round %d/%d: %s", r, *rounds, res.srv.name)
			if err := loadRound(res, *dur, *abN); err != nil {
				res.failures = append(res.failures, err.Error())
				logf("  failed: %v", err)
			}
		}
	}
	idle := func(ns []int, used bool) {
		for _, n := range ns {
			for _, res := range results {
				logf("idle %d (used %v): %s", n, used, res.srv.name)
				m, err := idleRound(res.srv, n, used)
				if err != nil {
					res.failures = append(res.failures, fmt.Sprintf("idle %d (used %v): %v", n, used, err))
					logf("  failed: %v", err)
					continue
				}
				if used {
					res.idleUsed[n] = m
				} else {
					res.idle[n] = m
				}
			}
		}
	}
	idle(idleCounts, false)
	idle(usedCounts, true)
	printTable(results, idleCounts, usedCounts, *rounds, *dur, *abN, time.Since(start))
}

// counts parses a comma-separated list of connection counts.
func counts(list string) []int {
	var ns []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, err := strconv.Atoi(f)
			if err != nil {
				fatalf("bad connection count list %q", list)
			}
			ns = append(ns, n)
		}
	}
	return ns
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func fatalf(format string, args ...any) {
	logf(format, args...)
	os.Exit(1)
}

// running is a started server.
type running struct {
	cmd    *exec.Cmd
	addr   string
	runDir string
	out    *bytes.Buffer
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(s server) (*running, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rd, err := os.MkdirTemp("", "goes-bench-")
	if err != nil {
		return nil, err
	}
	args := append([]string(nil), s.args...)
	if s.goes {
		args = append(args, "--run-dir", rd)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "BENCH_ADDR="+addr)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(rd)
		return nil, fmt.Errorf("start %s: %w", s.bin, err)
	}
	r := &running{cmd: cmd, addr: addr, runDir: rd, out: out}
	if err := waitReady(addr, 15*time.Second); err != nil {
		r.stop()
		return nil, fmt.Errorf("%s not ready: %w; output:\n%s", s.name, err, out.String())
	}
	return r, nil
}

// waitReady polls until one HTTP request on addr gets the 5-byte body.
func waitReady(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if last = probe(addr); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

func probe(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return err
	}
	var got []byte
	buf := make([]byte, 512)
	for !bytes.HasSuffix(got, []byte("hello")) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("probe read %q: %w", got, err)
		}
	}
	return nil
}

// stop interrupts the server (goes masters stop their workers on SIGINT)
// and kills its process group if it lingers.
func (r *running) stop() {
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Workers that outlived their master are in the same process group.
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	os.RemoveAll(r.runDir)
}

// tree returns the server's pid and all its descendants.
func (r *running) tree() []int {
	parent := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) < 4 {
			continue
		}
		pp, _ := strconv.Atoi(f[3])
		parent[pp] = append(parent[pp], pid)
	}
	out := []int{r.cmd.Process.Pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parent[out[i]]...)
	}
	return out
}

// statFields splits /proc/PID/stat, whose second field may hold spaces.
func statFields(b []byte) []string {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{"pid", "comm"}, strings.Fields(s[i+1:])...)
}

// cpuTime is the utime+stime of pids.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) < 15 {
			continue
		}
		u, _ := strconv.ParseInt(f[13], 10, 64)
		s, _ := strconv.ParseInt(f[14], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func loadRound(res *result, dur time.Duration, abN int) error {
	r, err := startServer(res.srv)
	if err != nil {
		return err
	}
	defer r.stop()
	pids := r.tree()
	url := "http://" + r.addr + "/"
	// A short warm-up, not measured.
	exec.Command("wrk", "-t1", "-c100", "-d1s", url).Run()

	c0 := cpuTime(pids)
	out, err := exec.Command("wrk", "-t1", "-c100", "-d"+dur.String(), "--latency", url).CombinedOutput()
	c1 := cpuTime(pids)
	if err != nil {
		return fmt.Errorf("wrk: %w: %s", err, out)
	}
	w, err := parseWrk(out)
	if err != nil {
		return err
	}
	w.cpuPerReq = perReq(c1-c0, w.requests)
	res.wrk = append(res.wrk, w)
	logf("  wrk: %.0f req/s, p50 %v, p99 %v, cpu %v/req", w.rps, w.p50, w.p99, w.cpuPerReq)

	c0 = cpuTime(pids)
	out, err = exec.Command("ab", "-k", "-n", strconv.Itoa(abN), "-c100", url).CombinedOutput()
	c1 = cpuTime(pids)
	if err != nil {
		return fmt.Errorf("ab: %w: %s", err, out)
	}
	a, err := parseAb(out)
	if err != nil {
		return err
	}
	a.cpuPerReq = perReq(c1-c0, a.requests)
	res.ab = append(res.ab, a)
	logf("  ab:  %.0f req/s, p50 %v, p99 %v, cpu %v/req", a.rps, a.p50, a.p99, a.cpuPerReq)
	return nil
}

func perReq(cpu time.Duration, reqs float64) time.Duration {
	if reqs <= 0 {
		return 0
	}
	return time.Duration(float64(cpu) / reqs)
}

var (
	reWrkRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reWrkReqs = regexp.MustCompile(`(\d+) requests in`)
	reWrkPct  = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)`)
	reWrkErr  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)`)
	reAbRPS   = regexp.MustCompile(`Requests per second:\s+([\d.]+)`)
	reAbDone  = regexp.MustCompile(`Complete requests:\s+(\d+)`)
	reAbFail  = regexp.MustCompile(`Failed requests:\s+(\d+)`)
	reAbPct   = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\d+)`)
)

func parseWrk(out []byte) (sample, error) {
	var s sample
	m := reWrkRPS.FindSubmatch(out)
	n := reWrkReqs.FindSubmatch(out)
	if m == nil || n == nil {
		return s, fmt.Errorf("wrk output not understood: %s", out)
	}
	if e := reWrkErr.FindSubmatch(out); e != nil {
		return s, fmt.Errorf("wrk reported errors: %s", e[0])
	}
	s.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	s.requests, _ = strconv.ParseFloat(string(n[1]), 64)
	for _, p := range reWrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(p[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(p[3])]
		d := time.Duration(v * float64(unit))
		if string(p[1]) == "50" {
			s.p50 = d
		} else {
			s.p99 = d
		}
	}
	return s, nil
}

func parseAb(out []byte) (sample, error) {
	var s sample
	m := reAbRPS.FindSubmatch(out)
	n := reAbDone.FindSubmatch(out)
	if m == nil || n == nil {
		return s, fmt.Errorf("ab output not understood: %s", out)
	}
	if f := reAbFail.FindSubmatch(out); f != nil && string(f[1]) != "0" {
		return s, fmt.Errorf("ab: %s failed requests", f[1])
	}
	if !bytes.Contains(out, []byte("Keep-Alive requests:")) {
		return s, errors.New("ab: no keep-alive requests")
	}
	s.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	s.requests, _ = strconv.ParseFloat(string(n[1]), 64)
	for _, p := range reAbPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.Atoi(string(p[2]))
		d := time.Duration(v) * time.Millisecond
		if string(p[1]) == "50" {
			s.p50 = d
		} else {
			s.p99 = d
		}
	}
	return s, nil
}

// idleRound starts s, opens n connections that stay idle (after one
// request each when used) and returns the growth of the summed RSS and PSS
// of the server's processes per connection.
func idleRound(s server, n int, used bool) (idleMem, error) {
	r, err := startServer(s)
	if err != nil {
		return idleMem{}, err
	}
	defer r.stop()
	pids := r.tree()
	time.Sleep(500 * time.Millisecond) // let the probe's connection go and the startup settle
	fds0 := countFDs(pids)
	rss0, pss0 := memory(pids)

	conns := make([]*net.TCPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.SetLinger(0) // no TIME_WAIT: the next servers need the ports
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var d net.Dialer
	for i := 0; i < n; i++ {
		c, err := d.DialContext(ctx, "tcp", r.addr)
		if err != nil {
			return idleMem{}, fmt.Errorf("dial %d: %w", i, err)
		}
		conns = append(conns, c.(*net.TCPConn))
	}
	// Wait until the server has accepted them all (its descriptors).
	deadline := time.Now().Add(30 * time.Second)
	for countFDs(pids) < fds0+n {
		if time.Now().After(deadline) {
			return idleMem{}, fmt.Errorf("server holds %d of %d connections", countFDs(pids)-fds0, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if used {
		buf := make([]byte, 4096)
		for i, c := range conns {
			if err := exchange(c, buf); err != nil {
				return idleMem{}, fmt.Errorf("request on connection %d: %w", i, err)
			}
		}
	}
	time.Sleep(time.Second)
	rss1, pss1 := memory(pids)
	if err := probe(r.addr); err != nil {
		return idleMem{}, fmt.Errorf("server unresponsive with %d idle connections: %w", n, err)
	}
	return idleMem{
		rssPerConn: float64(rss1-rss0) / float64(n),
		pssPerConn: float64(pss1-pss0) / float64(n),
		procs:      len(pids),
	}, nil
}

// exchange makes one keep-alive request on c and reads its answer.
func exchange(c net.Conn, buf []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return err
	}
	var got []byte
	for !bytes.HasSuffix(got, []byte("hello")) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("read %q: %w", got, err)
		}
	}
	return nil
}

func countFDs(pids []int) int {
	total := 0
	for _, pid := range pids {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err == nil {
			total += len(ents)
		}
	}
	return total
}

// memory is the summed Rss and Pss of pids, in bytes.
func memory(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(fs[1], 10, 64)
			switch fs[0] {
			case "Rss:":
				rss += v << 10
			case "Pss:":
				pss += v << 10
			}
		}
		f.Close()
	}
	return rss, pss
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func med(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return median(xs)
}

func printTable(results []*result, idleCounts, usedCounts []int, rounds int, dur time.Duration, abN int, took time.Duration) {
	var gnet, nethttp *result
	for _, r := range results {
		switch r.srv.bin[strings.LastIndexByte(r.srv.bin, '/')+1:] {
		case "gnet":
			gnet = r
		case "nethttp":
			nethttp = r
		}
	}
	rps := func(r *result) float64 { return med(r.wrk, func(s sample) float64 { return s.rps }) }
	cpu := func(r *result) float64 { return med(r.wrk, func(s sample) float64 { return float64(s.cpuPerReq) }) }
	ratio := func(a, b float64) string {
		if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	us := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.1f", v/1e3)
	}
	ms := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.2f", v/1e6)
	}
	cpus, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	if m := regexp.MustCompile(`model name\s*:\s*(.*)`).FindSubmatch(cpus); m != nil {
		model = string(m[1])
	}
	fmt.Printf("goes benchmark: %d round(s), wrk -t1 -c100 -d%v, ab -k -n%d -c100; medians; %d CPUs (%s); took %v\n\n",
		rounds, dur, abN, countCPUs(), model, took.Round(time.Second))
	fmt.Println("| server | wrk req/s | ×gnet | ×net/http | p50 ms | p99 ms | server CPU µs/req | ×gnet | ×net/http | ab req/s | ab p50 ms | ab p99 ms | ab CPU µs/req |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		var g, h float64 = math.NaN(), math.NaN()
		var gc, hc float64 = math.NaN(), math.NaN()
		if gnet != nil {
			g, gc = rps(gnet), cpu(gnet)
		}
		if nethttp != nil {
			h, hc = rps(nethttp), cpu(nethttp)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n",
			r.srv.name, rps(r), ratio(rps(r), g), ratio(rps(r), h),
			ms(med(r.wrk, func(s sample) float64 { return float64(s.p50) })),
			ms(med(r.wrk, func(s sample) float64 { return float64(s.p99) })),
			us(cpu(r)), ratio(cpu(r), gc), ratio(cpu(r), hc),
			med(r.ab, func(s sample) float64 { return s.rps }),
			ms(med(r.ab, func(s sample) float64 { return float64(s.p50) })),
			ms(med(r.ab, func(s sample) float64 { return float64(s.p99) })),
			us(med(r.ab, func(s sample) float64 { return float64(s.cpuPerReq) })))
	}
	if len(idleCounts)+len(usedCounts) > 0 {
		fmt.Println()
		head := "| server | processes |"
		sep := "|---|---|"
		for _, n := range idleCounts {
			head += fmt.Sprintf(" RSS KiB/conn @%d | PSS KiB/conn @%d |", n, n)
			sep += "---|---|"
		}
		for _, n := range usedCounts {
			head += fmt.Sprintf(" RSS KiB/conn @%d after 1 req | PSS KiB/conn @%d after 1 req |", n, n)
			sep += "---|---|"
		}
		fmt.Println(head)
		fmt.Println(sep)
		for _, r := range results {
			line := fmt.Sprintf("| %s |", r.srv.name)
			procs := 0
			cells := ""
			add := func(m idleMem, ok bool) {
				if !ok {
					cells += " - | - |"
					return
				}
				procs = m.procs
				cells += fmt.Sprintf(" %.2f | %.2f |", m.rssPerConn/1024, m.pssPerConn/1024)
			}
			for _, n := range idleCounts {
				m, ok := r.idle[n]
				add(m, ok)
			}
			for _, n := range usedCounts {
				m, ok := r.idleUsed[n]
				add(m, ok)
			}
			fmt.Println(line + fmt.Sprintf(" %d |", procs) + cells)
		}
	}
	for _, r := range results {
		for _, f := range r.failures {
			fmt.Printf("\nFAILED %s: %s\n", r.srv.name, firstLine(f))
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func countCPUs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Count(b, []byte("processor\t:"))
}
