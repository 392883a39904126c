package connections_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// goList runs the go tool's list with args in this package's directory.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return string(out)
}

// TestDependsOnInterfacesOnly keeps the layers apart: the runtime and
// every package under it (the engines') know protocols through package
// protocols alone, never a concrete one (text, frame, http, websocket:
// those are mapped by goes.NewClient one level up), and nothing of the
// application above it; below it, only the io_uring system calls
// (internal/uring). It asks the go tool for the packages connections/...
// are built from.
func TestDependsOnInterfacesOnly(t *testing.T) {
	out := goList(t, "-deps", "-f", "{{.ImportPath}}", "./...")
	const (
		module = "github.com/goes-project/goes"
		self   = module + "/connections"
	)
	allowed := map[string]bool{module + "/protocols": true, module + "/timer": true, module + "/internal/uring": true}
	var saw []string
	for _, pkg := range strings.Fields(out) {
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

// TestNoPollingCallsAtTheTop keeps the engines below the public API: the
// package connections makes no epoll or io_uring call of its own; the
// epoll engine's system calls, poller and io_uring send batch live in
// connections/internal/epoll. It checks the package's own imports (not
// its dependencies') and the identifiers its non-test files use.
func TestNoPollingCallsAtTheTop(t *testing.T) {
	const uring = "github.com/goes-project/goes/internal/uring"
	imports := strings.Fields(goList(t, "-f", "{{join .Imports \" \"}}", "."))
	if len(imports) == 0 {
		t.Fatal("go list named no imports: not the answer this test expects")
	}
	for _, pkg := range imports {
		if pkg == uring {
			t.Errorf("connections imports %s: io_uring belongs to an engine's package", uring)
		}
	}
	files := strings.Fields(goList(t, "-f", "{{join .GoFiles \" \"}}", "."))
	if len(files) < 10 {
		t.Fatalf("go list named %d Go files: not the answer this test expects", len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{"unix.Epoll", "unix.EPOLL", "SYS_EPOLL", "IO_URING", "uring.Ring", "uring.Op", "uring.New"} {
			if strings.Contains(string(src), call) {
				t.Errorf("%s uses %s: epoll and io_uring calls belong to an engine's package (connections/internal/epoll)", f, call)
			}
		}
	}
}

// TestCoreKnowsNoEngine keeps connections/internal/core below every
// engine: the core and the contract import no engine package, no kernel
// interface (connections/internal/epoll, internal/uring) and nothing of
// the module but package protocols and the timer wheel, so that an
// engine in a package of its own can import the core and the core never
// depends on an engine. It asks the go tool for the packages
// internal/core is built from.
func TestCoreKnowsNoEngine(t *testing.T) {
	const (
		module = "github.com/goes-project/goes"
		core   = module + "/connections/internal/core"
	)
	allowed := map[string]bool{core: true, module + "/protocols": true, module + "/timer": true}
	deps := strings.Fields(goList(t, "-deps", "-f", "{{.ImportPath}}", "./internal/core"))
	if !slices.Contains(deps, core) {
		t.Fatalf("go list -deps named %q: not the package list this test expects", deps)
	}
	for _, pkg := range deps {
		if (pkg == module || strings.HasPrefix(pkg, module+"/")) && !allowed[pkg] {
			t.Errorf("connections/internal/core depends on %s: the core may use %s/protocols and %s/timer only, never an engine or a kernel interface", pkg, module, module)
		}
	}
}

// enginePackages are the engines' packages: each is imported by the
// package connections alone (its engine table, engine.go and
// engine_linux.go), never by another engine, the core or anything else
// of the module, so that nothing outside an engine's package can name
// its types (the compiler keeps them there) and every engine is reached
// through core.Engine and core.Ops.
var enginePackages = []string{
	"github.com/goes-project/goes/connections/internal/std",
	"github.com/goes-project/goes/connections/internal/epoll",
}

// TestEnginesImportedByConnectionsOnly asks the go tool for the imports
// of every package of the module (their non-test files, for this
// platform) and checks that only the package connections imports an
// engine's package.
func TestEnginesImportedByConnectionsOnly(t *testing.T) {
	const self = "github.com/goes-project/goes/connections"
	out := goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/goes-project/goes/...")
	importers := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, imp := range f[1:] {
			importers[imp] = append(importers[imp], f[0])
		}
	}
	if !slices.Contains(importers[enginePackages[0]], self) {
		t.Fatalf("go list says %s is imported by %v: not the answer this test expects", enginePackages[0], importers[enginePackages[0]])
	}
	for _, eng := range enginePackages {
		for _, by := range importers[eng] {
			if by != self {
				t.Errorf("%s imports %s: an engine's package is imported by %s alone (its engine table); go through core.Engine and core.Ops", by, eng, self)
			}
		}
	}
}
