package goes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rootBudget is how many lines the root package's non-test files may
// hold together (issue 19: the root is the facade).
const rootBudget = 1500

// TestFacadeBudget keeps the root package the user's API: Goer, Runner
// and RunAll, Config, the cluster calls and their docs. Its non-test Go
// files, of every platform, hold at most rootBudget lines; what is not
// user API belongs below it: a CLI verb's plumbing and the master's
// start-up in internal/ctl, the worker process's start-up in worker/
// (worker.Serve), the TLS configuration in internal/tlsconf. Counted as
// `ls *.go | grep -v _test | xargs wc -l` counts them.
func TestFacadeBudget(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	var per []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := bytes.Count(b, []byte("\n"))
		total += n
		per = append(per, fmt.Sprintf("%s %d", f, n))
	}
	if !slices.Contains(files, "goer.go") || len(per) < 5 {
		t.Fatalf("found %q: not the root package's files", files)
	}
	if total > rootBudget {
		t.Errorf("the root package's non-test code is %d lines, over its budget of %d (%s): move what is not user API "+
			"into internal/ctl (verbs, the master's start-up), worker/ (the worker's start-up) or another internal package; "+
			"keep the public API's docs whole", total, rootBudget, strings.Join(per, ", "))
	}
}

// fileBudget is how many lines one non-test file under connections/ or
// master/ may hold (issue 19): a file that grows past it holds two
// concerns; split it along them.
const fileBudget = 700

// TestFileBudget: no non-test Go file under connections/ or master/ is
// over fileBudget lines.
func TestFileBudget(t *testing.T) {
	seen := 0
	for _, dir := range []string{"connections", "master"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			seen++
			if n := bytes.Count(b, []byte("\n")); n > fileBudget {
				t.Errorf("%s is %d lines, over %d: split it along its concerns", path, n, fileBudget)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen < 40 {
		t.Fatalf("read %d files under connections/ and master/: not the module's root?", seen)
	}
}
