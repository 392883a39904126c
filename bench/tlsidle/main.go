// Command tlsidle measures what an idle TLS connection costs a server
// (bench/tlsidle.sh, issue 20): it starts the server in a process of its
// own, opens -conns connections from this process (a handshake and one
// echo each: a WebSocket message over wss, or raw bytes over tls), lets
// them idle and reports the server's growth per connection: resident
// memory (VmRSS) and, for goes, the Go heap and stacks in use after a GC,
// and the goroutines.
//
// Servers (-server):
//
//   - goes: a connections.Server behind the worker's TLS listener
//     (worker.TLSListener, as goes-master's workers serve https:// and
//     wss://), an echo handler, -engine auto (the epoll engine on Linux)
//     or std (a goroutine per connection, the path of TLS before issue 20);
//   - nginx: nginx -c with one worker, HTTPS keep-alive, the same
//     certificate; each connection sends one request (as issue 20 did).
//
// Every phase has a deadline; it prints one results line.
// TLSIDLE_CPUPROFILE=f (and TLSIDLE_HEAPPROFILE=f) make the goes server
// process write a CPU profile of its run (a heap profile at each measure).
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goes-project/goes/internal/testkit"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	gohttp "github.com/goes-project/goes/protocols/http"
	gows "github.com/goes-project/goes/protocols/websocket"
	"github.com/goes-project/goes/worker"
)

func main() {
	serve := flag.Bool("serve", false, "run the goes server (the driver starts it)")
	server := flag.String("server", "goes", "goes or nginx")
	engine := flag.String("engine", "auto", "goes engine: auto or std")
	scheme := flag.String("scheme", "wss", "wss, tls (raw echo) or https (one GET each); nginx: https")
	conns := flag.Int("conns", 5000, "connections")
	parallel := flag.Int("parallel", 50, "handshakes in flight")
	settle := flag.Duration("settle", 3*time.Second, "idle time before the measure")
	cert := flag.String("cert", "", "certificate PEM (default: a new self-signed ECDSA P-256 one)")
	key := flag.String("key", "", "key PEM")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (-serve)")
	x25519 := flag.Bool("x25519", false, "clients offer X25519 and P-256 only (a ClientHello of ~300 B; Go's default also offers X25519MLKEM768, ~1.5 KiB)")
	tls12 := flag.Bool("tls12", false, "clients speak TLS 1.2 at most")
	flag.Parse()
	raiseNoFile()
	if *serve {
		serveGoes(*addr, *engine, *scheme, *cert, *key)
		return
	}
	dir, err := os.MkdirTemp("", "tlsidle-")
	check(err)
	defer os.RemoveAll(dir)
	if *cert == "" {
		*cert, *key = writeCert(dir)
	}
	var srv *server_
	if *server == "nginx" {
		srv = startNginx(dir, *cert, *key)
		*scheme = "https"
	} else {
		srv = startGoes(dir, *engine, *scheme, *cert, *key)
	}
	defer srv.stop()
	time.Sleep(500 * time.Millisecond) // let the server's start-up allocation settle before the first reading
	before := srv.measure()
	conf := &tls.Config{InsecureSkipVerify: true}
	if *x25519 {
		conf.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	if *tls12 {
		conf.MaxVersion = tls.VersionTLS12
	}
	held, err := dialAll(srv.addr, *scheme, conf, *conns, *parallel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsidle:", err)
		os.Exit(1)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	time.Sleep(*settle)
	after := srv.measure()
	n := float64(len(held))
	name := *server
	if name == "goes" {
		name += " engine=" + *engine
	}
	if *x25519 {
		name += " x25519"
	}
	if *tls12 {
		name += " tls1.2"
	}
	fmt.Printf("%-27s %-5s %6d conns  RSS %8.0f B/conn", name, *scheme, len(held), float64(after.rss-before.rss)/n)
	if after.heap > 0 {
		fmt.Printf("  heap+stacks %7.0f B/conn  goroutines %d -> %d", float64(after.heap-before.heap)/n, before.goroutines, after.goroutines)
	}
	fmt.Println()
}

type reading struct {
	rss, heap  int64
	goroutines int
}

type server_ struct {
	addr    string
	measure func() reading
	stop    func()
}

// startGoes runs this program with -serve and reads its address.
func startGoes(dir, engine, scheme, cert, key string) *server_ {
	self, err := os.Executable()
	check(err)
	cmd := exec.Command(self, "-serve", "-engine", engine, "-scheme", scheme, "-cert", cert, "-key", key)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	check(err)
	outp, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	out := bufio.NewReader(outp)
	line, err := readLine(out, 10*time.Second)
	check(err)
	addr := strings.TrimPrefix(line, "listening ")
	var mu sync.Mutex
	return &server_{
		addr: addr,
		measure: func() reading {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(in, "measure")
			line, err := readLine(out, 30*time.Second)
			check(err)
			var r reading
			_, err = fmt.Sscanf(line, "rss %d heap %d goroutines %d", &r.rss, &r.heap, &r.goroutines)
			check(err)
			return r
		},
		stop: func() {
			in.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
		},
	}
}

func readLine(r *bufio.Reader, d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case x := <-ch:
		return x.s, x.err
	case <-time.After(d):
		return "", fmt.Errorf("no answer from the server in %v", d)
	}
}

// serveGoes is the server process: it answers "measure" on stdin with
// its figures after a GC, and exits at EOF.
func serveGoes(addr, engine, scheme, cert, key string) {
	if f := os.Getenv("TLSIDLE_CPUPROFILE"); f != "" { // a CPU profile of the whole run
		if w, err := os.Create(f); err == nil {
			pprof.StartCPUProfile(w)
			defer func() { pprof.StopCPUProfile(); w.Close() }()
		}
	}
	prof := os.Getenv("TLSIDLE_HEAPPROFILE") // a heap profile at each measure
	if prof != "" {
		runtime.MemProfileRate = 1
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	check(err)
	raw, err := net.Listen("tcp", addr)
	check(err)
	tl, err := worker.TLSListener(raw, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil, worker.TLSLimits{}, zerolog.Nop())
	check(err)
	cfg := connections.Config{Transport: "tls", Logger: zerolog.Nop(), Handler: connections.Handler{
		OnMessage: func(c connections.Connection, b []byte) { c.SendBytes(b, false) },
	}}
	if engine == "std" {
		cfg.Engine = connections.EngineStd
	}
	switch scheme {
	case "wss":
		cfg.Protocol = gows.New()
	case "https":
		cfg.Protocol = gohttp.New()
		cfg.Handler.OnMessage = func(c connections.Connection, _ []byte) { c.Send("hello", false) }
	}
	s := connections.NewServer(cfg)
	go s.Serve(tl.Listener)
	fmt.Printf("listening %s\n", raw.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if prof != "" {
			if f, err := os.Create(prof); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		fmt.Printf("rss %d heap %d goroutines %d\n", rssOf(os.Getpid()), int64(ms.HeapInuse+ms.StackInuse), runtime.NumGoroutine())
	}
	s.Close()
}

// startNginx runs nginx with one worker serving HTTPS keep-alive.
func startNginx(dir, cert, key string) *server_ {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err2 := os.Stat(p); err2 == nil {
				bin, err = p, nil
			}
		}
	}
	check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "nginx.conf")
	check(os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
worker_rlimit_nofile 30000;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 100000;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    location / { return 200 "hello"; }
  }
}
`, dir, addr, cert, key)), 0o600))
	cmd := exec.Command(bin, "-c", conf, "-p", dir)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("nginx did not listen on %s", addr))
		}
		time.Sleep(20 * time.Millisecond)
	}
	workerPID := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		check(err)
		f := strings.Fields(string(b))
		if len(f) != 1 {
			check(fmt.Errorf("nginx master has %d children", len(f)))
		}
		p, err := strconv.Atoi(f[0])
		check(err)
		return p
	}
	return &server_{
		addr:    addr,
		measure: func() reading { return reading{rss: rssOf(workerPID())} },
		stop: func() {
			cmd.Process.Signal(syscall.SIGQUIT)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
		},
	}
}

// dialAll opens n connections, each with its handshake and one echo (one
// request for https), parallel at a time.
func dialAll(addr, scheme string, conf *tls.Config, n, parallel int) ([]io.Closer, error) {
	out := make([]io.Closer, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialOne(addr, scheme, conf, deadline)
			if err != nil {
				errs <- err
				return
			}
			out[i] = c
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, c := range out {
			if c != nil {
				c.Close()
			}
		}
		return nil, err
	}
	return out, nil
}

func dialOne(addr, scheme string, conf *tls.Config, deadline time.Time) (io.Closer, error) {
	switch scheme {
	case "wss":
		d := websocket.Dialer{TLSClientConfig: conf, HandshakeTimeout: 30 * time.Second}
		ws, _, err := d.Dial("wss://"+addr+"/", nil)
		if err != nil {
			return nil, err
		}
		ws.SetReadDeadline(deadline)
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte("hello")); err != nil {
			return nil, err
		}
		if _, _, err := ws.ReadMessage(); err != nil {
			return nil, err
		}
		return ws, nil
	case "tls", "https":
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, conf)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(deadline)
		if scheme == "tls" {
			io.WriteString(c, "hello")
			if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
				return nil, err
			}
			return c, nil
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return c, nil
	}
	return nil, fmt.Errorf("scheme %q", scheme)
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsidle:", err)
		os.Exit(1)
	}
}

// writeCert writes a new self-signed ECDSA P-256 certificate for the
// loopback addresses and its key into dir.
func writeCert(dir string) (certFile, keyFile string) {
	certFile, keyFile, err := testkit.WriteCertFiles(dir)
	check(err)
	return certFile, keyFile
}
