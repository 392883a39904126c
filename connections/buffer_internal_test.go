package connections

import (
	"errors"
	"testing"

	"github.com/goes-project/goes/protocols"
)

// TestBufferPoolClasses: a buffer from getCap(n) holds n bytes, grow keeps
// the bytes and leaves room, and a buffer given back is lent again by its
// class only if its capacity is exactly the class's (an odd one is left to
// the GC), never to a class that needs more.
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
	// A 12 KiB buffer is not a class: dropped, never lent for 16 KiB.
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

// TestInputSize: an input buffer is sized to the packet when the protocol
// says how long it is (exactly; the pool class for a small one), doubles
// through the pool's classes when it cannot, and is never larger than
// MaxPackageSize.
func TestInputSize(t *testing.T) {
	const limit = 10 << 20
	for _, tc := range []struct {
		name         string
		n, cur, want int
		size         int
		tooLarge     bool
	}{
		{name: "known 10 MB, first buffer", n: 60_000, cur: 0, want: 10_000_100, size: 10_000_100},
		{name: "known 10 MB, growing", n: 4096, cur: 4096, want: 10_000_100, size: 10_000_100},
		{name: "known small", n: 100, want: 5000, size: 8 << 10},
		{name: "known tiny", n: 10, want: 200, size: bufferSize},
		{name: "unknown, first buffer", n: 100, size: bufferSize},
		{name: "unknown, first buffer after a large read", n: 60_000, size: 64 << 10},
		{name: "unknown, doubles", n: 64 << 10, cur: 64 << 10, size: 128 << 10},
		{name: "unknown, from an odd size", n: 70_000, cur: 70_000, size: 256 << 10},
		{name: "unknown, past the classes", n: 4 << 20, cur: 4 << 20, size: 8 << 20},
		{name: "unknown, capped", n: 8 << 20, cur: 8 << 20, size: limit},
		{name: "known but already there", n: 5000, cur: 8192, want: 5000, size: 16 << 10},
		{name: "full", n: limit, cur: limit, tooLarge: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, err := inputSize(tc.n, tc.cur, tc.want, limit, DefaultReadBufferSize)
			if tc.tooLarge {
				if !errors.Is(err, protocols.ErrPackageTooLarge) {
					t.Fatalf("inputSize = %d, %v: want ErrPackageTooLarge", size, err)
				}
				return
			}
			if err != nil || size != tc.size {
				t.Fatalf("inputSize = %d, %v: want %d", size, err, tc.size)
			}
		})
	}
}

// TestInputGrowth10MB: the buffers a connection's input goes through for
// a 10 MB body never exceed the packet (10 MB and its head: no power of
// two, no 16 MiB), whether the protocol says the length (one buffer) or
// not (doubling, then capped at MaxPackageSize); the pool lends exactly
// the capacity asked and keeps only class-sized buffers.
func TestInputGrowth10MB(t *testing.T) {
	const (
		limit  = DefaultMaxPackageSize
		packet = 10_000_000 + 100
		read   = 64 << 10
	)
	var p bufferPool
	for _, known := range []bool{true, false} {
		want := 0
		if known {
			want = packet
		}
		var in *buffer
		largest, buffers := 0, 0
		for got := 0; got < packet; {
			if in == nil || cap(in.b)-len(in.b) < 1<<10 {
				cur := 0
				if in != nil {
					cur = cap(in.b)
				}
				size, err := inputSize(got, cur, want, limit, DefaultReadBufferSize)
				if err != nil {
					t.Fatalf("known=%v at %d: %v", known, got, err)
				}
				nb := p.getInput(size)
				if cap(nb.b) != size {
					t.Fatalf("getInput(%d) lent a buffer of %d", size, cap(nb.b))
				}
				if in != nil {
					nb.b = append(nb.b, in.b...)
					p.putInput(in)
				}
				in = nb
				buffers++
				largest = max(largest, cap(in.b))
			}
			k := min(read, cap(in.b)-len(in.b), packet-got)
			in.b = in.b[:len(in.b)+k]
			got += k
		}
		t.Logf("known=%v: %d buffers, the largest %d bytes", known, buffers, largest)
		switch {
		case known && (buffers != 1 || largest != packet):
			t.Errorf("known length: %d buffers, largest %d; want one of %d", buffers, largest, packet)
		case !known && largest > limit:
			t.Errorf("unknown length: largest buffer %d, over MaxPackageSize %d", largest, limit)
		}
	}
	// A buffer made to a packet's size is not pooled: classes stay exact.
	odd := &buffer{b: make([]byte, 0, 3<<20)}
	p.put(odd)
	if b := p.getCap(2 << 20); cap(b.b) != 2<<20 {
		t.Fatalf("getCap(2 MiB) lent %d bytes", cap(b.b))
	}
}

// TestBudgetVictims: the budget sheds from the highest class of holders
// for a charge below it, and refuses one of that class or above; the
// accounting follows every change.
func TestBudgetVictims(t *testing.T) {
	b := newInputBudget(nil, 1000)
	var cs [4]base
	set := func(i, n int) {
		t.Helper()
		b.mu.Lock()
		b.commitLocked(&cs[i], b.holders[&cs[i]], n, false)
		b.mu.Unlock()
	}
	set(0, 400) // class 9
	set(1, 300) // class 9
	set(2, 100) // class 7
	if b.used != 800 || b.held.Load() != 800 || !cs[0].has(fInputHeld) {
		t.Fatalf("used %d held %d", b.used, b.held.Load())
	}
	// A small newcomer: one of the class-9 holders.
	if v := b.victimLocked(nil, 50); v == nil || v.class != 9 {
		t.Fatalf("victim for 50 bytes: %+v", v)
	}
	// As large as the largest: refused.
	if v := b.victimLocked(nil, 500); v != nil {
		t.Fatalf("victim for 500 bytes: %+v, want none", v)
	}
	// A holder of the class below growing into the highest: refused.
	if v := b.victimLocked(b.holders[&cs[2]], 260); v != nil {
		t.Fatalf("victim for holder 2 growing: %+v, want none", v)
	}
	// A holder alone at the top is not its own victim.
	set(1, 0)
	if v := b.victimLocked(b.holders[&cs[0]], 900); v != nil {
		t.Fatalf("victim for the top holder growing: %+v, want none", v)
	}
	if _, ok := b.holders[&cs[1]]; ok || cs[1].has(fInputHeld) || b.used != 500 {
		t.Fatalf("holder 1 let go: still recorded, used %d", b.used)
	}
	b.mu.Lock()
	b.removeLocked(b.holders[&cs[0]])
	b.mu.Unlock()
	set(2, 0)
	if b.used != 0 || b.mask != 0 || len(b.holders) != 0 {
		t.Fatalf("empty budget: used %d, mask %b, %d holders", b.used, b.mask, len(b.holders))
	}
}
