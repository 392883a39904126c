//go:build unix

package goes_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// TestWorkerOutputIsJSON: a daemon's log file stays JSON lines whatever
// its workers write: the master copies their output, wrapping plain lines
// (a print, a panic's trace) into "worker output" entries. A send that the
// protocol cannot encode is logged at debug level.
func TestWorkerOutputIsJSON(t *testing.T) {
	bin := proctest.Build(t, "./testdata/output")
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	conf := filepath.Join(dir, "goes.json")
	if err := os.WriteFile(conf, []byte(`{"log_level": "debug", "stop_timeout": "5s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) proctest.Result {
		t.Helper()
		res := proctest.Run(t, bin, append(args, "--run-dir", runDir, "--config", conf)...)
		if res.Code != 0 {
			t.Fatalf("%v: %s", args, res)
		}
		return res
	}
	logPath := filepath.Join(runDir, "goes.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("goes.log:\n%s", b)
		}
	})
	cli("start", "-d")
	var st ipc.Status
	if err := json.Unmarshal([]byte(cli("status", "--json").Stdout), &st); err != nil {
		t.Fatal(err)
	}
	addr := map[string]string{}
	for _, w := range st.Workers {
		_, addr[w.Name], _ = strings.Cut(w.Listen, "://")
	}
	c, err := net.Dial("tcp", addr["text"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "print plain words\n")
	if got, err := r.ReadString('\n'); err != nil || got != "printed\n" {
		t.Fatalf("print: %q, %v", got, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr["ws"]+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}

	fmt.Fprintf(c, "crash\n")
	entries := func() []map[string]any {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("goes.log line %d is not JSON: %q", i+1, line)
			}
			out = append(out, v)
		}
		return out
	}
	find := func(es []map[string]any, level, msg, field, prefix string) bool {
		for _, e := range es {
			if e["level"] == level && e["message"] == msg {
				if s, _ := e[field].(string); strings.HasPrefix(s, prefix) {
					return true
				}
			}
		}
		return false
	}
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the log says it all, in JSON", func() error {
		es := entries()
		switch {
		case !find(es, "warn", "worker output", "line", "plain words"):
			return fmt.Errorf("no wrapped print")
		case !find(es, "error", "worker output", "line", "panic: deliberate crash"):
			return fmt.Errorf("no wrapped panic")
		case !find(es, "debug", "send dropped: the protocol cannot encode it", "error", "websocket: send text"):
			return fmt.Errorf("no line about the send that could not be encoded")
		case !find(es, "warn", "worker exited, restarting", "exit", "exit status 2"):
			return fmt.Errorf("crashed worker not restarted")
		}
		return nil
	})
	ws.CloseNow()
	cli("stop")
}
