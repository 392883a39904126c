//go:build unix

// Package browsertest runs headless Chromium on pages served on loopback,
// for the tests that need a real browser (WebSocket, EventSource). Two
// ways: Run loads a page that reports what it saw by a request that the
// test's server turns into a value on a channel; Start drives the browser
// over its DevTools protocol, for tests that act in several pages as a
// person would and take screenshots (Browser, Page).
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Path finds Chromium: Debian's chromium, or a Chrome.
func Path() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found (apt-get install -y chromium)")
}

// Run loads url in headless Chromium and returns the first result the page
// posts on results, within timeout. The test's server sets served when it
// hands out the page: a browser that dies before that (a crash while
// starting) is started again, three times at most; any other failure fails
// t. The browser and its whole process group are killed before Run
// returns.
func Run(t testing.TB, url string, served *atomic.Bool, results <-chan []byte, timeout time.Duration) []byte {
	t.Helper()
	return RunWith(t, url, served, results, timeout)
}

// RunWith is Run with more command-line flags for Chromium (e.g.
// --ignore-certificate-errors, for a server with a self-signed
// certificate).
func RunWith(t testing.TB, url string, served *atomic.Bool, results <-chan []byte, timeout time.Duration, flags ...string) []byte {
	t.Helper()
	bin, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		raw, crashed := run(t, bin, url, served, results, timeout, flags)
		if !crashed {
			return raw
		}
		if attempt == 3 {
			t.Fatal("chromium crashed on start 3 times")
		}
	}
}

// run is one attempt of Run; crashed reports a browser that died before
// asking for the page.
func run(t testing.TB, bin, url string, served *atomic.Bool, results <-chan []byte, timeout time.Duration, flags []string) (raw []byte, crashed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-crash-reporter", "--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.Command(bin, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	select {
	case raw = <-results:
		return raw, false
	case err := <-exited:
		exited <- err
		if !served.Load() {
			t.Logf("chromium died before loading the page: %v\n%s", err, stderr.String())
			return nil, true
		}
		t.Fatalf("chromium exited before reporting: %v\n%s", err, stderr.String())
	case <-ctx.Done():
		t.Fatalf("no result from chromium within %v\n%s", timeout, stderr.String())
	}
	return nil, false
}
