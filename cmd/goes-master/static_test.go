//go:build unix

package main_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticFiles: goes-master's "static" handler serves a directory over
// HTTP to curl (index.html for /, a range, 304, 404 for what is missing or
// outside the root), and a download in progress when the binary reloads
// finishes whole from its draining old worker while new requests reach the
// new generation.
func TestStaticFiles(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (the CI image installs it): %v", err)
	}
	root := t.TempDir()
	big := make([]byte, 24<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	files := map[string][]byte{
		"index.html":   []byte("<h1>goes</h1>\n"),
		"big.bin":      big,
		"sub/note.txt": []byte("a note\n"),
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newSetup(t, "30s")
	conf := fmt.Sprintf(`{"log_level": "debug", "listeners": [
  {"name": "files", "listen": "http://127.0.0.1:0", "count": 2, "handler": "static", "root": %q}
]}`, root)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	st := s.start()
	base := "http://" + listenAddrs(t, st)["files"]
	get := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "20", "--noproxy", "*"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %q: %v", args, err)
		}
		return string(out)
	}
	if out := get(base + "/"); out != string(files["index.html"]) {
		t.Fatalf("/: %q", out)
	}
	if out := get("-r", "100-199", base+"/big.bin"); out != string(big[100:200]) {
		t.Fatalf("range: %d bytes", len(out))
	}
	// -z with a file sends its modification time: the same file's.
	if out := get("-o", "/dev/null", "-w", "%{http_code}", "-z", filepath.Join(root, "sub", "note.txt"), base+"/sub/note.txt"); out != "304" {
		t.Fatalf("If-Modified-Since its own time: %s", out)
	}
	for _, p := range []string{"/missing", "/sub/", "/../../../etc/passwd"} {
		if out := get("--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", base+p); out != "404" {
			t.Fatalf("%s: %s, want 404", p, out)
		}
	}

	// A slow download across a reload.
	want := sha256.Sum256(big)
	dl := exec.Command(curl, "-sS", "--max-time", "60", "--noproxy", "*", "--limit-rate", "4M", base+"/big.bin")
	var body, stderr bytes.Buffer
	dl.Stdout, dl.Stderr = &body, &stderr
	if err := dl.Start(); err != nil {
		t.Fatal(err)
	}
	dlDone := make(chan error, 1)
	go func() { dlDone <- dl.Wait() }()
	res := s.mustCLI("reload")
	if !strings.Contains(res.Stdout, "generation 2") {
		t.Fatalf("reload: %s", res)
	}
	if out := get(base + "/sub/note.txt"); out != string(files["sub/note.txt"]) {
		t.Fatalf("after reload: %q", out)
	}
	select {
	case <-dlDone:
		t.Fatal("the download ended before the reload did: the test proves nothing")
	default:
	}
	if err := <-dlDone; err != nil {
		t.Fatalf("download across the reload: %v: %s", err, stderr.String())
	}
	if got := sha256.Sum256(body.Bytes()); got != want {
		t.Fatalf("download across the reload: %d bytes, sha256 differs", body.Len())
	}
	st2, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	st2.Workers = append(st2.Workers, st.Workers...)
	s.stopAndCheck(st2)
}
