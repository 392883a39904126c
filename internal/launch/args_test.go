package launch

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAbsArgs(t *testing.T) {
	got, err := AbsArgs([]string{"start", "-d", "--config", "goes.json", "-c=other.json", "--run-dir", "rel"}, "/abs/run")
	if err != nil {
		t.Fatal(err)
	}
	cfg1, _ := filepath.Abs("goes.json")
	cfg2, _ := filepath.Abs("other.json")
	want := []string{"start", "-d", "--config=" + cfg1, "--config=" + cfg2, "--run-dir=/abs/run"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
