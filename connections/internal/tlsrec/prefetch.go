package tlsrec

import (
	"crypto/aes"
	"crypto/cipher"
	"reflect"

	"github.com/goes-project/goes/connections/internal/prefetch"
)

// Prefetch starts loading what a Seal of s reads outside s's own memory:
// the write key's AES-GCM state, an object crypto/cipher allocates
// (768 bytes on amd64: the key schedule and the GHASH table). For a loop
// that seals for many sessions in turn, cold by then, a few sessions
// ahead of the one it seals for (a prefetch never blocks; a load that
// misses stalls the loop for the memory's latency). Does nothing for a
// session crypto/tls serves.
//
// The loop's goroutine only, once the session is up.
func (s *Session) Prefetch() {
	if r := s.rec; r != nil && r.out.state != 0 {
		prefetch.Range(r.out.state, aeadSize)
	}
}

// aeadSize is the size of crypto/cipher's AES-GCM state, 0 if it is not
// known (no prefetch then).
var aeadSize = func() uintptr {
	b, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		return 0
	}
	a, err := cipher.NewGCM(b)
	if err != nil || addrOf(a) == 0 {
		return 0
	}
	return reflect.TypeOf(a).Elem().Size()
}()

// addrOf returns where a's state is, when a is a pointer to it (0 else).
func addrOf(a cipher.AEAD) uintptr {
	if v := reflect.ValueOf(a); v.Kind() == reflect.Pointer {
		return v.Pointer()
	}
	return 0
}
