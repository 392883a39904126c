//go:build unix

package goes

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func runCLI(t *testing.T, r *Runner, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	r.Stdout, r.Stderr = &out, &out
	err := r.Run(append([]string{"prog"}, args...))
	return out.String(), err
}

func TestCLIWithoutMaster(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{Goers: []*Goer{NewGoer("127.0.0.1:0", nil, "tcp")}, Version: "9.9"}
	if out, err := runCLI(t, r, "--version"); err != nil || !strings.Contains(out, "9.9") {
		t.Fatalf("--version: %q, %v", out, err)
	}
	for _, verb := range []string{"status", "stop", "reload", "connections"} {
		t.Run(verb, func(t *testing.T) {
			_, err := runCLI(t, r, verb, "--run-dir", dir)
			if !errors.Is(err, ErrNotRunning) {
				t.Fatalf("err = %v, want ErrNotRunning", err)
			}
		})
	}
	// restart of a stopped program is a start; a bad Goer fails it clearly.
	bad := &Runner{Goers: []*Goer{{Addr: "x", Transport: "carrier-pigeon"}}}
	if _, err := runCLI(t, bad, "restart", "--run-dir", dir); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("restart with a bad Goer: %v", err)
	}
}
