package machine

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// TestOutstandingSet runs random puts and deletes on the set and on a map,
// across the move from slice to map, and compares them after each.
func TestOutstandingSet(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for run := range 50 {
		var s outstandingSet[string]
		ref := map[ActionID]string{}
		span := 4 + run%20 // IDs 1..span: sometimes more than fit the slice
		for op := range 400 {
			id := ActionID(1 + rng.IntN(span))
			if rng.IntN(3) == 0 {
				s.delete(id)
				delete(ref, id)
			} else {
				a := string(rune('a' + op%26))
				s.put(id, a)
				ref[id] = a
			}
			if s.len() != len(ref) {
				t.Fatalf("run %d op %d: len %d, want %d", run, op, s.len(), len(ref))
			}
			if s.m == nil && len(s.small) > outstandingSmall {
				t.Fatalf("run %d op %d: %d in the slice", run, op, len(s.small))
			}
			for id := ActionID(0); id <= ActionID(span)+1; id++ {
				a, ok := s.get(id)
				ra, rok := ref[id]
				if ok != rok || a != ra || s.has(id) != rok {
					t.Fatalf("run %d op %d: get(%d) = %q, %v; want %q, %v", run, op, id, a, ok, ra, rok)
				}
			}
			got := maps.Collect(s.all())
			if !maps.Equal(got, ref) {
				t.Fatalf("run %d op %d: all() = %v, want %v", run, op, got, ref)
			}
		}
		for _, e := range s.small[len(s.small):cap(s.small)] {
			if e != (Tracked[string]{}) {
				t.Fatalf("run %d: deleted entry %v kept alive", run, e)
			}
		}
	}
}

// TestTrimKeepsOnlySmallActionBuffers: Trim empties a small action buffer
// (keeping nothing alive through it) and drops a large one.
func TestTrimKeepsOnlySmallActionBuffers(t *testing.T) {
	d := &Driver[int, int, string, int, int]{out: Actions[string, int]{limit: 10}}
	d.out.tracked = append(d.out.tracked, Tracked[string]{ID: 1, Action: "a"})
	d.out.untracked = append(d.out.untracked, 7)
	d.scratch = make([]byte, 100)
	d.Trim()
	if d.scratch != nil || len(d.out.tracked) != 0 || len(d.out.untracked) != 0 || cap(d.out.tracked) == 0 {
		t.Fatalf("small buffers: scratch %v, tracked %d/%d, untracked %d", d.scratch != nil, len(d.out.tracked), cap(d.out.tracked), len(d.out.untracked))
	}
	if kept := d.out.tracked[:1][0]; kept.Action != "" {
		t.Fatalf("the kept buffer still holds %q", kept.Action)
	}
	for i := range trimKeep + 1 {
		d.out.tracked = append(d.out.tracked, Tracked[string]{ID: ActionID(i), Action: "x"})
	}
	d.Trim()
	if cap(d.out.tracked) != 0 || d.out.limit != 10 {
		t.Fatalf("large buffer kept: cap %d, limit %d", cap(d.out.tracked), d.out.limit)
	}
}
