package main

import (
	"crypto/tls"
)

// clientTLS is the publisher's TLS configuration: loopback only, the
// server's certificate is the one just made, so it is not verified.
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}
