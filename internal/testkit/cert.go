package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CertPEM makes a new self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1 and localhost, valid from an hour ago for a day, and returns it and
// its private key (PKCS #8) PEM-encoded. A client trusts it by adding the
// certificate to its RootCAs.
func CertPEM(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := NewCertPEM()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return certPEM, keyPEM
}

// NewCertPEM is CertPEM for a program (the bench drivers), which has no
// testing.TB: the same certificate, or what failed.
func NewCertPEM() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "goes test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// SelfSigned returns a new certificate of CertPEM, ready for a
// tls.Config's Certificates (its Leaf is set).
func SelfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	cert, err := tls.X509KeyPair(CertPEM(t))
	if err != nil {
		t.Fatalf("testkit: key pair: %v", err)
	}
	return cert
}

// WriteCert writes a new certificate of CertPEM and its key into dir as
// cert.pem and key.pem, readable by the owner only, and returns their
// paths (for a program that loads them, as a Goer's CertFile and KeyFile).
func WriteCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := WriteCertFiles(dir)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return certFile, keyFile
}

// WriteCertFiles is WriteCert for a program: the bench drivers' servers
// (goes-master, nginx) load the files.
func WriteCertFiles(dir string) (certFile, keyFile string, err error) {
	certPEM, keyPEM, err := NewCertPEM()
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
