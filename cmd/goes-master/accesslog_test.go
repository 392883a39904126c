//go:build unix

package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
)

// accessLine is one line of an access log.
type accessLine struct {
	Time       string   `json:"time"`
	Remote     string   `json:"remote"`
	Method     string   `json:"method"`
	Path       string   `json:"path"`
	Status     int      `json:"status"`
	BytesIn    int64    `json:"bytes_in"`
	BytesOut   int64    `json:"bytes_out"`
	DurationMS *float64 `json:"duration_ms"`
	Worker     *int     `json:"worker"`
}

// readAccess reads the lines of an access log (none when it is missing).
func readAccess(path string) ([]accessLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []accessLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l accessLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// waitAccess waits for path to hold n lines, then checks it holds no more.
func waitAccess(t *testing.T, path string, n int) []accessLine {
	t.Helper()
	var lines []accessLine
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "access log lines", func() error {
		var err error
		if lines, err = readAccess(path); err != nil {
			return err
		}
		if len(lines) < n {
			return fmt.Errorf("%d lines of %d", len(lines), n)
		}
		return nil
	})
	if len(lines) != n {
		t.Fatalf("%s: %d lines, want %d: %+v", path, len(lines), n, lines)
	}
	return lines
}

// TestAccessLog: goes-master's per-listener "access_log" writes one JSON
// line per HTTP request (a 200 and a 404 of the static handler, a POST
// with a body to the hello handler) with its fields, and after the file is
// moved away, USR1 makes new lines go to a new file at the path.
func TestAccessLog(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>goes</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, "10s")
	logs := t.TempDir()
	filesLog, helloLog := filepath.Join(logs, "files.log"), filepath.Join(logs, "hello.log")
	conf := fmt.Sprintf(`{"listeners": [
  {"name": "files", "listen": "http://127.0.0.1:0", "count": 2, "handler": "static", "root": %q, "access_log": %q},
  {"name": "hello", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello", "access_log": %q}
]}`, root, filesLog, helloLog)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	st := s.start()
	addrs := listenAddrs(t, st)
	c := &http.Client{Timeout: 5 * time.Second}
	do := func(method, url, body string, want int) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, url, resp.StatusCode, want)
		}
	}
	files, hello := "http://"+addrs["files"], "http://"+addrs["hello"]
	const gets = 5
	for range gets {
		do("GET", files+"/", "", 200)
	}
	do("GET", files+"/missing?x=1", "", 404)
	post := strings.Repeat("p", 1000)
	do("POST", hello+"/form", post, 200)

	lines := waitAccess(t, filesLog, gets+1)
	workers := map[int]bool{}
	for _, w := range st.Workers {
		workers[w.ID] = true
	}
	for i, l := range lines {
		wantPath, wantStatus := "/", 200
		if i == gets {
			wantPath, wantStatus = "/missing?x=1", 404
		}
		if l.Method != "GET" || l.Path != wantPath || l.Status != wantStatus {
			t.Errorf("line %d: %+v, want GET %s %d", i, l, wantPath, wantStatus)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
			t.Errorf("line %d: time: %v", i, err)
		}
		if !strings.HasPrefix(l.Remote, "127.0.0.1:") || l.BytesIn <= 0 || l.BytesOut <= 0 ||
			l.DurationMS == nil || *l.DurationMS < 0 || l.Worker == nil || !workers[*l.Worker] {
			t.Errorf("line %d: %+v", i, l)
		}
		if wantStatus == 200 && l.BytesOut < int64(len("<h1>goes</h1>\n")) {
			t.Errorf("line %d: bytes_out %d, less than the body", i, l.BytesOut)
		}
	}
	hl := waitAccess(t, helloLog, 1)
	if l := hl[0]; l.Method != "POST" || l.Path != "/form" || l.Status != 200 ||
		l.BytesIn <= int64(len(post)) || l.BytesOut <= int64(len("hello, goer")) {
		t.Errorf("POST line: %+v", l)
	}

	// logrotate: move, USR1, new lines go to a new file.
	if err := os.Rename(filesLog, filesLog+".1"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(st.Master.PID, syscall.SIGUSR1)
	// Every worker of the listener reopens on its own: poll until a
	// request's line shows up in the new file, then check nothing after it
	// goes to the old one.
	sent := 0
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "lines in the new file", func() error {
		for range 4 {
			do("GET", files+"/", "", 200)
			sent++
		}
		lines, err := readAccess(filesLog)
		if err != nil {
			return err
		}
		if len(lines) < 4 {
			return fmt.Errorf("%d lines in the new file", len(lines))
		}
		return nil
	})
	for range 10 {
		do("GET", files+"/", "", 200)
		sent++
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "every line written", func() error {
		old, err := readAccess(filesLog + ".1")
		if err != nil {
			return err
		}
		cur, err := readAccess(filesLog)
		if err != nil {
			return err
		}
		if got := len(old) + len(cur); got != gets+1+sent {
			return fmt.Errorf("%d+%d lines, want %d", len(old), len(cur), gets+1+sent)
		}
		return nil
	})
	s.stopAndCheck(st)
}

// TestAccessLogRefused: requests goes answers itself, without the handler,
// have their access log line as nginx logs its 400s, 408s, 413s: a flood
// of 200 malformed requests writes 200 lines (one per request, no more)
// while the error log stays rate-limited (1 to 20 lines about bad input);
// a 413 (Content-Length over max_package_size), a 431 (a head over the
// header limit) and a 408 (a head that stalls past header_timeout, its
// duration the time it took) have theirs, with what was read of the
// request line; and a 503 of a connection shed because the worker's
// max_input_memory is spent.
func TestAccessLogRefused(t *testing.T) {
	logs := t.TempDir()
	accessLog, shedLog := filepath.Join(logs, "web.log"), filepath.Join(logs, "shed.log")
	s := newConfSetup(t, fmt.Sprintf(`{"log_level": "info", "listeners": [
  {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello", "header_timeout": "1s",
   "max_package_size": 65536, "access_log": %q},
  {"name": "shed", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello", "max_input_memory": 100000,
   "access_log": %q}]}`, accessLog, shedLog))
	st := s.start()
	ask := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", s.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c) // the answer, then the close
		return string(b)
	}
	const flood = 200
	for i := range flood {
		if got := ask(fmt.Sprintf("NOT HTTP %d\x00\r\n\r\n", i)); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Fatalf("malformed request %d: %q", i, got)
		}
	}
	lines := waitAccess(t, accessLog, flood)
	for i, l := range lines {
		if l.Status != 400 || l.Method != "NOT" || l.Path != "HTTP" || l.BytesIn <= 0 || l.BytesOut <= 0 ||
			!strings.HasPrefix(l.Remote, "127.0.0.1:") || l.Worker == nil || l.DurationMS == nil {
			t.Fatalf("line %d: %+v", i, l)
		}
	}
	b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(b), "bad input")
	t.Logf("%d malformed requests: %d access log lines, %d error log lines about bad input", flood, len(lines), n)
	if n == 0 || n > 20 {
		t.Fatalf("%d log lines about bad input, want 1 to 20:\n%s", n, b)
	}

	if got := ask("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 413 ") {
		t.Fatalf("too large: %q", got)
	}
	if got := ask("GET /h HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 70000) + "\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 413 ") &&
		!strings.HasPrefix(got, "HTTP/1.1 431 ") {
		t.Fatalf("head too large: %q", got)
	}
	slow := time.Now()
	if got := ask("GET /slow HTTP/1.1\r\nHo"); !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Fatalf("stalled head: %q", got)
	}
	took := time.Since(slow)
	lines = waitAccess(t, accessLog, flood+3)
	want := []struct {
		method, path string
		status       int
	}{{"POST", "/up", 413}, {"GET", "/h", 0}, {"GET", "/slow", 408}}
	for i, w := range want {
		l := lines[flood+i]
		if l.Method != w.method || l.Path != w.path || w.status != 0 && l.Status != w.status || l.BytesIn <= 0 || l.BytesOut <= 0 {
			t.Errorf("line %d: %+v, want %s %s %d", flood+i, l, w.method, w.path, w.status)
		}
	}
	// The 408's duration runs from the request's first read to the
	// timeout: about header_timeout, no more than the client waited.
	if d := lines[flood+2].DurationMS; *d < 500 || *d > float64(took)/float64(time.Millisecond) {
		t.Errorf("408 after %v: duration_ms %v", took, *d)
	}

	// Two uploads of 60,000 bytes, half sent, to a worker that holds
	// 100,000 bytes of unfinished input at most: one is shed, 503.
	shedAddr := listenAddrs(t, st)["shed"]
	answers := make(chan string, 2)
	var ups []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", shedAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n"+strings.Repeat("u", 30000))
		ups = append(ups, c)
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c) // the answer and the close, or our close
			answers <- string(b)
		}()
	}
	if got := <-answers; !strings.HasPrefix(got, "HTTP/1.1 503 ") {
		t.Fatalf("the first answer to two uploads over max_input_memory: %q, want a 503", got)
	}
	l := waitAccess(t, shedLog, 1)[0]
	for _, c := range ups {
		c.Close()
	}
	if got := <-answers; got != "" {
		t.Errorf("the other upload was answered %q", got)
	}
	if l.Status != 503 || l.BytesOut <= 0 || !strings.HasPrefix(l.Remote, "127.0.0.1:") {
		t.Errorf("shed line: %+v", l)
	}
	s.stopAndCheck(st)
}
