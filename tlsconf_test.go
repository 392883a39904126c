package goes

import (
	"crypto/tls"
	"reflect"
	"testing"

	"github.com/goes-project/goes/internal/tlsconf"
	"github.com/goes-project/goes/protocols/text"
	"github.com/goes-project/goes/protocols/websocket"
)

// TestTLSFiles: a Goer's TLS fields reach internal/tlsconf whole:
// CertFile/KeyFile first (the default certificate), then Certificates;
// ALPN for the HTTP protocols only.
func TestTLSFiles(t *testing.T) {
	own := &tls.Config{}
	for _, tc := range []struct {
		name string
		g    *Goer
		want tlsconf.Files
	}{
		{name: "all", g: &Goer{Protocol: websocket.New(), CertFile: "a.pem", KeyFile: "a.key",
			Certificates: []CertFiles{{"b.pem", "b.key"}}, MinTLSVersion: tls.VersionTLS13, ClientCAFile: "ca.pem", TLSConfig: own},
			want: tlsconf.Files{Config: own, Certs: []tlsconf.Pair{{CertFile: "a.pem", KeyFile: "a.key"}, {CertFile: "b.pem", KeyFile: "b.key"}}, MinVersion: tls.VersionTLS13,
				ClientCAFile: "ca.pem", HTTP: true}},
		{name: "certificates only", g: &Goer{Protocol: text.New(), Certificates: []CertFiles{{"b.pem", "b.key"}}},
			want: tlsconf.Files{Certs: []tlsconf.Pair{{CertFile: "b.pem", KeyFile: "b.key"}}}},
		{name: "key without cert", g: &Goer{KeyFile: "a.key"}, want: tlsconf.Files{Certs: []tlsconf.Pair{{CertFile: "", KeyFile: "a.key"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.g.tlsFiles(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
