package core

import "testing"

// TestBudgetVictims: the budget sheds from the highest class of holders
// for a charge below it, and refuses one of that class or above; the
// accounting follows every change.
func TestBudgetVictims(t *testing.T) {
	b := newInputBudget(nil, 1000)
	var cs [4]Conn
	set := func(i, n int) {
		t.Helper()
		b.mu.Lock()
		b.commitLocked(&cs[i], b.holders[&cs[i]], n, false)
		b.mu.Unlock()
	}
	set(0, 400) // class 9
	set(1, 300) // class 9
	set(2, 100) // class 7
	if b.used != 800 || b.held.Load() != 800 || !cs[0].Has(FInputHeld) {
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
	if _, ok := b.holders[&cs[1]]; ok || cs[1].Has(FInputHeld) || b.used != 500 {
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
