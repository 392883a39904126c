package websocket

import (
	"testing"
	"unsafe"
)

// TestConnStateSize: every WebSocket connection holds one connState for
// its life, idle ones too (a million connections: a million of them). It
// stays within the runtime's 208-byte size class on 64-bit platforms (it
// was 384 with a control-frame buffer and the client's handshake fields
// of its own; issue 21).
func TestConnStateSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skipf("%d-bit platform: sizes differ", 8*unsafe.Sizeof(uintptr(0)))
	}
	if n := unsafe.Sizeof(connState{}); n > 208 {
		t.Fatalf("connState is %d bytes: past the 208-byte size class", n)
	}
}
