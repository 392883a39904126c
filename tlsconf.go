package goes

import "github.com/goes-project/goes/internal/tlsconf"

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
	f := tlsconf.Files{Config: g.TLSConfig, MinVersion: g.MinTLSVersion, ClientCAFile: g.ClientCAFile}
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

// ApplyTLS sets g's TLS fields from lc's certificates, min_tls_version
// and client_ca_file (cert_file and key_file are the caller's).
func (lc ListenerConfig) ApplyTLS(g *Goer) error { return lc.applyTLS(g) }

func (lc ListenerConfig) applyTLS(g *Goer) error {
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
