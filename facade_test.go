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
