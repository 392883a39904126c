package timer

import (
	"fmt"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startWheel returns a running wheel that is stopped when the test ends.
// Inside a synctest bubble it must be called from the bubble.
func startWheel(tb testing.TB, opts Options) *Wheel {
	tb.Helper()
	w := New(opts)
	w.Start()
	tb.Cleanup(w.Stop)
	return w
}

// checkInvariants verifies the wheel's internal structure: every pending
// timer sits in the list its expiry and the wheel's clock say, the
// occupancy bits and per-slot bounds agree with the lists, no slot at or
// behind the clock's slot of its level is occupied, and count matches.
func checkInvariants(w *Wheel) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	walk := func(h *node, visit func(t *node) error) error {
		for t := h.next; t != h; t = t.next {
			if t.next.prev != t || t.prev.next != t {
				return fmt.Errorf("broken links around %p", t)
			}
			n++
			if err := visit(t); err != nil {
				return err
			}
		}
		return nil
	}
	for l := range numLevels {
		shift := uint(l * levelBits)
		cur := int(w.now>>shift) & slotMask
		for s := range numSlots {
			h := &w.slots[l][s]
			empty := h.next == h
			if bit := w.occupied[l]&(1<<s) != 0; bit == empty {
				return fmt.Errorf("level %d slot %d: occupied bit %v, empty %v", l, s, bit, empty)
			}
			if empty {
				if w.slotMin[l][s] != math.MaxInt64 {
					return fmt.Errorf("level %d slot %d: empty with bound %d", l, s, w.slotMin[l][s])
				}
				continue
			}
			if s <= cur {
				return fmt.Errorf("level %d slot %d occupied at or behind the clock's slot %d (now %d)", l, s, cur, w.now)
			}
			err := walk(h, func(t *node) error {
				e := w.ceilTick(t.when)
				x := uint64(e ^ w.now)
				if e <= w.now || x >= 1<<spanBits {
					return fmt.Errorf("level %d slot %d holds expiry %d at now %d", l, s, e, w.now)
				}
				if gl, gs := (64-leadingZeros(x)-1)/levelBits, int(e>>(uint(l)*levelBits))&slotMask; gl != l || gs != s {
					return fmt.Errorf("expiry %d at now %d is in level %d slot %d, belongs in %d/%d", e, w.now, l, s, gl, gs)
				}
				if w.slotMin[l][s] > e {
					return fmt.Errorf("level %d slot %d: bound %d above expiry %d", l, s, w.slotMin[l][s], e)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	if err := walk(&w.over, func(t *node) error {
		if e := w.ceilTick(t.when); uint64(e^w.now) < 1<<spanBits || e < w.overMin {
			return fmt.Errorf("overflow holds expiry %d at now %d (bound %d)", e, w.now, w.overMin)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := walk(&w.ready, func(*node) error { return nil }); err != nil {
		return err
	}
	if n != w.count {
		return fmt.Errorf("count %d, lists hold %d", w.count, n)
	}
	return nil
}

func leadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<uint(i)) == 0; i-- {
		n++
	}
	return n
}

// firing records when a callback ran.
type firing struct {
	at time.Time
	n  int
}
