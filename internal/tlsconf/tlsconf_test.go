package tlsconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goes-project/goes/internal/testkit"
)

// TestBuild: the files make the configuration the workers serve: the
// certificates in order (the first the default), the minimum version,
// ALPN for HTTP, client certificates against the CA file; an error names
// the file at fault; a Config set is copied.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	cert, key := testkit.WriteCert(t, dir)
	caFile := filepath.Join(dir, "ca.pem")
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("defaults", func(t *testing.T) {
		conf, err := Build(Files{Certs: []Pair{{cert, key}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(conf.Certificates) != 1 || conf.MinVersion != DefaultMinVersion || conf.NextProtos != nil || conf.ClientAuth != tls.NoClientCert {
			t.Fatalf("%+v", conf)
		}
	})
	t.Run("all", func(t *testing.T) {
		conf, err := Build(Files{Certs: []Pair{{cert, key}, {cert, key}}, MinVersion: tls.VersionTLS13, HTTP: true, ClientCAFile: caFile})
		if err != nil {
			t.Fatal(err)
		}
		if len(conf.Certificates) != 2 || conf.MinVersion != tls.VersionTLS13 || len(conf.NextProtos) != 1 ||
			conf.ClientAuth != tls.RequireAndVerifyClientCert || conf.ClientCAs == nil {
			t.Fatalf("%+v", conf)
		}
	})
	t.Run("config", func(t *testing.T) {
		own := &tls.Config{ServerName: "x"}
		conf, err := Build(Files{Config: own})
		if err != nil || conf == own || conf.ServerName != "x" {
			t.Fatalf("%p %+v, %v (want a copy of %p)", conf, conf, err, own)
		}
	})
	for _, tc := range []struct {
		name  string
		files Files
		want  string
	}{
		{name: "none", files: Files{}, want: "tls needs cert_file and key_file"},
		{name: "missing key", files: Files{Certs: []Pair{{cert, filepath.Join(dir, "nokey.pem")}}}, want: "nokey.pem"},
		{name: "missing ca", files: Files{Certs: []Pair{{cert, key}}, ClientCAFile: filepath.Join(dir, "noca.pem")}, want: "client_ca_file " + filepath.Join(dir, "noca.pem")},
		{name: "ca not pem", files: Files{Certs: []Pair{{cert, key}}, ClientCAFile: key}, want: "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Build(tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
