// Command fanout is the fan-out benchmark: one broadcast server per
// implementation (bench/fanout/servers: the one-write-per-member floor,
// the floor with an io_uring send path, gws, nbio, centrifuge, gorilla,
// and goes on one worker and on eight, and on one worker over wss),
// each started in turn on a loopback port; client processes
// (bench/fanout/client, each on a source address 127.x.y.1 of its own)
// join N receivers; then one publisher connection publishes K messages at
// a fixed interval, each carrying its send time, and the driver prints per
// server: receivers, deliveries per second, server CPU per delivery (all
// server processes, from /proc) and its ratio to the floor's in the same
// round, publish-to-receive latency percentiles, memory per connection,
// context switches per delivery and what was lost.
//
// Run it through bench/fanout.sh, which builds the programs first.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goes-project/goes/bench/fanout/uring"
	"github.com/goes-project/goes/bench/fanout/wire"
	"github.com/goes-project/goes/internal/testkit"
)

// impl is one server under test.
type impl struct {
	key    string // the -servers name
	name   string // the row name
	bin    string
	goes   bool   // started with "start --run-dir", stopped with "stop"
	count  int    // goes workers
	mode   string // goes delivery: group, user, broadcast; floor-uring: its ring's set-up
	proto  string // client protocol: plain or centrifuge
	path   string
	n      int  // receivers
	tls    bool // wss: the server is given a self-signed certificate, the clients dial TLS
	noRing bool // goes with NoIOUring
}

// sample is one run of one server.
type sample struct {
	round                       int
	receivers, expected         int
	deliveries, dups, closed    int
	strays                      int
	rate                        float64 // deliveries/s: median over messages of count / slowest delivery
	cpuPerDelivery              float64 // ns, server processes
	clientCPUPerDelivery        float64 // ns, client processes
	volPerDelivery              float64 // server voluntary context switches (sleeps) per delivery
	involPerDelivery            float64 // server involuntary context switches per delivery
	p50, p99, max               time.Duration
	rssPerConn, rssGrowPerConn  float64 // bytes
	procs                       int
	warnings                    int // server log lines about a blocked event loop
	cpuByProc                   string
	ioThreadCPU                 float64 // ns per delivery of the io_uring kernel threads (iou-*), inside cpuPerDelivery
	stracePath, straceSummary   string
	elapsedJoin, elapsedPublish time.Duration
}

type result struct {
	im       impl
	samples  []sample
	failures []string
}

var (
	binDir      = flag.String("bin", "bin/fanout", "directory of the built programs")
	nSingle     = flag.Int("n", 19000, "receivers for the single-process rows and goes on one worker")
	nMulti      = flag.Int("n8", 60000, "receivers for goes on -workers workers")
	workers     = flag.Int("workers", 8, "workers of the multi-worker goes row")
	k           = flag.Int("k", 5, "messages published per run")
	interval    = flag.Duration("interval", 3*time.Second, "time between two publishes")
	size        = flag.Int("size", 64, "message payload bytes")
	rounds      = flag.Int("rounds", 1, "rounds (the servers interleave round by round)")
	perClient   = flag.Int("per-client", 15000, "receivers per client process (the open-file limit is per process)")
	only        = flag.String("servers", "floor,gws,nbio,centrifuge,gorilla,goes1,goes1-wss,goesN", "comma-separated servers to run (also floor-uring: the floor with an io_uring send path; floor-wss: the floor over TLS 1.3, a seal per member; goes1-wss is goes1 over TLS, goes1-nouring goes1 with NoIOUring: write(2) per member as TLS does)")
	uringModes  = flag.String("uring-modes", "plain+q256", "comma-separated floor-uring ring set-ups, a row each: words joined by + (plain, coop, single, defer, sqpoll, sqpollN for N ms of idle polling, fixed for registered descriptors, qN for N submission entries; see bench/fanout/uring)")
	goesModes   = flag.String("goes-modes", "group", "comma-separated goes deliveries, a row each: group (SendToGroup), user (SendToUser of one user bound to every receiver), broadcast (Broadcast)")
	drain       = flag.Duration("drain", 60*time.Second, "how long after the last publish to wait for deliveries")
	joinTimeout = flag.Duration("join-timeout", 5*time.Minute, "time for the clients to open and join all receivers")
	pprofDir    = flag.String("pprof", "", "CPU-profile every server process during the publish window into this directory (package prof)")
	straceDir   = flag.String("strace", "", "run strace -c -f on the server processes during the publish window, summaries into this directory (slows the server: its CPU and latency figures are then not comparable)")
	perfDir     = flag.String("perf", "", "run perf record -e cpu-clock -g on the server processes during the publish window, perf.data files into this directory (kernel and user stacks)")
	quick       = flag.Bool("quick", false, "a quick check: 1000 receivers (2000 over the workers), 3 messages 0.5 s apart")
)

func main() {
	flag.Parse()
	if *quick {
		*nSingle, *nMulti, *k, *interval, *drain = 1000, 2000, 3, 500*time.Millisecond, 20*time.Second
	}
	if *k < 1 || *k > 10000 {
		fatalf("-k must be 1..10000")
	}
	all := []impl{
		{key: "floor", name: "floor (one write per member)", bin: "floor"},
		{key: "floor-wss", name: "floor over TLS (one seal, one write per member)", bin: "floor", tls: true},
	}
	for _, mode := range strings.Split(*uringModes, ",") {
		mode = strings.TrimSpace(mode)
		if _, err := uring.ParseMode(mode); err != nil {
			fatalf("%v", err)
		}
		all = append(all, impl{key: "floor-uring", name: "floor-uring (io_uring " + mode + ")", bin: "floor", mode: mode})
	}
	all = append(all, []impl{
		{key: "gws", name: "gws v1.8.9 (Broadcaster)", bin: "gws"},
		{key: "nbio", name: "nbio v1.6.8 websocket", bin: "nbio"},
		{key: "centrifuge", name: "centrifuge v0.40.1 (JSON protocol)", bin: "centrifuge", proto: "centrifuge", path: "/connection/websocket"},
		{key: "gorilla", name: "gorilla v1.5.3 (WritePreparedMessage)", bin: "gorilla"},
	}...)
	for _, key := range []string{"goes1", "goes1-nouring", "goes1-wss", "goesN"} {
		count := 1
		if key == "goesN" {
			count = *workers
		}
		wss := key == "goes1-wss"
		for _, mode := range strings.Split(*goesModes, ",") {
			mode = strings.TrimSpace(mode)
			if mode != "group" && mode != "user" && mode != "broadcast" {
				fatalf("unknown goes mode %q", mode)
			}
			name := fmt.Sprintf("goes %s, count %d", mode, count)
			if wss {
				name += ", wss"
			}
			noRing := key == "goes1-nouring"
			if noRing {
				name += ", no io_uring"
			}
			all = append(all, impl{key: key, name: name, bin: "goes", goes: true, count: count, mode: mode, tls: wss, noRing: noRing})
		}
	}
	keep := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		keep[strings.TrimSpace(s)] = true
	}
	var results []*result
	for _, im := range all {
		if !keep[im.key] {
			continue
		}
		if im.proto == "" {
			im.proto, im.path = "plain", "/"
		}
		im.n = *nSingle
		if im.goes && im.count > 1 {
			im.n = *nMulti
		}
		im.bin = filepath.Join(*binDir, im.bin)
		results = append(results, &result{im: im})
	}
	if len(results) == 0 {
		fatalf("no server selected")
	}
	for _, d := range []string{*pprofDir, *straceDir, *perfDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				fatalf("%v", err)
			}
		}
	}
	load0 := loadavg()
	start := time.Now()
	run := 0
	for r := 1; r <= *rounds; r++ {
		for _, res := range results {
			run++
			logf("round %d/%d: %s, %d receivers (load %s)", r, *rounds, res.im.name, res.im.n, loadavg())
			s, err := runOne(res.im, run)
			if err != nil {
				res.failures = append(res.failures, err.Error())
				logf("  failed: %v", err)
				continue
			}
			s.round = r
			res.samples = append(res.samples, s)
			logf("  %d/%d delivered, %.0f/s, server CPU %.2f µs/delivery, p50 %v p99 %v max %v, %s",
				s.deliveries, s.expected, s.rate, s.cpuPerDelivery/1e3, s.p50, s.p99, s.max, s.cpuByProc)
		}
	}
	printTable(results, start, load0)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func fatalf(format string, args ...any) {
	logf(format, args...)
	os.Exit(1)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// server is a started server.
type server struct {
	im      impl
	cmd     *exec.Cmd
	addr    string
	runDir  string
	logPath string
	logFile *os.File
	done    chan struct{}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(im impl) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rd, err := os.MkdirTemp("", "goes-fanout-")
	if err != nil {
		return nil, err
	}
	var args []string
	if im.goes {
		args = []string{"start", "--run-dir", rd}
	}
	cmd := exec.Command(im.bin, args...)
	cmd.Env = append(os.Environ(), "BENCH_ADDR="+addr, "BENCH_COUNT="+strconv.Itoa(max(im.count, 1)), "BENCH_MODE="+im.mode)
	if im.tls {
		cert, key, err := testkit.WriteCertFiles(rd)
		if err != nil {
			os.RemoveAll(rd)
			return nil, err
		}
		cmd.Env = append(cmd.Env, "BENCH_CERT="+cert, "BENCH_KEY="+key)
	}
	if im.noRing {
		cmd.Env = append(cmd.Env, "BENCH_NO_IOURING=1")
	}
	if *pprofDir != "" {
		abs, _ := filepath.Abs(*pprofDir)
		cmd.Env = append(cmd.Env, "BENCH_FANOUT_PPROF="+abs)
	}
	logPath := filepath.Join(rd, "server.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		os.RemoveAll(rd)
		return nil, fmt.Errorf("start %s: %w", im.bin, err)
	}
	s := &server{im: im, cmd: cmd, addr: addr, runDir: rd, logPath: logPath, logFile: lf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	return s, nil
}

// stop stops the server the way its users would ("stop" for goes, an
// interrupt otherwise) and kills what is left of its process group.
func (s *server) stop() {
	if s.im.goes {
		c := exec.Command(s.im.bin, "stop", "--run-dir", s.runDir)
		c.Stdout, c.Stderr = s.logFile, s.logFile
		c.Run()
	} else {
		s.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		logf("  %s did not stop in 30 s: killed", s.im.name)
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	if !s.im.goes { // the single-process servers' last words: their own counts
		if b, _ := os.ReadFile(s.logPath); len(bytes.TrimSpace(b)) > 0 {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			logf("  server: %s", lines[len(lines)-1])
		}
	}
	s.logFile.Close()
	os.RemoveAll(s.runDir)
}

// warnings counts the server's log lines about a blocked event loop.
func (s *server) warnings() int {
	b, _ := os.ReadFile(s.logPath)
	return bytes.Count(b, []byte("blocked"))
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func runOne(im impl, run int) (sample, error) {
	var smp sample
	srv, err := startServer(im)
	if err != nil {
		return smp, err
	}
	defer srv.stop()

	pub, err := dialPublisher(srv, 30*time.Second)
	if err != nil {
		return smp, fmt.Errorf("publisher: %w; server log:\n%s", err, srv.logTail())
	}
	defer pub.close()
	time.Sleep(500 * time.Millisecond) // let the start settle before the baseline
	rss0 := memory(tree(srv.cmd.Process.Pid))

	// Clients.
	nc := (im.n + *perClient - 1) / *perClient
	clients := make([]*clientProc, 0, nc)
	defer func() {
		for _, c := range clients {
			c.kill()
		}
	}()
	events := make(chan clientEvent, 4*nc)
	tmp, err := os.MkdirTemp("", "goes-fanout-lat-")
	if err != nil {
		return smp, err
	}
	defer os.RemoveAll(tmp)
	t0 := time.Now()
	for i := range nc {
		share := im.n / nc
		if i < im.n%nc {
			share++
		}
		// A source address of its own per client and per run: ports are
		// never short and nothing is left in TIME_WAIT for the next run.
		src := fmt.Sprintf("127.%d.%d.1", 1+run%250, 1+i)
		c, err := startClient(i, im, srv.addr, src, share, filepath.Join(tmp, fmt.Sprintf("lat-%d", i)), events)
		if err != nil {
			return smp, err
		}
		clients = append(clients, c)
	}
	if err := waitAll(clients, events, "ready", *joinTimeout, srv); err != nil {
		return smp, err
	}
	smp.elapsedJoin = time.Since(t0)
	logf("  %d receivers joined in %v", im.n, smp.elapsedJoin.Round(time.Millisecond))

	time.Sleep(time.Second) // let the joins' aftermath settle
	pids := tree(srv.cmd.Process.Pid)
	var cpids []int
	for _, c := range clients {
		cpids = append(cpids, c.cmd.Process.Pid)
	}
	rss1 := memory(pids)
	smp.procs = len(pids)
	if len(pids) > 1 {
		var fds []string
		for _, pid := range pids {
			ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			fds = append(fds, strconv.Itoa(len(ents)))
		}
		logf("  descriptors per process (the first is the master): %s", strings.Join(fds, " / "))
	}
	smp.rssPerConn = float64(rss1) / float64(im.n)
	smp.rssGrowPerConn = float64(rss1-rss0) / float64(im.n)

	var st *straceProc
	if *straceDir != "" {
		path := filepath.Join(*straceDir, fmt.Sprintf("%s-run%d.txt", im.key, run))
		if st, err = startStrace(pids, path); err != nil {
			return smp, err
		}
		defer st.kill()
		smp.stracePath = path
	}
	var perf *exec.Cmd
	if *perfDir != "" {
		path := filepath.Join(*perfDir, fmt.Sprintf("%s-run%d.data", im.key, run))
		args := []string{"record", "-e", "cpu-clock", "-F", "999", "-g", "-q", "-o", path, "-p"}
		var ps []string
		for _, p := range pids {
			ps = append(ps, strconv.Itoa(p))
		}
		perf = exec.Command("perf", append(args, strings.Join(ps, ","))...)
		perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
		if err := perf.Start(); err != nil {
			return smp, fmt.Errorf("perf: %w", err)
		}
		defer perf.Process.Kill()
		time.Sleep(time.Second) // perf has no readiness signal; it attaches within this
		logf("  perf record into %s", path)
	}
	trigger := ""
	if *pprofDir != "" {
		trigger = filepath.Join(*pprofDir, "on")
		if err := os.WriteFile(trigger, nil, 0o644); err != nil {
			return smp, err
		}
		defer os.Remove(trigger)
		time.Sleep(100 * time.Millisecond) // the watchers poll every 20 ms
	}

	cpu0 := cpuByPID(pids)
	io0 := ioThreads(pids)
	ccpu0 := cpuTime(cpids)
	vol0, inv0 := ctxSwitches(pids)
	tp := time.Now()
	for seq := 1; seq <= *k; seq++ {
		if d := time.Until(tp.Add(time.Duration(seq-1) * *interval)); d > 0 {
			time.Sleep(d)
		}
		if err := pub.publish(seq); err != nil {
			return smp, fmt.Errorf("publish %d: %w", seq, err)
		}
	}
	werr := waitAll(clients, events, "done", time.Until(tp.Add(time.Duration(*k-1)**interval+*drain)), nil)
	cpu1 := cpuByPID(pids)
	io1 := ioThreads(pids)
	ccpu1 := cpuTime(cpids)
	vol1, inv1 := ctxSwitches(pids)
	smp.elapsedPublish = time.Since(tp)
	if werr != nil {
		logf("  not all delivered: %v", werr)
	}
	if trigger != "" {
		os.Remove(trigger)
		waitProfiles(*pprofDir, 10*time.Second)
	}
	if perf != nil {
		perf.Process.Signal(os.Interrupt)
		perf.Wait()
	}
	if st != nil {
		if smp.straceSummary, err = st.finish(); err != nil {
			return smp, err
		}
	}

	// Collect.
	var lat []int64
	seqCount := make([]int, *k)
	seqMax := make([]int64, *k)
	for _, c := range clients {
		sum, l, err := c.report(events)
		if err != nil {
			return smp, err
		}
		lat = append(lat, l...)
		smp.receivers += sum.Conns
		smp.deliveries += sum.Deliveries
		smp.dups += sum.Dups
		smp.closed += sum.Closed
		smp.strays += sum.Strays
		for i := range *k {
			seqCount[i] += sum.SeqCount[i]
			seqMax[i] = max(seqMax[i], sum.SeqMaxNs[i])
		}
	}
	smp.expected = smp.receivers * *k
	if pub.errors > 0 {
		logf("  the publisher was answered %d error(s), the last: %s", pub.errors, pub.lastError)
	}
	var total int64
	var parts []string
	for _, pid := range pids {
		d := cpu1[pid] - cpu0[pid]
		total += d
		if d > 0 {
			role := filepath.Base(im.bin)
			if im.goes {
				role = "worker"
				if pid == pids[0] {
					role = "master"
				}
			}
			parts = append(parts, fmt.Sprintf("%s[%d] %v", role, pid, time.Duration(d)))
		}
	}
	smp.cpuByProc = "CPU: " + strings.Join(parts, ", ")
	var ioTotal int64
	var ioParts []string
	for tid, t1 := range io1 {
		d := t1.ns - io0[tid].ns // a thread born in the window started at 0
		ioTotal += d
		ioParts = append(ioParts, fmt.Sprintf("%s[%d] %v", t1.name, tid, time.Duration(d)))
	}
	if len(ioParts) > 0 {
		sort.Strings(ioParts)
		smp.cpuByProc += "; of which io_uring kernel threads: " + strings.Join(ioParts, ", ")
	}
	if smp.deliveries > 0 {
		smp.cpuPerDelivery = float64(total) / float64(smp.deliveries)
		smp.ioThreadCPU = float64(ioTotal) / float64(smp.deliveries)
		smp.clientCPUPerDelivery = float64(ccpu1-ccpu0) / float64(smp.deliveries)
		smp.volPerDelivery = float64(vol1-vol0) / float64(smp.deliveries)
		smp.involPerDelivery = float64(inv1-inv0) / float64(smp.deliveries)
	}
	var rates []float64
	for i := range *k {
		if seqMax[i] > 0 {
			rates = append(rates, float64(seqCount[i])/(float64(seqMax[i])/1e9))
		}
	}
	smp.rate = median(rates)
	slices.Sort(lat)
	smp.p50, smp.p99, smp.max = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1)
	smp.warnings = srv.warnings()
	return smp, nil
}

func pct(sorted []int64, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return time.Duration(sorted[max(i, 0)])
}

// publisher is the connection that publishes.
type publisher struct {
	im        impl
	c         net.Conn
	mu        sync.Mutex
	errors    int
	lastError string
}

// dialPublisher connects the publisher, retrying until the server answers
// the opening handshake (its readiness) or limit passes.
func dialPublisher(srv *server, limit time.Duration) (*publisher, error) {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-srv.done:
			return nil, errors.New("server exited")
		default:
		}
		p, err := tryPublisher(srv)
		if err == nil {
			return p, nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil, last
}

func tryPublisher(srv *server) (*publisher, error) {
	c, err := net.DialTimeout("tcp", srv.addr, time.Second)
	if err != nil {
		return nil, err
	}
	if srv.im.tls {
		tc := tls.Client(c, clientTLS())
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(wire.UpgradeRequest(srv.addr, srv.im.path)); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("handshake: %w (%q)", err, head)
		}
	}
	if err := wire.CheckUpgradeResponse(head); err != nil {
		c.Close()
		return nil, err
	}
	p := &publisher{im: srv.im, c: c}
	if srv.im.proto == "centrifuge" {
		if _, err := c.Write(wire.AppendFrame(nil, wire.OpText, []byte(`{"id":1,"connect":{}}`), true)); err != nil {
			c.Close()
			return nil, err
		}
		op, msg, err := readFrame(br)
		if err != nil || op != wire.OpText || bytes.Contains(msg, []byte(`"error"`)) {
			c.Close()
			return nil, fmt.Errorf("centrifuge connect: %q %v", msg, err)
		}
	}
	c.SetDeadline(time.Time{})
	go p.readLoop(br)
	return p, nil
}

// readLoop reads what the server sends the publisher: errors are counted,
// pings answered.
func (p *publisher) readLoop(br *bufio.Reader) {
	for {
		op, msg, err := readFrame(br)
		if err != nil {
			return
		}
		switch {
		case op == wire.OpPing:
			p.write(wire.AppendFrame(nil, wire.OpPong, msg, true))
		case op != wire.OpText:
		case p.im.proto == "centrifuge" && string(msg) == "{}":
			p.write(wire.AppendFrame(nil, wire.OpText, msg, true))
		case bytes.Contains(msg, []byte("error")):
			p.mu.Lock()
			p.errors++
			p.lastError = string(msg)
			p.mu.Unlock()
		}
	}
}

func (p *publisher) write(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.c.Write(b)
	return err
}

// publish sends message seq, stamped now.
func (p *publisher) publish(seq int) error {
	msg := wire.Message(seq, time.Now().UnixNano(), *size)
	var cmd []byte
	if p.im.proto == "centrifuge" {
		cmd = fmt.Appendf(nil, `{"id":%d,"publish":{"channel":"bench","data":"%s"}}`, seq+1, msg)
	} else {
		cmd = append([]byte(wire.Publish), msg...)
	}
	return p.write(wire.AppendFrame(nil, wire.OpText, cmd, true))
}

func (p *publisher) close() { p.c.Close() }

func readFrame(br *bufio.Reader) (byte, []byte, error) {
	var buf []byte
	for {
		op, payload, n, err := wire.ParseFrame(buf)
		if err != nil {
			return 0, nil, err
		}
		if n > 0 {
			return op, payload, nil
		}
		b, err := br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		buf = append(buf, b)
	}
}

// clientProc is a running client process.
type clientProc struct {
	i     int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   string // latency file
}

type clientEvent struct {
	i    int
	kind string // ready, done, summary, error, exit
	arg  string
}

func startClient(i int, im impl, addr, src string, n int, out string, events chan<- clientEvent) (*clientProc, error) {
	cmd := exec.Command(filepath.Join(*binDir, "client"), "-addr", addr, "-n", strconv.Itoa(n), "-src", src,
		"-path", im.path, "-proto", im.proto, "-k", strconv.Itoa(*k), "-out", out, "-join-timeout", joinTimeout.String(),
		"-tls="+strconv.FormatBool(im.tls))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start client: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			kind, arg, _ := strings.Cut(sc.Text(), " ")
			events <- clientEvent{i: i, kind: kind, arg: arg}
		}
		events <- clientEvent{i: i, kind: "exit"}
	}()
	return &clientProc{i: i, cmd: cmd, stdin: stdin, out: out}, nil
}

func (c *clientProc) kill() {
	c.stdin.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// waitAll waits until every client has said kind.
func waitAll(clients []*clientProc, events <-chan clientEvent, kind string, limit time.Duration, srv *server) error {
	seen := map[int]bool{}
	t := time.NewTimer(max(limit, 0))
	defer t.Stop()
	for len(seen) < len(clients) {
		select {
		case ev := <-events:
			switch ev.kind {
			case kind:
				seen[ev.i] = true
			case "error", "exit":
				msg := fmt.Sprintf("client %d: %s %s", ev.i, ev.kind, ev.arg)
				if srv != nil {
					msg += "; server log:\n" + srv.logTail()
				}
				return errors.New(msg)
			}
		case <-t.C:
			return fmt.Errorf("%d of %d clients %s within %v", len(seen), len(clients), kind, limit.Round(time.Millisecond))
		}
	}
	return nil
}

// clientSummary is the client's JSON summary (see bench/fanout/client).
type clientSummary struct {
	Conns      int     `json:"conns"`
	Deliveries int     `json:"deliveries"`
	Dups       int     `json:"dups"`
	Closed     int     `json:"closed"`
	Strays     int     `json:"strays"`
	SeqCount   []int   `json:"seq_count"`
	SeqMaxNs   []int64 `json:"seq_max_ns"`
}

// report asks the client for its results.
func (c *clientProc) report(events <-chan clientEvent) (clientSummary, []int64, error) {
	var sum clientSummary
	if _, err := io.WriteString(c.stdin, "report\n"); err != nil {
		return sum, nil, fmt.Errorf("client %d: %w", c.i, err)
	}
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	for {
		select {
		case ev := <-events:
			if ev.i != c.i {
				continue // a late "done" of another client
			}
			switch ev.kind {
			case "summary":
				if err := json.Unmarshal([]byte(ev.arg), &sum); err != nil {
					return sum, nil, fmt.Errorf("client %d summary: %w", c.i, err)
				}
				b, err := os.ReadFile(c.out)
				if err != nil {
					return sum, nil, err
				}
				lat := make([]int64, len(b)/8)
				for i := range lat {
					lat[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
				}
				return sum, lat, nil
			case "error", "exit":
				return sum, nil, fmt.Errorf("client %d: %s %s", c.i, ev.kind, ev.arg)
			}
		case <-t.C:
			return sum, nil, fmt.Errorf("client %d: no summary", c.i)
		}
	}
}

// waitProfiles waits until no profile in dir is still being written.
func waitProfiles(dir string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		parts, _ := filepath.Glob(filepath.Join(dir, "*.part"))
		if len(parts) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	logf("  profiles still being written after %v", limit)
}

// straceProc is strace -c attached to the server's processes.
type straceProc struct {
	cmd  *exec.Cmd
	path string
}

func startStrace(pids []int, path string) (*straceProc, error) {
	args := []string{"-c", "-f", "-o", path}
	for _, p := range pids {
		args = append(args, "-p", strconv.Itoa(p))
	}
	cmd := exec.Command("strace", args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("strace: %w", err)
	}
	// Wait until every thread of every process is attached.
	want := 0
	for _, p := range pids {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		want += len(ents)
	}
	attached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		n := 0
		for sc.Scan() {
			if strings.Contains(sc.Text(), "attached") {
				if n++; n == want {
					close(attached)
				}
			}
		}
	}()
	select {
	case <-attached:
	case <-time.After(10 * time.Second):
		logf("  strace: not all %d threads reported attached in 10 s", want)
	}
	return &straceProc{cmd: cmd, path: path}, nil
}

func (s *straceProc) finish() (string, error) {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	b, err := os.ReadFile(s.path)
	return string(b), err
}

func (s *straceProc) kill() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
	}
}

// tree returns pid and all its descendants.
func tree(pid int) []int {
	parent := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
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
		parent[pp] = append(parent[pp], p)
	}
	out := []int{pid}
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

// cpuByPID is the utime+stime of each pid, in nanoseconds.
func cpuByPID(pids []int) map[int]int64 {
	m := make(map[int]int64, len(pids))
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
		m[pid] = (u + s) * int64(time.Second/100) // USER_HZ
	}
	return m
}

// ioThread is the CPU time (utime+stime, ns) of an io_uring kernel thread.
type ioThread struct {
	name string
	ns   int64
}

// ioThreads finds the io_uring threads of pids — the SQPOLL thread
// (iou-sqp-PID) and io-wq workers (iou-wrk-PID) — by their names among the
// process's tasks. They belong to the process's thread group, so
// /proc/PID/stat (cpuByPID) already includes their time: this shows how
// much of it was theirs.
func ioThreads(pids []int) map[int]ioThread {
	m := map[int]ioThread{}
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, t := range tasks {
			comm, err := os.ReadFile(t + "/comm")
			if err != nil || !strings.HasPrefix(string(comm), "iou-") {
				continue
			}
			b, err := os.ReadFile(t + "/stat")
			if err != nil {
				continue
			}
			f := statFields(b)
			if len(f) < 15 {
				continue
			}
			tid, _ := strconv.Atoi(filepath.Base(t))
			u, _ := strconv.ParseInt(f[13], 10, 64)
			s, _ := strconv.ParseInt(f[14], 10, 64)
			m[tid] = ioThread{strings.TrimSpace(string(comm)), (u + s) * int64(time.Second/100)}
		}
	}
	return m
}

func cpuTime(pids []int) int64 {
	var t int64
	for _, v := range cpuByPID(pids) {
		t += v
	}
	return t
}

// ctxSwitches sums the voluntary context switches (a thread went to sleep:
// each is a wake-up later) and the involuntary ones (it was put off the
// CPU) of every thread of pids.
func ctxSwitches(pids []int) (vol, invol int64) {
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				k, v, _ := strings.Cut(line, ":")
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				switch k {
				case "voluntary_ctxt_switches":
					vol += n
				case "nonvoluntary_ctxt_switches":
					invol += n
				}
			}
		}
	}
	return vol, invol
}

// memory is the summed RSS of pids, in bytes.
func memory(pids []int) int64 {
	var rss int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "Rss:" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				rss += v << 10
			}
		}
	}
	return rss
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

func printTable(results []*result, start time.Time, load0 string) {
	cpus, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	if m := regexp.MustCompile(`model name\s*:\s*(.*)`).FindSubmatch(cpus); m != nil {
		model = string(m[1])
	}
	fmt.Printf("goes fan-out benchmark, %s: %d round(s), %d message(s) of %d bytes %v apart; %d CPUs (%s); load average %s at the start, %s at the end; took %v\n\n",
		start.Format("2006-01-02 15:04 MST"), *rounds, *k, *size, *interval, bytes.Count(cpus, []byte("processor\t:")), model,
		load0, loadavg(), time.Since(start).Round(time.Second))
	floor := map[int]float64{}    // the floor's CPU per delivery by round
	floorP99 := map[int]float64{} // and its p99
	for _, r := range results {
		if r.im.key == "floor" {
			for _, s := range r.samples {
				floor[s.round] = s.cpuPerDelivery
				floorP99[s.round] = float64(s.p99)
			}
		}
	}
	f := func(format string, v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	ms := func(d float64) string { return f("%.0f", d/1e6) }
	fmt.Println("Medians over the rounds; ×floor (CPU, p99) is the median of each round's ratio to the floor of the same round; lost, dup and warnings are totals.")
	fmt.Println()
	fmt.Println("| server | processes | receivers | deliveries/s | server CPU µs/delivery | ×floor | ×floor by round | p50 ms | p99 ms | p99 ×floor | max ms | RSS KiB/conn | ΔRSS KiB/conn | sleeps/delivery | preempted/delivery | client CPU µs/delivery | lost | dup | blocked-loop warnings |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		if len(r.samples) == 0 {
			continue
		}
		m := func(g func(sample) float64) float64 { return med(r.samples, g) }
		var ratios, p99Ratios []float64
		var byRound []string
		lost, dups, warns := 0, 0, 0
		for _, s := range r.samples {
			lost += s.expected - s.deliveries
			dups += s.dups
			warns += s.warnings
			if fl := floor[s.round]; fl > 0 {
				ratios = append(ratios, s.cpuPerDelivery/fl)
				byRound = append(byRound, fmt.Sprintf("%.2f", s.cpuPerDelivery/fl))
			}
			if fp := floorP99[s.round]; fp > 0 {
				p99Ratios = append(p99Ratios, float64(s.p99)/fp)
			}
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d |\n",
			r.im.name,
			f("%.0f", m(func(s sample) float64 { return float64(s.procs) })),
			f("%.0f", m(func(s sample) float64 { return float64(s.receivers) })),
			f("%.0f", m(func(s sample) float64 { return s.rate })),
			f("%.2f", m(func(s sample) float64 { return s.cpuPerDelivery })/1e3),
			f("%.2f", median(ratios)), strings.Join(byRound, " "),
			ms(m(func(s sample) float64 { return float64(s.p50) })),
			ms(m(func(s sample) float64 { return float64(s.p99) })),
			f("%.2f", median(p99Ratios)),
			ms(m(func(s sample) float64 { return float64(s.max) })),
			f("%.2f", m(func(s sample) float64 { return s.rssPerConn / 1024 })),
			f("%.2f", m(func(s sample) float64 { return s.rssGrowPerConn / 1024 })),
			f("%.3f", m(func(s sample) float64 { return s.volPerDelivery })),
			f("%.3f", m(func(s sample) float64 { return s.involPerDelivery })),
			f("%.2f", m(func(s sample) float64 { return s.clientCPUPerDelivery / 1e3 })),
			lost, dups, warns)
	}
	for _, r := range results { // wss against ws: the goes rows of the same delivery on one worker, and the floor's, round by round
		if !r.im.tls {
			continue
		}
		plainKeys := map[string]bool{"goes1": true, "goes1-nouring": true}
		if r.im.key == "floor-wss" {
			plainKeys = map[string]bool{"floor": true}
		}
		for _, ws := range results {
			if !plainKeys[ws.im.key] || ws.im.mode != r.im.mode {
				continue
			}
			plain := map[int]float64{}
			for _, s := range ws.samples {
				plain[s.round] = s.cpuPerDelivery
			}
			var ratios []float64
			var byRound []string
			for _, s := range r.samples {
				if p := plain[s.round]; p > 0 {
					ratios = append(ratios, s.cpuPerDelivery/p)
					byRound = append(byRound, fmt.Sprintf("%.2f (%.2f / %.2f µs)", s.cpuPerDelivery/p, s.cpuPerDelivery/1e3, p/1e3))
				}
			}
			if len(ratios) > 0 {
				fmt.Printf("\n%s: server CPU per delivery ×%s %.2f (median; by round %s)\n", r.im.name, ws.im.name, median(ratios), strings.Join(byRound, ", "))
			}
		}
	}
	for _, r := range results {
		var io []string
		for _, s := range r.samples {
			if s.ioThreadCPU > 0 {
				io = append(io, fmt.Sprintf("%.2f", s.ioThreadCPU/1e3))
			}
		}
		if len(io) > 0 {
			fmt.Printf("\n%s: its io_uring kernel threads (iou-*, counted in its server CPU) took %s µs/delivery by round\n", r.im.name, strings.Join(io, " "))
		}
		for _, s := range r.samples {
			if s.closed > 0 || s.strays > 0 {
				fmt.Printf("\n%s: %d receiver(s) closed by the server, %d stray frame(s)\n", r.im.name, s.closed, s.strays)
			}
			if s.straceSummary != "" {
				fmt.Printf("\n%s: strace -c -f (%s), %d deliveries: %s\n", r.im.name, s.stracePath, s.deliveries, straceDigest(s.straceSummary, s.deliveries))
			}
		}
		for _, e := range r.failures {
			fmt.Printf("\nFAILED %s: %s\n", r.im.name, firstLine(e))
		}
	}
}

// straceDigest turns strace -c's table into system calls per delivery.
func straceDigest(table string, deliveries int) string {
	if deliveries == 0 {
		return "no deliveries"
	}
	var parts []string
	total := 0
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		// % time, seconds, usecs/call, calls, [errors], syscall
		if len(f) < 5 || f[0] == "%" || strings.HasPrefix(f[0], "-") {
			continue
		}
		calls, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		name := f[len(f)-1]
		if name == "total" {
			total = calls
			continue
		}
		if per := float64(calls) / float64(deliveries); per >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.3f", name, per))
		}
	}
	return fmt.Sprintf("%.3f system calls per delivery (%s)", float64(total)/float64(deliveries), strings.Join(parts, ", "))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
