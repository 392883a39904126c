package core_test

import (
	"errors"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/protocols"
)

// TestBufferPoolClasses: a buffer from getCap(n) holds n bytes, grow keeps
// the bytes and leaves room, and a buffer given back is lent again by its
// class only if its capacity is exactly the class's (an odd one is left to
// the GC), never to a class that needs more.
func TestBufferPoolClasses(t *testing.T) {
	var p core.BufferPool
	for _, n := range []int{1, core.BufferSize, core.BufferSize + 1, 100 << 10, 1 << core.MaxClassBits, 1<<core.MaxClassBits + 1} {
		if b := p.GetCap(n); cap(b.B) < n || len(b.B) != 0 {
			t.Errorf("getCap(%d): len %d cap %d", n, len(b.B), cap(b.B))
		}
	}
	b := p.Get()
	b.B = append(b.B, "hello"...)
	b = p.Grow(b, 10<<10)
	if string(b.B) != "hello" || cap(b.B)-len(b.B) < 10<<10 {
		t.Fatalf("grow: %q cap %d", b.B, cap(b.B))
	}
	same := p.Grow(b, 1)
	if same != b {
		t.Fatal("grow with room replaced the buffer")
	}
	// A 12 KiB buffer is not a class: dropped, never lent for 16 KiB.
	odd := &core.Buffer{B: make([]byte, 3, 12<<10)}
	p.Put(odd)
	if got := p.GetCap(16 << 10); cap(got.B) < 16<<10 {
		t.Fatalf("16 KiB asked, got cap %d", cap(got.B))
	}
	got := p.GetCap(8 << 10)
	if cap(got.B) < 8<<10 || len(got.B) != 0 {
		t.Fatalf("8 KiB asked, got len %d cap %d", len(got.B), cap(got.B))
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
		{name: "known tiny", n: 10, want: 200, size: core.BufferSize},
		{name: "unknown, first buffer", n: 100, size: core.BufferSize},
		{name: "unknown, first buffer after a large read", n: 60_000, size: 64 << 10},
		{name: "unknown, doubles", n: 64 << 10, cur: 64 << 10, size: 128 << 10},
		{name: "unknown, from an odd size", n: 70_000, cur: 70_000, size: 256 << 10},
		{name: "unknown, past the classes", n: 4 << 20, cur: 4 << 20, size: 8 << 20},
		{name: "unknown, capped", n: 8 << 20, cur: 8 << 20, size: limit},
		{name: "known but already there", n: 5000, cur: 8192, want: 5000, size: 16 << 10},
		{name: "full", n: limit, cur: limit, tooLarge: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, err := core.InputSize(tc.n, tc.cur, tc.want, limit, connections.DefaultReadBufferSize)
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
		limit  = connections.DefaultMaxPackageSize
		packet = 10_000_000 + 100
		read   = 64 << 10
	)
	var p core.BufferPool
	for _, known := range []bool{true, false} {
		want := 0
		if known {
			want = packet
		}
		var in *core.Buffer
		largest, buffers := 0, 0
		for got := 0; got < packet; {
			if in == nil || cap(in.B)-len(in.B) < 1<<10 {
				cur := 0
				if in != nil {
					cur = cap(in.B)
				}
				size, err := core.InputSize(got, cur, want, limit, connections.DefaultReadBufferSize)
				if err != nil {
					t.Fatalf("known=%v at %d: %v", known, got, err)
				}
				nb := p.GetInput(size)
				if cap(nb.B) != size {
					t.Fatalf("getInput(%d) lent a buffer of %d", size, cap(nb.B))
				}
				if in != nil {
					nb.B = append(nb.B, in.B...)
					p.PutInput(in)
				}
				in = nb
				buffers++
				largest = max(largest, cap(in.B))
			}
			k := min(read, cap(in.B)-len(in.B), packet-got)
			in.B = in.B[:len(in.B)+k]
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
	odd := &core.Buffer{B: make([]byte, 0, 3<<20)}
	p.Put(odd)
	if b := p.GetCap(2 << 20); cap(b.B) != 2<<20 {
		t.Fatalf("getCap(2 MiB) lent %d bytes", cap(b.B))
	}
}

// TestSharedBufferNotPooled: a shared buffer (a Fanout's frame, queued on
// many connections at once) given back by one of them is never kept by
// the pool, so that no connection is lent bytes others are still writing.
func TestSharedBufferNotPooled(t *testing.T) {
	var p core.BufferPool
	shared := map[*core.Buffer]bool{}
	for range 100 {
		b := &core.Buffer{B: make([]byte, 0, core.BufferSize), Shared: true}
		shared[b] = true
		p.Put(b)
	}
	for range 100 {
		if b := p.Get(); shared[b] {
			t.Fatal("the pool lent a shared buffer given back")
		}
	}
}
