//go:build unix

package goes_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
)

// TestCallbackPool runs a real worker (testdata/callbackpool, one worker,
// GOMAXPROCS=1 so that one event loop serves every connection) whose
// OnMessage blocks on connection A until connection B sends "release".
// With Goer.CallbackGoroutines, set in code or as the config's
// "callback_goroutines", the loop goes on serving B while A's callback
// waits, and A is released. The control, without a pool, shows what the
// pool is for: B is not read until A's callback gives up.
func TestCallbackPool(t *testing.T) {
	bin := proctest.Build(t, "./testdata/callbackpool")
	cases := []struct {
		name       string
		goerPool   string // POOL: Goer.CallbackGoroutines
		configPool int    // "callback_goroutines"
		blockFor   string // BLOCK_FOR: how long A's callback waits at most
		want       string // A's answer
	}{
		{name: "Goer.CallbackGoroutines", goerPool: "4", want: "released"},
		{name: "callback_goroutines", configPool: 4, want: "released"},
		{name: "no pool (control)", blockFor: "1s", want: "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", "1")
			t.Setenv("POOL", tc.goerPool)
			t.Setenv("BLOCK_FOR", tc.blockFor)
			addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
			dir := t.TempDir()
			cfg := filepath.Join(dir, "goes.json")
			conf := fmt.Sprintf(`{"listeners": [{"listen": "text://%s", "count": 1, "callback_goroutines": %d}]}`, addr, tc.configPool)
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			p := proctest.Start(t, bin, "start", "--run-dir", filepath.Join(dir, "run"), "--config", cfg)
			a := dialServing(t, p, addr)
			b := dialServing(t, p, addr)

			fmt.Fprintf(a, "block\n")
			testkit.Eventually(t, 10*time.Second, testkit.Poll, "A's callback waiting", func() error {
				if !strings.Contains(p.Output(), "callback blocking") {
					return errors.New("not yet")
				}
				return nil
			})
			fmt.Fprintf(b, "release\n")
			if got := readLine(t, a); got != tc.want {
				t.Fatalf("A got %q, want %q", got, tc.want)
			}
			if got := readLine(t, b); got != "ok" {
				t.Fatalf("B got %q, want ok", got)
			}
		})
	}
}

// lineConn is a client connection that writes lines and reads lines.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

// dialServing connects to addr once the program p serves there.
func dialServing(t *testing.T, p *proctest.Proc, addr string) *lineConn {
	t.Helper()
	var c net.Conn
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "program serving", func() error {
		if _, done := p.Wait(0); done {
			return fmt.Errorf("exited early:\n%s", p.Output())
		}
		var err error
		c, err = net.Dial("tcp", addr)
		return err
	})
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &lineConn{Conn: c, r: bufio.NewReader(c)}
}

func readLine(t *testing.T, c *lineConn) string {
	t.Helper()
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}
