//go:build unix

package main_test

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeNamedCert writes a self-signed certificate for name (its own CA,
// good for a server or a client) and its key into dir.
func writeNamedCert(t *testing.T, dir, name string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestTLSOptions: a config's TLS listener options through goes-master:
// the certificate is chosen by SNI among certificates, min_tls_version
// refuses an older client, ALPN says http/1.1 on https, and with
// client_ca_file a client without a certificate signed there is refused.
func TestTLSOptions(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, _ := writeNamedCert(t, dir, "a.goes.test")
	bCert, bKey, _ := writeNamedCert(t, dir, "b.goes.test")
	caCert, _, client := writeNamedCert(t, dir, "client.goes.test")
	_, _, stranger := writeNamedCert(t, dir, "stranger.goes.test")
	conf := filepath.Join(dir, "goes.json")
	body := fmt.Sprintf(`{"listeners": [
  {"name": "sni", "listen": "https://127.0.0.1:0", "count": 1, "handler": "hello", "min_tls_version": "1.3",
   "cert_file": %q, "key_file": %q, "certificates": [{"cert_file": %q, "key_file": %q}]},
  {"name": "mtls", "listen": "tls://127.0.0.1:0", "count": 1, "cert_file": %q, "key_file": %q, "client_ca_file": %q}
]}`, aCert, aKey, bCert, bKey, aCert, aKey, caCert)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &setup{t: t, bin: bin, runDir: filepath.Join(dir, "run"), conf: conf}
	st := s.start()
	addrs := listenAddrs(t, st)
	dial := func(addr string, c *tls.Config) (tls.ConnectionState, error) {
		msg := "x" // echoed by tls://
		if addr == addrs["sni"] {
			msg = "GET / HTTP/1.1\r\nHost: goes.test\r\n\r\n"
		}
		c.InsecureSkipVerify = true
		conn, err := tls.Dial("tcp", addr, c)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		// TLS 1.3: the server's verdict on a client certificate comes
		// after the client's handshake ends; a round trip reads it.
		if _, err := conn.Write([]byte(msg)); err != nil {
			return conn.ConnectionState(), err
		}
		_, err = conn.Read(make([]byte, 1))
		return conn.ConnectionState(), err
	}
	for _, name := range []string{"a.goes.test", "b.goes.test", "other.goes.test"} {
		cs, _ := dial(addrs["sni"], &tls.Config{ServerName: name, NextProtos: []string{"h2", "http/1.1"}})
		want := name
		if name == "other.goes.test" {
			want = "a.goes.test" // the default: the first
		}
		if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != want {
			t.Errorf("SNI %s: no certificate or the wrong one (want %s)", name, want)
		}
		if cs.NegotiatedProtocol != "http/1.1" || cs.Version != tls.VersionTLS13 {
			t.Errorf("SNI %s: ALPN %q version %x, want http/1.1 and TLS 1.3", name, cs.NegotiatedProtocol, cs.Version)
		}
	}
	if _, err := dial(addrs["sni"], &tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("a TLS 1.2 client served by a listener of min_tls_version 1.3")
	}
	if _, err := dial(addrs["mtls"], &tls.Config{Certificates: []tls.Certificate{client}}); err != nil {
		t.Errorf("a client with a certificate of client_ca_file: %v", err)
	}
	for name, c := range map[string]*tls.Config{
		"no certificate":        {},
		"a foreign certificate": {Certificates: []tls.Certificate{stranger}},
	} {
		if _, err := dial(addrs["mtls"], c); err == nil {
			t.Errorf("client_ca_file: a client with %s served", name)
		}
	}
	s.stopAndCheck(st)
}

// TestTLSCertReload: `reload` serves the certificate files as they are
// then (a renewed certificate), and refuses a bad one, naming the file,
// while the running generation serves on.
func TestTLSCertReload(t *testing.T) {
	dir := t.TempDir()
	oldCert, oldKey, _ := writeNamedCert(t, dir, "old.goes.test")
	newCert, newKey, _ := writeNamedCert(t, dir, "new.goes.test")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(c, k string) {
		t.Helper()
		for src, dst := range map[string]string{c: certFile, k: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(oldCert, oldKey)
	conf := filepath.Join(dir, "goes.json")
	body := fmt.Sprintf(`{"listeners": [
  {"name": "tls", "listen": "tls://127.0.0.1:0", "count": 2, "cert_file": %q, "key_file": %q}
]}`, certFile, keyFile)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &setup{t: t, bin: bin, runDir: filepath.Join(dir, "run"), conf: conf}
	st := s.start()
	addr := listenAddrs(t, st)["tls"]
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		name := c.ConnectionState().PeerCertificates[0].Subject.CommonName
		echoRaw(t, c, "cert")
		return name
	}
	if got := served(); got != "old.goes.test" {
		t.Fatalf("served %s before the reload", got)
	}
	install(newCert, newKey)
	s.mustCLI("reload")
	if got := served(); got != "new.goes.test" {
		t.Fatalf("served %s after a reload with a renewed certificate", got)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := s.cli("reload")
	t.Logf("reload with a bad certificate: %s", res.Stderr)
	if res.Code == 0 || !strings.Contains(res.Stderr, certFile) {
		t.Fatalf("reload with a bad certificate: want a refusal naming %s: %s", certFile, res)
	}
	if got := served(); got != "new.goes.test" {
		t.Fatalf("served %s after a refused reload", got)
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}
