package tlsrec

import (
	"crypto/tls"
	"reflect"
	"runtime"
	"testing"
)

// TestPrefetchFollowsTheWriteKey: what Prefetch asks for is the write
// key's AES-GCM state — where it is, and its size — also after a
// KeyUpdate has replaced it; a session without the record layer asks
// for nothing.
func TestPrefetchFollowsTheWriteKey(t *testing.T) {
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		if aeadSize < 512 {
			t.Fatalf("aeadSize %d: crypto/cipher's AES-GCM state is its key schedule and GHASH table, not under 512 bytes here", aeadSize)
		}
	}
	for _, suite := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384} {
		s, _ := newPair(t, suite)
		r := s.rec
		if r.out.state == 0 || r.out.state != reflect.ValueOf(r.out.aead).Pointer() || r.in.state != reflect.ValueOf(r.in.aead).Pointer() {
			t.Fatalf("suite %#x: state %#x, not the AEAD's %#x", suite, r.out.state, reflect.ValueOf(r.out.aead).Pointer())
		}
		s.Prefetch()
		before := r.out.state
		if err := r.out.next(suite); err != nil {
			t.Fatal(err)
		}
		if r.out.state == before || r.out.state != reflect.ValueOf(r.out.aead).Pointer() {
			t.Fatalf("suite %#x: after a KeyUpdate state %#x, the AEAD's %#x (before %#x)", suite, r.out.state, reflect.ValueOf(r.out.aead).Pointer(), before)
		}
		s.Prefetch()
		s.Close() // the state's address stays, the state may go: a prefetch of it is harmless
		s.Prefetch()
	}
	(&Session{}).Prefetch()
}
