// Package tlsconf builds a TLS listener's configuration from the files a
// Goer (or a listener's config) names: the root package describes its
// Goer as Files, the master checks them before it starts (a reload) and
// each worker builds its listener's configuration from them when it
// starts (worker.Serve).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// DefaultMinVersion is a TLS listener's lowest version unless
// Files.MinVersion says otherwise (goes.DefaultMinTLSVersion).
const DefaultMinVersion = tls.VersionTLS12

// Pair is a PEM certificate (chain) file and its key file.
type Pair struct{ CertFile, KeyFile string }

// Files is what a TLS listener is made of (goes.Goer's TLS fields).
type Files struct {
	// Config, when set, is used (a copy) instead of the fields below.
	Config *tls.Config
	// Certs are the certificates, the first being the default and the
	// others chosen by the client's SNI.
	Certs []Pair
	// MinVersion is the lowest version served (0: DefaultMinVersion).
	MinVersion uint16
	// ClientCAFile, when set, is a PEM file of CAs: a client must present
	// a certificate they sign.
	ClientCAFile string
	// HTTP sets ALPN "http/1.1" (the http and websocket protocols).
	HTTP bool
	// HandshakeTimeout and MaxHandshakes are the listener's limits
	// (connections.TLSServing's: 0 is the default; MaxHandshakes -1 is
	// no bound). Build does not use them: the worker's listener does.
	HandshakeTimeout time.Duration
	MaxHandshakes    int
}

// Defaults of Files' limits (connections.DefaultTLSHandshakeTimeout and
// DefaultMaxTLSHandshakes, which this package does not import).
const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultMaxHandshakes    = 1024
)

// CheckLimits checks f's HandshakeTimeout and MaxHandshakes; an error
// names their config keys.
func (f Files) CheckLimits() error {
	if f.HandshakeTimeout < 0 {
		return fmt.Errorf("tls_handshake_timeout cannot be off (or negative): a handshake must end; want a duration like \"5s\" (default %q)", defaultHandshakeTimeout.String())
	}
	if n := f.MaxHandshakes; n < -1 || n > math.MaxInt32 {
		return fmt.Errorf("max_tls_handshakes %d: want 1 to %d, or -1 for no bound (default %d)", n, math.MaxInt32, defaultMaxHandshakes)
	}
	return nil
}

// versions are the names of min_tls_version.
var versions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// ParseVersion maps "1.2" and "1.3" (min_tls_version) to crypto/tls's
// version numbers.
func ParseVersion(s string) (uint16, error) {
	v, ok := versions[s]
	if !ok {
		return 0, fmt.Errorf("min_tls_version %q: want \"1.2\" or \"1.3\"", s)
	}
	return v, nil
}

// Build returns the TLS configuration of f's listener: a copy of
// f.Config when set, else one made from the files, read now (a worker
// reads them when it starts, so that a reload serves renewed
// certificates): the certificates, the first being the default and the
// others chosen by the client's SNI; MinVersion (default 1.2); ALPN
// "http/1.1" for the http and websocket protocols; and with
// ClientCAFile, client certificates required and verified against its
// CAs. An error names the file.
func Build(f Files) (*tls.Config, error) {
	if f.Config != nil {
		return f.Config.Clone(), nil
	}
	conf := &tls.Config{MinVersion: DefaultMinVersion}
	if f.MinVersion != 0 {
		conf.MinVersion = f.MinVersion
	}
	if len(f.Certs) == 0 {
		return nil, errors.New("tls needs cert_file and key_file, or certificates")
	}
	for _, p := range f.Certs {
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file %s, key_file %s: %w", p.CertFile, p.KeyFile, err)
		}
		conf.Certificates = append(conf.Certificates, cert)
	}
	if f.HTTP {
		conf.NextProtos = []string{"http/1.1"}
	}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file %s: %w", f.ClientCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca_file %s: no PEM certificate", f.ClientCAFile)
		}
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// Regular reports whether every file of f that exists is a regular file:
// one that can be read twice, by the master's check and by each worker.
// A missing file is for the check to name.
func Regular(f Files) bool {
	paths := []string{f.ClientCAFile}
	for _, p := range f.Certs {
		paths = append(paths, p.CertFile, p.KeyFile)
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
