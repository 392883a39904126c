// Command balance measures how a goes-master spreads a flood of
// connections over the workers of one listener, which share one accept
// queue. For each setting of accept_margin (-margins) it starts a fresh
// goes-master (-master) with one websocket:// (or text://) listener of
// -count workers, runs -clients client processes (this binary, "client"
// mode: internal/flood), each opening its part of -n connections from
// its own source address 127.0.0.(2+i) and waiting for the server's
// answer on each, and once all are open prints the connections of every
// worker (from `goes-master status --json`) and max/mean, min/mean.
//
//	bench/balance.sh                       # 100,000 over 8 workers, balancing off then on
//	bench/balance.sh -n 20000 -margins 0.1
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goes-project/goes/internal/flood"
	"github.com/goes-project/goes/ipc"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "client" {
		os.Exit(flood.Main(os.Args[2:], os.Stdin, os.Stdout))
	}
	bin := flag.String("master", "bin/balance/goes-master", "goes-master binary")
	n := flag.Int("n", 100000, "connections in all")
	clients := flag.Int("clients", 8, "client processes (each holds n/clients; the open-file limit is per process)")
	count := flag.Int("count", 8, "workers")
	proto := flag.String("proto", "ws", "ws (websocket:// listener) or text (text://)")
	margins := flag.String("margins", "off,default", "accept_margin settings, one run each: off, default or a number")
	parallel := flag.Int("parallel", 64, "connections each client opens at once")
	flag.Parse()
	self, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	master, err := filepath.Abs(*bin)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("balance: %d connections (%s) from %d client processes, goes-master with %d workers; %s\n",
		*n, *proto, *clients, *count, time.Now().Format("2006-01-02 15:04"))
	fmt.Println("| accept_margin | open in | per-worker connections (sorted) | max/mean | min/mean |")
	fmt.Println("|---|---|---|---|---|")
	for _, m := range strings.Split(*margins, ",") {
		r := run(master, self, m, *n, *clients, *count, *parallel, *proto)
		fmt.Printf("| %s | %.1fs | %s | %.2f | %.2f |\n", m, r.took.Seconds(), r.counts, r.max, r.min)
	}
}

type result struct {
	took     time.Duration
	counts   string
	max, min float64
}

func run(master, self, margin string, n, clients, count, parallel int, proto string) result {
	dir, err := os.MkdirTemp("", "goes-balance-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(dir)
	scheme := map[string]string{"ws": "websocket", "text": "text"}[proto]
	if scheme == "" {
		fail("bad -proto %q", proto)
	}
	extra := ""
	switch margin {
	case "default":
	case "off":
		extra = `, "accept_margin": -1`
	default:
		extra = `, "accept_margin": ` + margin
	}
	conf := filepath.Join(dir, "goes.json")
	body := fmt.Sprintf(`{"log_level": "warn", "listeners": [{"name": "flood", "listen": "%s://127.0.0.1:0", "count": %d%s}]}`, scheme, count, extra)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		fail("%v", err)
	}
	cli := func(args ...string) []byte {
		out, err := exec.Command(master, append(args, "--run-dir", filepath.Join(dir, "run"), "--config", conf)...).CombinedOutput()
		if err != nil {
			fail("goes-master %v: %v\n%s", args, err, out)
		}
		return out
	}
	status := func() ipc.Status {
		var st ipc.Status
		if err := json.Unmarshal(cli("status", "--json"), &st); err != nil {
			fail("status: %v", err)
		}
		return st
	}
	cli("start", "-d")
	defer cli("stop")
	st := status()
	_, addr, _ := strings.Cut(st.Workers[0].Listen, "://")

	began := time.Now()
	type client struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	var cs []client
	for i := range clients {
		per := n / clients
		if i < n%clients {
			per++
		}
		cmd := exec.Command(self, "client", "-addr", addr, "-src", fmt.Sprintf("127.0.0.%d", 2+i),
			"-n", fmt.Sprint(per), "-proto", proto, "-parallel", fmt.Sprint(parallel))
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			fail("client: %v", err)
		}
		cs = append(cs, client{cmd: cmd, stdin: in, lines: bufio.NewScanner(out)})
	}
	defer func() {
		for _, c := range cs {
			c.stdin.Close()
			c.cmd.Wait()
		}
	}()
	for _, c := range cs {
		if !c.lines.Scan() || !strings.HasPrefix(c.lines.Text(), "ready ") {
			fail("client: %s", c.lines.Text())
		}
	}
	took := time.Since(began)
	// Every connection was answered, so it is counted by a worker; the
	// status may still show a figure from before the last ones.
	var counts []int64
	var sum int64
	for deadline := time.Now().Add(30 * time.Second); ; {
		counts, sum = counts[:0], 0
		for _, w := range status().Workers {
			counts = append(counts, w.Connections)
			sum += w.Connections
		}
		if sum >= int64(n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // a bench polling a status, not a test
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	mean := float64(sum) / float64(len(counts))
	strs := make([]string, len(counts))
	for i, c := range counts {
		strs[i] = fmt.Sprint(c)
	}
	return result{took: took, counts: strings.Join(strs, " / "),
		max: float64(counts[0]) / mean, min: float64(counts[len(counts)-1]) / mean}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "balance: "+format+"\n", args...)
	os.Exit(1)
}
