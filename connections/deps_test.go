package connections_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDependsOnInterfacesOnly keeps the layers apart: the runtime knows
// protocols through package protocols alone, never a concrete one
// (text, frame, http, websocket: those are mapped by goes.NewClient one
// level up), and nothing of the application above it; below it, only
// the io_uring system calls (internal/uring). It asks the go tool for the
// packages connections is built from.
func TestDependsOnInterfacesOnly(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const (
		module = "github.com/goes-project/goes"
		self   = module + "/connections"
	)
	allowed := map[string]bool{module + "/protocols": true, module + "/timer": true, module + "/internal/uring": true}
	var saw []string
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != module && !strings.HasPrefix(pkg, module+"/") {
			continue // the standard library and third parties
		}
		saw = append(saw, pkg)
		if pkg == self || strings.HasPrefix(pkg, self+"/") || allowed[pkg] {
			continue
		}
		t.Errorf("connections depends on %s: the runtime may use %s/protocols (the interfaces), %s/timer and %s/internal/uring only", pkg, module, module, module)
	}
	if !strings.Contains(strings.Join(saw, " "), self) || !strings.Contains(strings.Join(saw, " "), module+"/protocols") {
		t.Fatalf("go list -deps named %q: not the package list this test expects", saw)
	}
}
