// Command c1m is the driver of the many-connections benchmark (bench/c1m.sh,
// bench/idle.sh): it starts goes-master with a WebSocket echo listener on
// -workers workers, opens -conns connections from client processes of at
// most -per-client connections each (raw epoll, bench/c1m/client), and
// measures, in every phase under a deadline:
//
//   - connect: the time to open them all and the rate;
//   - memory: the RSS of all goes processes and the kernel's socket memory
//     (/proc/net/sockstat);
//   - idle: the CPU time (utime+stime) and the context switches (voluntary
//     and not, all threads: the wake-ups) of the goes processes over -idle
//     seconds in which nothing is sent;
//   - echo: the time until every connection has had a -size byte message
//     echoed back (skipped with -echo=false), and where the machine's CPU
//     went meanwhile: the server's processes, the clients', softirq (the
//     kernel's loopback receive path) and the machine in all.
//
// -server floor runs bench/c1m/floor in goes-master's place: a WebSocket
// echo on raw epoll in -workers processes, the least the same echo costs
// on this machine, so that goes' figures can be set against it.
//
// It prints a results table; -v adds the idle figures per process.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	run()
	os.Exit(exitCode)
}

// run is the benchmark; its defers stop the clients and goes-master.
func run() {
	bin := flag.String("bin", "bin/c1m", "directory of goes-master and client")
	conns := flag.Int("conns", 20000, "connections")
	workers := flag.Int("workers", 0, "goes-master workers (0: one per 19,000 connections)")
	perClient := flag.Int("per-client", 18000, "connections per client process (the open-file limit is per process)")
	parallel := flag.Int("parallel", 100, "handshakes in flight per client")
	port := flag.Int("port", 18181, "listener port on 127.0.0.1")
	connectTimeout := flag.Duration("connect-timeout", 10*time.Minute, "deadline of the connect phase")
	settle := flag.Duration("settle", 35*time.Second, "wait before the idle window (35 s: past the first run of the connections' 30 s timeout check)")
	idle := flag.Duration("idle", 20*time.Second, "idle window")
	echo := flag.Bool("echo", true, "run the echo phase")
	size := flag.Int("size", 1024, "echo size")
	echoTimeout := flag.Duration("echo-timeout", 2*time.Minute, "deadline of the echo phase")
	env := flag.String("env", "", "extra environment of goes-master, space separated (GODEBUG=..., GOGC=...)")
	extra := flag.String("listener", "", "extra JSON fields of the listener, e.g. '\"idle_timeout\":\"0s\"'")
	top := flag.String("config", "", "extra JSON fields of the config, e.g. '\"watchdog_interval\":\"10s\"'")
	verbose := flag.Bool("v", false, "idle figures per process")
	maxIdle := flag.Float64("max-idle-cpu", 0, "exit 1 when the idle CPU of the goes processes is above this percentage of a core (0: no check)")
	clientEnv := flag.String("client-env", "", "extra environment of the client processes, space separated (GOMAXPROCS=1, ...)")
	handler := flag.String("handler", "echo", "goes-master handler: echo, or chat (which turns the NATS cluster on; no echo phase)")
	server := flag.String("server", "goes", "the server: goes (goes-master), or floor (bench/c1m/floor: raw epoll in -workers processes, the least an echo server does)")
	flag.Parse()
	if *workers <= 0 {
		*workers = (*conns + 18999) / 19000
	}
	nclients := (*conns + *perClient - 1) / *perClient
	start := time.Now()

	dir, err := os.MkdirTemp("", "c1m-")
	check(err)
	defer os.RemoveAll(dir)
	raiseConntrack(*conns)

	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	lst := fmt.Sprintf(`{"name":"ws","listen":"websocket://%s","handler":%q,"count":%d`, addr, *handler, *workers)
	if *handler != "echo" {
		*echo = false
	}
	if *extra != "" {
		lst += "," + *extra
	}
	lst += "}"
	conf := fmt.Sprintf(`{"log_level":"warn","stop_timeout":"5s","ready_timeout":"2m","listeners":[%s]`, lst)
	if *top != "" {
		conf += "," + *top
	}
	conf += "}"
	var probe any
	check(json.Unmarshal([]byte(conf), &probe))
	confFile := filepath.Join(dir, "c1m.json")
	check(os.WriteFile(confFile, []byte(conf), 0o600))
	master := exec.Command(filepath.Join(*bin, "goes-master"), "start", "--run-dir", filepath.Join(dir, "run"), "--config", confFile)
	switch *server {
	case "goes":
	case "floor":
		if *handler != "echo" {
			check(fmt.Errorf("-server floor serves the echo handler only"))
		}
		master = exec.Command(filepath.Join(*bin, "floor"), "-addr", addr, "-workers", strconv.Itoa(*workers))
	default:
		check(fmt.Errorf("-server %q: goes or floor", *server))
	}
	master.Env = append(os.Environ(), strings.Fields(*env)...)
	logf, err := os.Create(filepath.Join(dir, "master.log"))
	check(err)
	master.Stdout, master.Stderr = logf, logf
	check(master.Start())
	defer stopMaster(master, dir)
	if !waitListening(addr, *workers, master.Process.Pid, time.Now().Add(2*time.Minute), dir) {
		exitCode = 1
		return
	}
	fmt.Printf("%s pid %d: %d workers up after %.1fs\n", *server, master.Process.Pid, *workers, time.Since(start).Seconds())

	// Connect.
	type cl struct {
		cmd   *exec.Cmd
		in    *os.File
		lines chan string
	}
	var clients []*cl
	t0 := time.Now()
	left := *conns
	for i := range nclients {
		n := min(left, *perClient)
		left -= n
		src := fmt.Sprintf("127.0.%d.%d", 1+i/250, 2+i%250)
		cmd := exec.Command(filepath.Join(*bin, "client"), "-addr", addr, "-n", strconv.Itoa(n), "-src", src,
			"-parallel", strconv.Itoa(*parallel), "-size", strconv.Itoa(*size),
			"-connect-timeout", connectTimeout.String(), "-echo-timeout", echoTimeout.String())
		in, w, err := os.Pipe()
		check(err)
		cmd.Stdin = in
		cmd.Env = append(os.Environ(), strings.Fields(*clientEnv)...)
		out, err := cmd.StdoutPipe()
		check(err)
		cmd.Stderr = os.Stderr
		check(cmd.Start())
		in.Close()
		c := &cl{cmd: cmd, in: w, lines: make(chan string, 16)}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
		clients = append(clients, c)
	}
	defer func() {
		for _, c := range clients {
			fmt.Fprintln(c.in, "quit")
			c.in.Close()
		}
		for _, c := range clients {
			done := make(chan struct{})
			go func() { c.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				c.cmd.Process.Kill()
			}
		}
	}()
	answer := func(c *cl, prefix string, deadline time.Time) []string {
		for {
			select {
			case l, ok := <-c.lines:
				if !ok {
					return nil
				}
				if strings.HasPrefix(l, "error") {
					fmt.Fprintln(os.Stderr, "client:", l)
					return nil
				}
				if f := strings.Fields(l); len(f) > 0 && f[0] == prefix {
					return f
				}
			case <-time.After(time.Until(deadline)):
				return nil
			}
		}
	}
	open, failed, firstErr := 0, 0, ""
	cdl := time.Now().Add(*connectTimeout + 30*time.Second)
	for _, c := range clients {
		f := answer(c, "ready", cdl)
		if f == nil {
			continue
		}
		o, _ := strconv.Atoi(f[1])
		x, _ := strconv.Atoi(f[2])
		open, failed = open+o, failed+x
		if len(f) > 3 && firstErr == "" {
			firstErr = f[3]
		}
	}
	connectTook := time.Since(t0)
	fmt.Printf("connected %d (%d failed%s) in %.1fs\n", open, failed, errSuffix(firstErr), connectTook.Seconds())

	// Memory, then idle.
	time.Sleep(*settle)
	pids := family(master.Process.Pid)
	rss, pss := 0, 0
	for _, p := range pids {
		rss += statusKB(p, "VmRSS")
		pss += pssKB(p)
	}
	sock := sockstat()
	before := map[int]usage{}
	for _, p := range pids {
		before[p] = use(p)
	}
	time.Sleep(*idle)
	var tot, wtot usage
	wpss := 0
	var rows []string
	for _, p := range pids {
		u := use(p).minus(before[p])
		tot = tot.plus(u)
		if p != master.Process.Pid {
			wtot = wtot.plus(u)
			wpss += pssKB(p)
		}
		role := "worker"
		if p == master.Process.Pid {
			role = "master"
		}
		rows = append(rows, fmt.Sprintf("  %-6s pid %-7d cpu %6.3fs  ctxsw %7d (%.0f/s)  rss %6.1f MiB  pss %6.1f MiB  threads %d", role, p, u.cpu.Seconds(), u.ctx, float64(u.ctx)/idle.Seconds(),
			float64(statusKB(p, "VmRSS"))/1024, float64(pssKB(p))/1024, statusKB(p, "Threads")))
	}
	if *verbose {
		sort.Strings(rows)
		fmt.Println(strings.Join(rows, "\n"))
	}

	// Echo.
	echoed, echoNs := -1, int64(0)
	var echoUse, clientUse usage
	var echoBusy, echoAll, echoIRQ float64
	if *echo {
		for _, p := range pids {
			before[p] = use(p)
		}
		for _, c := range clients {
			before[c.cmd.Process.Pid] = use(c.cmd.Process.Pid)
		}
		b0, a0, i0 := cpuStat()
		for _, c := range clients {
			fmt.Fprintln(c.in, "echo")
		}
		echoed = 0
		edl := time.Now().Add(*echoTimeout + 30*time.Second)
		for _, c := range clients {
			if f := answer(c, "echoed", edl); f != nil {
				n, _ := strconv.Atoi(f[1])
				ns, _ := strconv.ParseInt(f[2], 10, 64)
				echoed += n
				echoNs = max(echoNs, ns)
			}
		}
		for _, p := range pids {
			echoUse = echoUse.plus(use(p).minus(before[p]))
		}
		for _, c := range clients {
			p := c.cmd.Process.Pid
			clientUse = clientUse.plus(use(p).minus(before[p]))
		}
		b1, a1, i1 := cpuStat()
		echoBusy, echoAll, echoIRQ = b1-b0, a1-a0, i1-i0
	}
	rssAfter, pssAfter := 0, 0
	if *echo {
		for _, p := range pids {
			rssAfter += statusKB(p, "VmRSS")
			pssAfter += pssKB(p)
		}
	}
	closed := 0
	for _, c := range clients {
		fmt.Fprintln(c.in, "stat")
		if f := answer(c, "stat", time.Now().Add(30*time.Second)); f != nil {
			n, _ := strconv.Atoi(f[2])
			closed += n
		}
	}

	fmt.Println()
	fmt.Printf("| %-34s | %s |\n", "c1m: "+*server+" websocket "+*handler, "value")
	fmt.Printf("|%s|%s|\n", strings.Repeat("-", 36), strings.Repeat("-", 40))
	row := func(k, f string, a ...any) { fmt.Printf("| %-34s | %s |\n", k, fmt.Sprintf(f, a...)) }
	row("workers / client processes", "%d / %d", *workers, nclients)
	row("connected (failed)", "%d of %d (%d)", open, *conns, failed)
	row("connect time, rate", "%.1f s, %.0f/s", connectTook.Seconds(), float64(open)/connectTook.Seconds())
	row("goes processes' RSS", "%.1f MiB (%.2f KiB/conn)", float64(rss)/1024, float64(rss)/float64(max(open, 1)))
	row("goes processes' PSS", "%.1f MiB (%.2f KiB/conn; shared pages counted once)", float64(pss)/1024, float64(pss)/float64(max(open, 1)))
	row("kernel sockets (both ends)", "%s", sock)
	row(fmt.Sprintf("idle CPU over %s", idle), "%.3f s (%.1f%% of a core)", tot.cpu.Seconds(), 100*tot.cpu.Seconds()/idle.Seconds())
	if nw := len(pids) - 1; nw > 0 {
		row("idle, mean of a worker", "%.2f ms/s CPU, %.1f switches/s, PSS %.1f MiB", 1000*wtot.cpu.Seconds()/idle.Seconds()/float64(nw),
			float64(wtot.ctx)/idle.Seconds()/float64(nw), float64(wpss)/1024/float64(nw))
	}
	row("idle context switches", "%d (%.0f/s, %.1f/s per process)", tot.ctx, float64(tot.ctx)/idle.Seconds(), float64(tot.ctx)/idle.Seconds()/float64(len(pids)))
	if *echo {
		row(fmt.Sprintf("%d B echo on every connection", *size), "%d back in %.2f s", echoed, float64(echoNs)/1e9)
	}
	if *echo {
		// cpuStat counts USER_HZ ticks of 10 ms over all CPUs.
		busy := echoBusy / 100
		// The softirq figure overlaps the processes' own: what the kernel
		// runs in a process's context on its way out of a system call is
		// in that process's run time too.
		row("CPU during the echo", "%s %.1f s, clients %.1f s; softirq %.1f s; %.1f s busy in all (the machine %.0f%% busy)", *server, echoUse.cpu.Seconds(), clientUse.cpu.Seconds(),
			echoIRQ/100, busy, 100*echoBusy/max(echoAll, 1))
		row("RSS, PSS after the echo", "%.1f MiB, %.1f MiB", float64(rssAfter)/1024, float64(pssAfter)/1024)
	}
	row("closed by the server", "%d", closed)
	row("total run time", "%.0f s", time.Since(start).Seconds())
	if pct := 100 * tot.cpu.Seconds() / idle.Seconds(); *maxIdle > 0 && pct > *maxIdle {
		fmt.Printf("FAIL: idle CPU %.1f%% of a core, above the %.1f%% bound (-max-idle-cpu)\n", pct, *maxIdle)
		exitCode = 1
	}
}

// exitCode is the driver's exit status, set by a failed bound; main's
// deferred clean-up runs first (see run).
var exitCode int

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ", first error: " + strings.ReplaceAll(e, "_", " ")
}

// check panics on an error, so that run's deferred clean-up (clients,
// goes-master) runs on the way out.
func check(err error) {
	if err != nil {
		panic(fmt.Sprint("c1m: ", err))
	}
}

// raiseConntrack raises nf_conntrack_max for the loopback connections
// (two entries' worth of room per connection) when it is lower and this
// runs as root, and says what it did.
func raiseConntrack(conns int) {
	const f = "/proc/sys/net/netfilter/nf_conntrack_max"
	b, err := os.ReadFile(f)
	if err != nil {
		return // no conntrack
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	want := max(2*conns, 262144)
	if cur >= want {
		return
	}
	if err := os.WriteFile(f, []byte(strconv.Itoa(want)), 0o644); err != nil {
		fmt.Printf("nf_conntrack_max is %d, fewer than %d connections need: raise it as root (sysctl -w net.netfilter.nf_conntrack_max=%d)\n", cur, conns, want)
		return
	}
	fmt.Printf("raised nf_conntrack_max from %d to %d (sysctl -w net.netfilter.nf_conntrack_max=%d)\n", cur, want, want)
}

// waitListening waits until addr accepts and the master has workers
// children, and reports whether it did in time.
func waitListening(addr string, workers, pid int, deadline time.Time, dir string) bool {
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil || zombie(pid) {
			break // goes-master exited: its log says why
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if len(family(pid))-1 >= workers {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "master.log"))
	fmt.Fprintf(os.Stderr, "c1m: goes-master not serving %s with %d workers in time; its log:\n%s", addr, workers, log)
	return false
}

// zombie reports whether process pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	return len(f) > 0 && f[0] == "Z"
}

func stopMaster(m *exec.Cmd, dir string) {
	m.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		for _, p := range family(m.Process.Pid) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// family returns pid and its descendants.
func family(pid int) []int {
	kids := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		pp, _ := strconv.Atoi(f[1])
		kids[pp] = append(kids[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, kids[out[i]]...)
	}
	return out
}

type usage struct {
	cpu time.Duration
	ctx int64
}

func (u usage) minus(v usage) usage { return usage{u.cpu - v.cpu, u.ctx - v.ctx} }
func (u usage) plus(v usage) usage  { return usage{u.cpu + v.cpu, u.ctx + v.ctx} }

// use reads the CPU time of process p, all threads: the sum of the
// threads' run time in /proc/p/task/*/schedstat (nanoseconds), or where
// that is missing utime+stime of /proc/p/stat (USER_HZ ticks of 10 ms, too
// coarse for one idle process); and the context switches of all its
// threads (voluntary and not: the wake-ups).
func use(p int) usage {
	var u usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return u
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	ticks := time.Duration(ut+st) * 10 * time.Millisecond
	var sched time.Duration
	schedOK := true
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
	for _, t := range tasks {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", p, t.Name())); err == nil {
			ns, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
			sched += time.Duration(ns)
		} else {
			schedOK = false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", p, t.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				u.ctx += n
			}
		}
	}
	u.cpu = ticks
	if schedOK && len(tasks) > 0 {
		u.cpu = sched
	}
	return u
}

func statusKB(p int, key string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// pssKB is the proportional set size of process p (/proc/p/smaps_rollup):
// its private pages plus its share of the pages it shares (the binary's
// text with the other goes processes), so that the sum over processes
// counts each page once.
func pssKB(p int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "Pss" {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// cpuStat returns the machine's busy and total CPU time so far, and the
// part of busy spent in interrupts and softirqs (the kernel's receive path
// of loopback TCP), in USER_HZ ticks, from the cpu
// line of /proc/stat.
func cpuStat() (busy, all, irq float64) {
	b, _ := os.ReadFile("/proc/stat")
	l, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(l)
	for i := 1; i < len(f); i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		all += v
		if i != 4 && i != 5 { // idle, iowait
			busy += v
		}
		if i == 6 || i == 7 { // irq, softirq
			irq += v
		}
	}
	return busy, all, irq
}

// sockstat summarises /proc/net/sockstat: TCP sockets in use and their
// buffer memory (pages of 4 KiB).
func sockstat() string {
	b, _ := os.ReadFile("/proc/net/sockstat")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "TCP:") {
			f := strings.Fields(l)
			var inuse, mem int
			for i := 1; i+1 < len(f); i += 2 {
				switch f[i] {
				case "inuse":
					inuse, _ = strconv.Atoi(f[i+1])
				case "mem":
					mem, _ = strconv.Atoi(f[i+1])
				}
			}
			return fmt.Sprintf("%d TCP in use, buffers %.1f MiB", inuse, float64(mem)*4/1024)
		}
	}
	return "?"
}
