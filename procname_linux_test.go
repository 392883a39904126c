package goes

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/protocols/websocket"
)

func TestWorkerComm(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int
		g    *Goer
		want string
	}{
		{name: "named", id: 3, g: &Goer{Name: "web"}, want: "goes: w3 web"},
		{name: "cut to 15 bytes", id: 12, g: &Goer{Name: "websocket-echo"}, want: "goes: w12 webso"},
		{name: "cut on a rune", id: 1, g: &Goer{Name: "büro-über"}, want: "goes: w1 büro-"},
		{name: "protocol", id: 0, g: NewGoer("127.0.0.1:0", websocket.New(), "tcp"), want: "goes: w0 websoc"},
		{name: "raw: transport", id: 0, g: NewGoer("127.0.0.1:0", nil, "udp"), want: "goes: w0 udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := workerComm(tc.id, tc.g)
			if got != tc.want || len(got) > launch.CommMax || !utf8.ValidString(got) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSetComm names the test process and every thread it has, then puts
// the name back.
func TestSetComm(t *testing.T) {
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	old := read("/proc/self/comm")
	t.Cleanup(func() { launch.SetComm(old) })
	if err := launch.SetComm("goes: w9 test"); err != nil {
		t.Fatal(err)
	}
	if got := read("/proc/self/comm"); got != "goes: w9 test" {
		t.Fatalf("comm %q", got)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, task := range tasks {
		if b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/comm"); err == nil && string(b) == "goes: w9 test\n" {
			named++
		}
	}
	if named < 2 {
		t.Errorf("%d of %d threads named", named, len(tasks))
	}
}
