package goes

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// CertFiles is a PEM certificate (chain) and its key, for a TLS listener
// (Goer.Certificates; "certificates" in a listener's config).
type CertFiles struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// DefaultMinTLSVersion is a TLS listener's lowest version unless
// Goer.MinTLSVersion says otherwise.
const DefaultMinTLSVersion = tls.VersionTLS12

// tlsVersions are the names of min_tls_version.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// ParseTLSVersion maps "1.2" and "1.3" (min_tls_version) to crypto/tls's
// version numbers.
func ParseTLSVersion(s string) (uint16, error) {
	v, ok := tlsVersions[s]
	if !ok {
		return 0, fmt.Errorf("min_tls_version %q: want \"1.2\" or \"1.3\"", s)
	}
	return v, nil
}

// hasCerts reports whether g names a certificate of its own.
func (g *Goer) hasCerts() bool {
	return (g.CertFile != "" && g.KeyFile != "") || len(g.Certificates) > 0
}

// buildTLSConfig returns the TLS configuration of g's listener: a copy of
// TLSConfig when set, else one made from the files, read now (a worker
// reads them when it starts, so that a reload serves renewed
// certificates): CertFile/KeyFile then Certificates, the first being the
// default and the others chosen by the client's SNI; MinTLSVersion
// (default 1.2); ALPN "http/1.1" for the http and websocket protocols;
// and with ClientCAFile, client certificates required and verified
// against its CAs. An error names the file.
func (g *Goer) buildTLSConfig() (*tls.Config, error) {
	if g.TLSConfig != nil {
		return g.TLSConfig.Clone(), nil
	}
	conf := &tls.Config{MinVersion: DefaultMinTLSVersion}
	if g.MinTLSVersion != 0 {
		conf.MinVersion = g.MinTLSVersion
	}
	files := g.Certificates
	if g.CertFile != "" || g.KeyFile != "" {
		files = append([]CertFiles{{g.CertFile, g.KeyFile}}, files...)
	}
	if len(files) == 0 {
		return nil, errors.New("tls needs cert_file and key_file, or certificates")
	}
	for _, f := range files {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file %s, key_file %s: %w", f.CertFile, f.KeyFile, err)
		}
		conf.Certificates = append(conf.Certificates, cert)
	}
	if p := g.Protocol; p != nil && (p.Name() == "http" || p.Name() == "websocket") {
		conf.NextProtos = []string{"http/1.1"}
	}
	if g.ClientCAFile != "" {
		pem, err := os.ReadFile(g.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file %s: %w", g.ClientCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca_file %s: no PEM certificate", g.ClientCAFile)
		}
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return conf, nil
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

// tlsFilesRegular reports whether every file of g's TLS configuration
// that exists is a regular file: one that can be read twice, by the
// master's check and by each worker. A missing file is for the check to
// name.
func (g *Goer) tlsFilesRegular() bool {
	paths := []string{g.CertFile, g.KeyFile, g.ClientCAFile}
	for _, f := range g.Certificates {
		paths = append(paths, f.CertFile, f.KeyFile)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}
