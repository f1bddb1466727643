package load

import "testing"

func TestLedgerCountsLostQuantities(t *testing.T) {
	l := newLedger(2, "deposits")
	l.add(0, 0, 10, ok)
	l.add(1, 0, 5, failed)
	if msg := l.within("a0", 0, 0, 10, "deposits"); msg != "" {
		t.Fatalf("exact value reported: %s", msg)
	}
	if msg := l.within("a1", 1, 0, 0, "deposits"); msg != "" {
		t.Fatalf("a failed operation not applied reported: %s", msg)
	}
	if msg := l.within("a1", 1, 0, 6, "deposits"); msg == "" {
		t.Fatal("more than acknowledged and failed operations allow: not reported")
	}
	if n := l.lost.Load(); n != 0 {
		t.Fatalf("lost %d before anything was lost", n)
	}
	if msg := l.within("a0", 0, 0, 7, "deposits"); msg == "" {
		t.Fatal("an acknowledged deposit lost: not reported")
	}
	if n := l.lost.Load(); n != 1 {
		t.Fatalf("lost %d, want 1", n)
	}
}
