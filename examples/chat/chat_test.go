//go:build unix

package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/browsertest"
	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// chatPage is one browser window on the chat page.
type chatPage struct {
	t    *testing.T
	name string
	p    *browsertest.Page
}

// get evaluates expr in the page and decodes its value into out.
func (c *chatPage) get(expr string, out any) error { return c.p.Eval(expr, out) }

// waitFor polls until expr's value, as JSON, is want's.
func (c *chatPage) waitFor(what, expr string, want any) {
	c.t.Helper()
	w, _ := json.Marshal(want)
	testkit.Eventually(c.t, testkit.Wait, 20*time.Millisecond, c.name+": "+what, func() error {
		var got string
		if err := c.get("JSON.stringify("+expr+")", &got); err != nil {
			return err
		}
		if got != string(w) {
			return fmt.Errorf("%s, want %s", got, w)
		}
		return nil
	})
}

// do runs a statement in the page, as a person's typing and clicking
// would: it fills in a form and submits it through the page's handler.
func (c *chatPage) do(stmt string) {
	c.t.Helper()
	if err := c.get("(() => { "+stmt+" })()", nil); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
}

func (c *chatPage) join(nick, room string) {
	c.do(fmt.Sprintf(`document.getElementById("nick").value = %q; document.getElementById("roomname").value = %q;
		document.getElementById("join").requestSubmit();`, nick, room))
}

func (c *chatPage) say(text string) {
	c.do(fmt.Sprintf(`document.getElementById("text").value = %q; document.getElementById("say").requestSubmit();`, text))
}

const (
	onlineJS = `[...document.querySelectorAll("#online li")].map(li => li.dataset.nick)`
	logJS    = `[...document.querySelectorAll("#log li")].map(li => li.textContent)`
	workerJS = `document.body.dataset.worker ?? ""`
)

// worker waits until the page is connected and returns the chat worker it
// is connected to (Goer.WorkerID, which the server tells the page).
func (c *chatPage) worker() int {
	c.t.Helper()
	var w string
	testkit.Eventually(c.t, testkit.Wait, 20*time.Millisecond, c.name+" connected", func() error {
		if err := c.get(workerJS, &w); err != nil {
			return err
		}
		if w == "" {
			return errors.New("no welcome yet")
		}
		return nil
	})
	n, err := strconv.Atoi(w)
	if err != nil {
		c.t.Fatalf("%s: worker %q", c.name, w)
	}
	return n
}

// log is what the page shows in its message list.
func (c *chatPage) log() []string {
	c.t.Helper()
	var l []string
	if err := c.get(logJS, &l); err != nil {
		c.t.Fatal(err)
	}
	return l
}

// TestChat is the chat example in headless Chromium: two windows on
// different worker processes join one room, see each other online,
// exchange messages that arrive in order, and one sees the other leave
// when its window closes; the server side of the window that stays is
// then killed and its page reconnects to the room by itself. The screenshot
// of the two windows talking (README) is written to $CHAT_SCREENSHOT, else
// into the test's temporary directory.
func TestChat(t *testing.T) {
	bin := proctest.Build(t, ".")
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	web, ws := proctest.FreePort(t), proctest.FreePort(t)
	for ws == web {
		ws = proctest.FreePort(t)
	}
	conf := filepath.Join(dir, "chat.json")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `{"listeners": [{"listen": "http://127.0.0.1:%d"}, {"listen": "websocket://127.0.0.1:%d"}]}`, web, ws), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := proctest.Run(t, bin, "start", "-d", "--run-dir", runDir, "--config", conf); res.Code != 0 {
		t.Fatalf("start -d: %s", res)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(runDir, "goes.log")); err == nil {
				t.Logf("goes.log:\n%s", b)
			}
		}
		proctest.Run(t, bin, "stop", "--run-dir", runDir)
	})
	var st ipc.Status
	if err := json.Unmarshal([]byte(proctest.Run(t, bin, "status", "--json", "--run-dir", runDir).Stdout), &st); err != nil {
		t.Fatal(err)
	}
	checkTitles(t, st, fmt.Sprintf("websocket://127.0.0.1:%d", ws))

	b := browsertest.Start(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", web)
	open := func(name string) *chatPage {
		t.Helper()
		p, err := b.Open(url, 460, 380)
		if err != nil {
			t.Fatal(err)
		}
		return &chatPage{t: t, name: name, p: p}
	}
	alice := open("alice")
	aw := alice.worker()
	// The kernel hands a connection to whichever worker waits first: open
	// windows until one is on the other worker.
	var bob *chatPage
	for tries := 1; ; tries++ {
		bob = open("bob")
		if bw := bob.worker(); bw != aw {
			t.Logf("alice on chat worker %d, bob on %d (window %d)", aw, bw, tries)
			break
		}
		if tries == 50 {
			t.Fatalf("50 windows all on worker %d", aw)
		}
		bob.p.Close()
	}

	alice.join("alice", "lobby")
	alice.waitFor("alone in the lobby", onlineJS, []string{"alice"})
	bob.join("bob", "lobby")
	for _, c := range []*chatPage{alice, bob} {
		c.waitFor("both online", onlineJS, []string{"alice", "bob"})
	}
	alice.waitFor("bob's arrival", `document.querySelector("#log li:last-child").textContent`, "bob joined")

	said := []string{"hello bob", "one", "two", "three", "from worker " + strconv.Itoa(aw)}
	for _, s := range said {
		alice.say(s)
	}
	bob.say("hi alice, this is worker " + strconv.Itoa(bob.worker()))
	var want []string
	for _, s := range said {
		want = append(want, "alice: "+s)
	}
	for _, c := range []*chatPage{alice, bob} {
		c.waitFor("alice's messages in order", logJS+`.filter(l => l.startsWith("alice: "))`, want)
		c.waitFor("bob's message", logJS+`.filter(l => l.startsWith("bob: "))`, []string{"bob: hi alice, this is worker " + strconv.Itoa(bob.worker())})
	}

	shot := screenshot(t, alice, bob)
	out := os.Getenv("CHAT_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "chat.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the two windows: %s (%d bytes)", out, len(shot))

	// Bob closes his window: alice sees him leave.
	if err := bob.p.Close(); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("bob gone", onlineJS, []string{"alice"})
	if l := alice.log(); !slices.Contains(l, "bob left") {
		t.Fatalf("alice's log has no leave notice: %q", l)
	}

	// Alice's worker dies: her page reconnects and is back in the room.
	pid := 0
	for _, w := range st.Workers {
		if w.Name == "chat" && w.Index == aw {
			pid = w.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no chat worker %d in status: %+v", aw, st.Workers)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("reconnected", `document.body.dataset.connects`, "2")
	alice.waitFor("back in the lobby", logJS+`.filter(l => l.startsWith("you joined #lobby"))`, []string{"you joined #lobby (1 online)", "you joined #lobby (1 online)"})
	alice.waitFor("alone online", onlineJS, []string{"alice"})
	alice.say("still here")
	alice.waitFor("a message after the reconnection", `document.querySelector("#log li:last-child").textContent`, "alice: still here")
}

// screenshot is the two windows side by side.
func screenshot(t *testing.T, pages ...*chatPage) []byte {
	t.Helper()
	var pngs [][]byte
	for _, c := range pages {
		b, err := c.p.Screenshot()
		if err != nil {
			t.Fatal(err)
		}
		pngs = append(pngs, b)
	}
	shot, err := browsertest.SideBySide(12, pngs...)
	if err != nil {
		t.Fatal(err)
	}
	return shot
}

// checkTitles: ps names the chat program's workers by listener and id.
func checkTitles(t *testing.T, st ipc.Status, chatURI string) {
	t.Helper()
	n := 0
	for _, w := range st.Workers {
		argv, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", w.PID))
		if errors.Is(err, os.ErrNotExist) {
			return // no /proc here
		}
		title, _, _ := strings.Cut(string(argv), "\x00")
		if w.Name == "chat" {
			n++
			if want := fmt.Sprintf("chat: worker %d [chat] %s", w.ID, chatURI); title != want {
				t.Errorf("worker %d: title %q, want %q", w.ID, title, want)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d chat workers, want 2: %+v", n, st.Workers)
	}
}
