package connections

import "testing"

// TestBufferPoolClasses: a buffer from getCap(n) holds n bytes, grow keeps
// the bytes and leaves room, and a buffer given back is lent again by its
// class (the largest class that its capacity fills), never to a class
// that needs more.
func TestBufferPoolClasses(t *testing.T) {
	var p bufferPool
	for _, n := range []int{1, bufferSize, bufferSize + 1, 100 << 10, 1 << maxClassBits, 1<<maxClassBits + 1} {
		if b := p.getCap(n); cap(b.b) < n || len(b.b) != 0 {
			t.Errorf("getCap(%d): len %d cap %d", n, len(b.b), cap(b.b))
		}
	}
	b := p.get()
	b.b = append(b.b, "hello"...)
	b = p.grow(b, 10<<10)
	if string(b.b) != "hello" || cap(b.b)-len(b.b) < 10<<10 {
		t.Fatalf("grow: %q cap %d", b.b, cap(b.b))
	}
	same := p.grow(b, 1)
	if same != b {
		t.Fatal("grow with room replaced the buffer")
	}
	// A 12 KiB buffer fills the 8 KiB class: lent for 8 KiB, not 16 KiB.
	odd := &buffer{b: make([]byte, 3, 12<<10)}
	p.put(odd)
	if got := p.getCap(16 << 10); cap(got.b) < 16<<10 {
		t.Fatalf("16 KiB asked, got cap %d", cap(got.b))
	}
	got := p.getCap(8 << 10)
	if cap(got.b) < 8<<10 || len(got.b) != 0 {
		t.Fatalf("8 KiB asked, got len %d cap %d", len(got.b), cap(got.b))
	}
}
