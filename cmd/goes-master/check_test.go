//go:build unix

package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// TestCheck: `check` validates a config as start would, starting
// nothing: it names the field or the file at fault and exits non-zero,
// and says ok of a good one.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testkit.CertPEM(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open-token")
	if err := os.WriteFile(open, []byte("t0ken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644) // whatever the umask
	empty := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	listen := func(l string) string {
		return fmt.Sprintf(`{"admin": "127.0.0.1:0", "admin_token_file": %q, "listeners": [%s]}`, token, l)
	}
	for _, tc := range []struct {
		name, conf string
		want       string // in stderr; "" for a good config
	}{
		{"good", listen(fmt.Sprintf(`{"listen": "tls://127.0.0.1:0", "cert_file": %q, "key_file": %q}, {"listen": "http://127.0.0.1:0", "handler": "hello"}`, cert, key)), ""},
		{"unknown field", `{"listeners": [{"listen": "text://127.0.0.1:0", "handlr": "echo"}]}`, `unknown field "handlr"`},
		{"missing certificate", listen(fmt.Sprintf(`{"listen": "tls://127.0.0.1:0", "cert_file": %q, "key_file": %q}`, missing, key)), missing},
		{"good https and wss", listen(fmt.Sprintf(`{"listen": "https://127.0.0.1:0", "handler": "hello", "min_tls_version": "1.3", "client_ca_file": %q, "certificates": [{"cert_file": %q, "key_file": %q}], "tls_handshake_timeout": "5s", "max_tls_handshakes": 64}, {"listen": "wss://127.0.0.1:0", "cert_file": %q, "key_file": %q, "max_tls_handshakes": -1}`, cert, cert, key, cert, key)), ""},
		{"tls handshake timeout off", listen(fmt.Sprintf(`{"listen": "https://127.0.0.1:0", "cert_file": %q, "key_file": %q, "tls_handshake_timeout": "off"}`, cert, key)), "tls_handshake_timeout cannot be off"},
		{"bad max tls handshakes", listen(fmt.Sprintf(`{"listen": "wss://127.0.0.1:0", "cert_file": %q, "key_file": %q, "max_tls_handshakes": -2}`, cert, key)), "max_tls_handshakes -2: want 1 to"},
		{"tls limits on http", listen(`{"listen": "http://127.0.0.1:0", "tls_handshake_timeout": "5s"}`), "tls_handshake_timeout and max_tls_handshakes are for TLS listeners"},
		{"missing sni certificate", listen(fmt.Sprintf(`{"listen": "https://127.0.0.1:0", "cert_file": %q, "key_file": %q, "certificates": [{"cert_file": %q, "key_file": %q}]}`, cert, key, missing, key)), missing},
		{"missing client ca", listen(fmt.Sprintf(`{"listen": "wss://127.0.0.1:0", "cert_file": %q, "key_file": %q, "client_ca_file": %q}`, cert, key, missing)), "client_ca_file " + missing},
		{"bad min tls version", listen(fmt.Sprintf(`{"listen": "https://127.0.0.1:0", "cert_file": %q, "key_file": %q, "min_tls_version": "1.0"}`, cert, key)), `min_tls_version "1.0"`},
		{"bad handler", listen(`{"listen": "http://127.0.0.1:0", "handler": "nothing"}`), `unknown handler "nothing"`},
		{"bad scheme", listen(`{"listen": "gopher://127.0.0.1:0"}`), `unknown scheme "gopher"`},
		{"bad duration", `{"stop_timeout": "ten", "listeners": [{"listen": "text://127.0.0.1:0"}]}`, `"ten"`},
		{"bad admin", `{"admin": "localhost", "listeners": [{"listen": "text://127.0.0.1:0"}]}`, `admin "localhost"`},
		{"world-readable token", fmt.Sprintf(`{"admin": "127.0.0.1:0", "admin_token_file": %q, "listeners": [{"listen": "text://127.0.0.1:0"}]}`, open), open + ": readable by every user"},
		{"empty token", fmt.Sprintf(`{"admin": "127.0.0.1:0", "admin_token_file": %q, "listeners": [{"listen": "text://127.0.0.1:0"}]}`, empty), empty + ": empty"},
		{"missing root", `{"listeners": [{"listen": "http://127.0.0.1:0", "handler": "static", "root": "/nonexistent/www"}]}`, "/nonexistent/www"},
		{"missing access log dir", listen(`{"listen": "http://127.0.0.1:0", "handler": "hello", "access_log": "/nonexistent/logs/access.log"}`), "access_log: stat /nonexistent/logs"},
		{"access log on text", listen(`{"listen": "text://127.0.0.1:0", "access_log": "/tmp/access.log"}`), "access_log needs an http:// or https:// listener"},
		{"bad log level", `{"log_level": "loud", "listeners": [{"listen": "text://127.0.0.1:0"}]}`, `"loud"`},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			s := newConfSetup(t, tc.conf)
			res := s.cli("check")
			if tc.want == "" {
				if res.Code != 0 || !strings.Contains(res.Stdout, "is ok") {
					t.Fatalf("check of a good config: %s", res)
				}
			} else if res.Code == 0 || !strings.Contains(res.Stderr, tc.want) || !strings.Contains(res.Stderr, s.conf) {
				t.Fatalf("check: want a failure naming %q and the config file: %s", tc.want, res)
			}
			if _, err := os.Stat(filepath.Join(s.runDir, "goes.pid")); err == nil {
				t.Fatal("check started something: a pid file")
			}
		})
	}
}

// TestReloadRefusedCounted: a reload the CLI refuses (an unknown field,
// by `check --reload` as the systemd unit's ExecReload runs it, or by
// reload --config) leaves a line in the master's log and a count in its
// metrics (goes_master_reloads_total{result="refused"}).
func TestReloadRefusedCounted(t *testing.T) {
	s := newAdminSetup(t, "5s")
	st, admin := s.startAdmin()
	good, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), `"listeners"`, `"listners": [], "listeners"`, 1)
	s.writeConf(bad)
	if res := s.cli("check", "--reload"); res.Code == 0 || !strings.Contains(res.Stderr, `unknown field "listners"`) {
		t.Fatalf("check --reload of a bad config: %s", res)
	}
	if res := s.cli("reload", "--config", s.conf); res.Code == 0 || !strings.Contains(res.Stderr, "reload refused") {
		t.Fatalf("reload --config of a bad config: %s", res)
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	if n := cur.Master.Reloads[ipc.ReloadRefused]; n != 2 || cur.Master.Generation != 1 {
		t.Fatalf("refused reloads %d (want 2), generation %d", n, cur.Master.Generation)
	}
	if v, ok := metric(mustFetch(t, admin+"/metrics"), `goes_master_reloads_total{result="refused"}`); !ok || v != 2 {
		t.Fatalf(`goes_master_reloads_total{result="refused"} = %v, %v; want 2`, v, ok)
	}
	b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"message":"reload refused"`); n != 2 || !strings.Contains(string(b), `unknown field \"listners\"`) {
		t.Fatalf("%d reload refused lines in the log (want 2, naming the field):\n%s", n, b)
	}
	s.writeConf(string(good))
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}

// TestAdminTokenPrometheus: with admin_token_file, a real Prometheus
// configured with the token (authorization: credentials_file) scrapes the
// admin endpoint, while curl-like clients without it get 401 everywhere
// but the probes; a token file others can read refuses the start, naming
// the file.
func TestAdminTokenPrometheus(t *testing.T) {
	s := newAdminSetup(t, "5s")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	const token = "prom-scrape-9f2c"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tokenFile, 0o644)
	b, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConf(strings.Replace(string(b), `"admin":`, fmt.Sprintf(`"admin_token_file": %q, "admin":`, tokenFile), 1))
	if res := s.cli("start", "-d"); res.Code == 0 || !strings.Contains(res.Stderr, tokenFile) {
		t.Fatalf("start with a world-readable token file: %s", res)
	}
	os.Chmod(tokenFile, 0o600)
	st, admin := s.startAdmin()

	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap?worker=0", "/"} {
		code, body, err := fetch(admin + path)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d %v %.100s; want 401", path, code, err, body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body, err := fetch(admin + path); err != nil || code != 200 {
			t.Errorf("GET %s without the token: %d %v %.100s; want 200", path, code, err, body)
		}
	}
	prom := startPrometheus(t, strings.TrimPrefix(admin, "http://"), fmt.Sprintf(`    authorization:
      type: Bearer
      credentials_file: %q
`, tokenFile))
	testkit.Eventually(t, 30*time.Second, testkit.Poll, "prometheus scrapes with the token", func() error {
		up, ok, err := prom.query(`up{job="goes"}`)
		if err != nil || !ok || up != 1 {
			return fmt.Errorf("up = %v (%v, %v)", up, ok, err)
		}
		gen, ok, err := prom.query(`goes_master_generation`)
		if err != nil || !ok || gen != 1 {
			return fmt.Errorf("goes_master_generation = %v (%v, %v)", gen, ok, err)
		}
		return nil
	})
	// A new token takes effect with a reload (the new master reads the
	// file); the old one is refused from then on.
	const token2 = "prom-scrape-rotated"
	if err := os.WriteFile(tokenFile, []byte(token2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("reload")
	// Right after a reload a scrape may fail (500) until the new master
	// has the previous generation's totals (errPreviousUnknown: a scrape
	// without them would read as a counter reset); the token is checked
	// before that, so 401 and 200 are the only settled answers.
	for tok, want := range map[string]int{token: 401, token2: 200} {
		testkit.Eventually(t, 30*time.Second, testkit.Poll, "after the reload, token "+tok, func() error {
			req, _ := http.NewRequest("GET", admin+"/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == want:
				return nil
			case resp.StatusCode == http.StatusInternalServerError && strings.Contains(string(body), "not known yet"):
				return fmt.Errorf("%d %.100s", resp.StatusCode, body)
			}
			t.Fatalf("after the reload, token %q: %d %.100s, want %d", tok, resp.StatusCode, body, want)
			return nil
		})
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}

// TestJournalPriorities: a foreground master whose stdout and stderr are
// the journal stream systemd names in JOURNAL_STREAM (here a file, whose
// device and inode the variable names) writes JSON lines only, each
// prefixed with the syslog priority of its level (<7> debug, <6> info,
// <4> warn, <3> error), workers' lines included, and no plain-text line
// ("… Ctrl-C stops it").
func TestJournalPriorities(t *testing.T) {
	s := newSetup(t, "10s")
	out, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(out.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "start", "--run-dir", s.runDir, "--config", s.conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "foreground master serving", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		if cur.Master.State != "running" {
			return fmt.Errorf("master is %s", cur.Master.State)
		}
		return nil
	})
	s.mustCLI("stop")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("foreground master: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("foreground master did not stop")
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	prio := map[string]string{"debug": "<7>", "info": "<6>", "warn": "<4>", "error": "<3>"}
	seen := map[string]int{}
	roles := map[string]int{}
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		var e struct{ Level, Role string }
		if len(line) < 3 || json.Unmarshal([]byte(line[3:]), &e) != nil || prio[e.Level] != line[:3] {
			t.Errorf("not a JSON line with the priority of its level: %q", line)
			continue
		}
		seen[e.Level]++
		roles[e.Role]++
	}
	if seen["info"] == 0 || seen["debug"] == 0 || roles["worker"] == 0 || roles["master"] == 0 {
		t.Errorf("levels %v, roles %v: want info and debug lines of the master and of workers\n%s", seen, roles, b)
	}
}

// TestBadInputLogRateLimited: 200 malformed HTTP requests, each on its
// own connection, write at most 20 log lines (the first at once with its
// peer, then a count per interval, as the timeouts), while the workers'
// bad_input counts all 200. The old code wrote a line per connection.
func TestBadInputLogRateLimited(t *testing.T) {
	s := newConfSetup(t, `{"log_level": "info", "listeners": [
    {"name": "web", "listen": "http://127.0.0.1:0", "count": 2, "handler": "hello"}]}`)
	st := s.start()
	addr := s.httpAddr
	for i := range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "NOT HTTP %d\x00\r\n\r\n", i)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(c) // the 400, then the close
		c.Close()
	}
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "200 bad inputs counted", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		var n uint64
		for _, w := range cur.Workers {
			n += w.BadInput
		}
		if n != 200 {
			return fmt.Errorf("%d bad inputs counted", n)
		}
		return nil
	})
	b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(b), "bad input")
	t.Logf("200 malformed requests: %d log lines about bad input", n)
	if n == 0 || n > 20 {
		t.Fatalf("%d log lines about bad input, want 1 to 20:\n%s", n, b)
	}
	s.stopAndCheck(st)
}

// TestProfileRates: block_profile_rate and mutex_profile_fraction turn
// on the block and mutex profiles of the master and of the workers (they
// were always empty); ?worker= of no worker answers 404.
func TestProfileRates(t *testing.T) {
	s := newConfSetup(t, `{"log_level": "info", "admin": "127.0.0.1:0", "block_profile_rate": 1, "mutex_profile_fraction": 1,
  "listeners": [{"name": "web", "listen": "http://127.0.0.1:0", "count": 1, "handler": "hello"}]}`)
	st, admin := s.startAdmin()
	for _, q := range []string{"/debug/pprof/block?debug=1", "/debug/pprof/block?worker=0&debug=1"} {
		testkit.Eventually(t, 20*time.Second, testkit.Poll, q+" has samples", func() error {
			if err := httpGet(s.httpAddr); err != nil {
				return err
			}
			b := mustFetch(t, admin+q)
			if !strings.Contains(string(b), " @ 0x") {
				return fmt.Errorf("no sample in %.300s", b)
			}
			return nil
		})
	}
	if code, b, err := fetch(admin + "/debug/pprof/heap?worker=99"); err != nil || code != 404 {
		t.Errorf("heap of worker 99: %d %v %.200s; want 404", code, err, b)
	}
	s.stopAndCheck(st)
}
