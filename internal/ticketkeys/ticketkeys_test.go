package ticketkeys

import (
	"bytes"
	"strings"
	"testing"
)

// TestRotate: the new key first, the previous ones after it, at most Keep.
func TestRotate(t *testing.T) {
	s, err := New()
	if err != nil || len(s) != 1 {
		t.Fatalf("New: %d keys, %v", len(s), err)
	}
	first := s[0]
	for i := 2; i <= Keep+2; i++ {
		prev := s
		if s, err = s.Rotate(); err != nil {
			t.Fatal(err)
		}
		if want := min(i, Keep); len(s) != want {
			t.Fatalf("rotation %d: %d keys, want %d", i-1, len(s), want)
		}
		if s[0] == prev[0] || s[1] != prev[0] {
			t.Fatalf("rotation %d: the new key is not first, or the previous one not second", i-1)
		}
	}
	for _, k := range s {
		if k == first {
			t.Fatalf("the oldest key kept after %d rotations", Keep+1)
		}
	}
	if str := s.String(); strings.Contains(str, string(s[0][:4])) || !strings.Contains(str, "3 keys") {
		t.Fatalf("String: %q", str)
	}
}

// TestFileRoundTrip: a set crosses through File and ReadFile whole;
// Decode refuses what is not 1 to Keep keys.
func TestFileRoundTrip(t *testing.T) {
	s, _ := New()
	s, _ = s.Rotate()
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(f)
	if err != nil || !bytes.Equal(got.Encode(), s.Encode()) {
		t.Fatalf("ReadFile: %v, %v", got, err)
	}
	for _, n := range []int{0, 31, 33, Keep*KeyLen + KeyLen} {
		if _, err := Decode(make([]byte, n)); err == nil {
			t.Errorf("Decode of %d bytes: no error", n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, KeyLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err == nil && !bytes.Equal(s.Encode(), b) {
			t.Fatal("Decode and Encode disagree")
		}
	})
}
