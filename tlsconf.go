package goes

import (
	"errors"
	"time"

	"github.com/goes-project/goes/internal/tlsconf"
)

// CertFiles is a PEM certificate (chain) and its key, for a TLS listener
// (Goer.Certificates; "certificates" in a listener's config).
type CertFiles struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// DefaultMinTLSVersion is a TLS listener's lowest version unless
// Goer.MinTLSVersion says otherwise.
const DefaultMinTLSVersion = tlsconf.DefaultMinVersion // tls.VersionTLS12

// ParseTLSVersion maps "1.2" and "1.3" (min_tls_version) to crypto/tls's
// version numbers.
func ParseTLSVersion(s string) (uint16, error) { return tlsconf.ParseVersion(s) }

// hasCerts reports whether g names a certificate of its own.
func (g *Goer) hasCerts() bool {
	return (g.CertFile != "" && g.KeyFile != "") || len(g.Certificates) > 0
}

// tlsFiles describes g's TLS listener for internal/tlsconf, which builds
// its configuration (in each worker as it starts, so that a reload
// serves renewed certificates): CertFile/KeyFile, then Certificates.
func (g *Goer) tlsFiles() tlsconf.Files {
	f := tlsconf.Files{Config: g.TLSConfig, MinVersion: g.MinTLSVersion, ClientCAFile: g.ClientCAFile,
		HandshakeTimeout: g.TLSHandshakeTimeout, MaxHandshakes: g.MaxTLSHandshakes}
	if g.CertFile != "" || g.KeyFile != "" {
		f.Certs = append(f.Certs, tlsconf.Pair{CertFile: g.CertFile, KeyFile: g.KeyFile})
	}
	for _, c := range g.Certificates {
		f.Certs = append(f.Certs, tlsconf.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	if p := g.Protocol; p != nil && (p.Name() == "http" || p.Name() == "websocket") {
		f.HTTP = true
	}
	return f
}

// ApplyTLS sets g's TLS fields from lc's certificates, min_tls_version,
// client_ca_file, tls_handshake_timeout and max_tls_handshakes (cert_file
// and key_file are the caller's; the limits are checked with the Goer).
func (lc ListenerConfig) ApplyTLS(g *Goer) error { return lc.applyTLS(g) }

func (lc ListenerConfig) applyTLS(g *Goer) error {
	if lc.TLSHandshakeTimeout != 0 || lc.MaxTLSHandshakes != 0 {
		if g.Transport != TransportTLS {
			return errors.New("tls_handshake_timeout and max_tls_handshakes are for TLS listeners (tls://, https://, wss://)")
		}
	}
	if lc.TLSHandshakeTimeout != 0 {
		g.TLSHandshakeTimeout = time.Duration(lc.TLSHandshakeTimeout)
	}
	if lc.MaxTLSHandshakes != 0 {
		g.MaxTLSHandshakes = lc.MaxTLSHandshakes
	}
	if len(lc.Certificates) > 0 {
		g.Certificates = append([]CertFiles(nil), lc.Certificates...)
	}
	if lc.MinTLSVersion != "" {
		v, err := ParseTLSVersion(lc.MinTLSVersion)
		if err != nil {
			return err
		}
		g.MinTLSVersion = v
	}
	if lc.ClientCAFile != "" {
		g.ClientCAFile = lc.ClientCAFile
	}
	return nil
}
