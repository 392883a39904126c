package timer

import (
	"testing"
	"unsafe"
)

// TestSizes holds the per-timer memory promised in the docs on 64-bit
// platforms: a Timer node and a user timer's slab entry are 48 bytes.
func TestSizes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Logf("%d-bit platform: sizes differ, nothing to hold", 8*unsafe.Sizeof(uintptr(0)))
		return
	}
	for _, c := range []struct {
		name string
		size uintptr
	}{
		{"Timer", unsafe.Sizeof(Timer{})},
		{"entry", unsafe.Sizeof(entry{})},
		{"chunk", unsafe.Sizeof([chunkSize]entry{})},
	} {
		want := uintptr(48)
		if c.name == "chunk" {
			want = 48 * chunkSize
		}
		if c.size != want {
			t.Errorf("%s is %d bytes, want %d", c.name, c.size, want)
		}
	}
}
