//go:build linux

package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerfile builds deploy/Containerfile with buildah (in its own
// storage under TempDir, no image pulled: the context is the static
// goes-master alone) and checks the image: the binary as its entrypoint,
// a non-root user, the config and run directory in the environment,
// SIGQUIT to stop. It skips where buildah is not installed. Running the
// image needs a host that lets the container runtime set rlimits, which
// this sandbox refuses (deploy/README.md, "Container").
func TestContainerfile(t *testing.T) {
	buildah, err := exec.LookPath("buildah")
	if err != nil {
		t.Skip("buildah is not installed (apt-get install buildah; .ci/run does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("buildah here runs as root (no rootless setup)")
	}
	dir := t.TempDir()
	ctx := filepath.Join(dir, "context")
	if err := os.MkdirAll(filepath.Join(ctx, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(ctx, "goes-master"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	store := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "runroot"), "--storage-driver", "vfs"}
	buildah1 := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(buildah, append(append([]string{}, store...), args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	abs, err := filepath.Abs("../../deploy/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	buildah1("bud", "--isolation=chroot", "-f", abs, "-t", "goes-master-test", ctx)
	t.Cleanup(func() {
		exec.Command(buildah, append(append([]string{}, store...), "rmi", "--all", "--force")...).Run()
	})
	var img struct {
		OCIv1 struct {
			Config struct {
				User       string   `json:"User"`
				Entrypoint []string `json:"Entrypoint"`
				Cmd        []string `json:"Cmd"`
				Env        []string `json:"Env"`
				StopSignal string   `json:"StopSignal"`
			} `json:"config"`
		} `json:"OCIv1"`
		Size int64 `json:"Size"`
	}
	if err := json.Unmarshal([]byte(buildah1("inspect", "--type", "image", "goes-master-test")), &img); err != nil {
		t.Fatal(err)
	}
	c := img.OCIv1.Config
	env := strings.Join(c.Env, " ")
	if c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/goes-master" || strings.Join(c.Cmd, " ") != "start" ||
		!strings.Contains(env, "GOES_CONFIG=/etc/goes/goes.json") || !strings.Contains(env, "GOES_RUN_DIR=/run/goes") || c.StopSignal != "SIGQUIT" {
		t.Fatalf("image config: %+v", c)
	}
	t.Logf("image: user %s, entrypoint %v, env %v", c.User, c.Entrypoint, c.Env)
}
