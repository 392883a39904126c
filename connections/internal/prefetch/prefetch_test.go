package prefetch

import (
	"testing"
	"unsafe"
)

// TestRangeNeverFaults: Range is a hint; whatever the address (none, a
// freed object's, one no page is mapped at, the top of the address
// space), it neither faults nor reads: the program goes on.
func TestRangeNeverFaults(t *testing.T) {
	buf := make([]byte, 4096)
	for _, c := range []struct {
		addr, n uintptr
	}{
		{0, 0},
		{0, 4 * Line},
		{1, 1},
		{uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf))},
		{uintptr(unsafe.Pointer(&buf[0])) + 7, 3*Line + 1},
		{1 << 46, 8 * Line},
		{^uintptr(0) - 2*Line, Line}, // no wrap past the top: one line
	} {
		Range(c.addr, c.n)
	}
}

// BenchmarkRange: the cost of asking for 12 lines (a TLS connection's
// state) that are in the cache already.
func BenchmarkRange(b *testing.B) {
	buf := make([]byte, 12*Line)
	p := uintptr(unsafe.Pointer(&buf[0]))
	for b.Loop() {
		Range(p, 12*Line)
	}
}
