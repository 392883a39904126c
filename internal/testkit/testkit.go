// Package testkit holds the helpers the tests of every goes package share:
// Eventually (poll a condition until a deadline), the connection engines a
// stream test runs against (Engines, EachEngine), a self-signed certificate
// for loopback (SelfSigned, CertPEM, WriteCert), a listener of in-memory
// pipes for servers under testing/synctest (PipeListener), a TCP proxy
// that can stop forwarding without closing (Blackhole), a logger that
// writes through the test (Logger), and small things more than one package
// needs (IsReset, Pattern).
//
// It imports no package of the module, so that internal tests (package
// connections, package timer, ...) can use it without an import cycle.
// Every helper that takes a testing.TB calls t.Helper, fails t itself and
// registers what it must undo with t.Cleanup; like t.Fatal, such helpers
// must be called from the test's goroutine.
package testkit

import (
	"errors"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// Logger returns a logger that writes through t (shown only when the test
// fails or runs with -v), at every level.
func Logger(t testing.TB) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

// IsReset reports whether err is the peer resetting the connection
// (ECONNRESET) or a write to a connection the peer has closed (EPIPE): what
// a test that closes or aborts one end may see on the other besides EOF.
func IsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Pattern returns n pseudo-random bytes, the same for the same n, and
// Pattern(m) is a prefix of Pattern(n) for m < n: test data in which a lost,
// repeated or reordered piece shows (it does not repeat with a short
// period, as a counter modulo 256 does).
func Pattern(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252) // xorshift64 (Marsaglia)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return b
}
