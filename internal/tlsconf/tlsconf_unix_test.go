//go:build unix

package tlsconf

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/goes-project/goes/internal/testkit"
)

// TestRegular: a FIFO (a secret served once) is not read by the master's
// check; regular and missing files are.
func TestRegular(t *testing.T) {
	dir := t.TempDir()
	cert, key := testkit.WriteCert(t, dir)
	fifo := filepath.Join(dir, "key.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files Files
		want  bool
	}{
		{name: "regular", files: Files{Certs: []Pair{{cert, key}}}, want: true},
		{name: "missing", files: Files{Certs: []Pair{{cert, filepath.Join(dir, "gone.pem")}}}, want: true},
		{name: "fifo key", files: Files{Certs: []Pair{{cert, fifo}}}, want: false},
		{name: "fifo ca", files: Files{Certs: []Pair{{cert, key}}, ClientCAFile: fifo}, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Regular(tc.files); got != tc.want {
				t.Fatalf("Regular = %v, want %v", got, tc.want)
			}
		})
	}
}
