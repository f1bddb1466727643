package machine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// refWindow is the request window without an index: a ring scanned on
// every lookup. The indexed window must behave and encode exactly like it.
type refWindow struct {
	max  int
	ring []windowEntry
	next int
}

func (w *refWindow) find(id string) int {
	for i := range w.ring {
		if w.ring[i].id == id {
			return i
		}
	}
	return -1
}

func (w *refWindow) put(id string, err error) {
	if i := w.find(id); i >= 0 {
		w.ring[i].err = err
		return
	}
	e := windowEntry{id: id, err: err}
	if len(w.ring) < w.max {
		w.ring = append(w.ring, e)
		return
	}
	w.ring[w.next] = e
	w.next = (w.next + 1) % w.max
}

// checkWindow verifies that w's index finds every ring entry at its
// position and holds nothing else, and that w answers and encodes as ref.
func checkWindow(t *testing.T, w *requestWindow, ref *refWindow, probes []string) {
	t.Helper()
	if x := w.ix; x != nil {
		n := 0
		for _, s := range x.slots {
			if s.pos != 0 {
				n++
			}
		}
		if n != len(w.ring) {
			t.Fatalf("index holds %d entries, ring %d", n, len(w.ring))
		}
		if 2*len(w.ring) > len(x.slots) {
			t.Fatalf("index of %d slots for %d entries", len(x.slots), len(w.ring))
		}
		if len(x.hashes) != len(w.ring) {
			t.Fatalf("%d hashes for %d entries", len(x.hashes), len(w.ring))
		}
		for i := range w.ring {
			if x.hashes[i] != x.hashOf(w.ring[i].id) {
				t.Fatalf("hash %d is stale", i)
			}
		}
	} else if len(w.ring) > windowScan {
		t.Fatalf("no index for %d entries", len(w.ring))
	}
	for i := range w.ring {
		if pos, _, _ := w.find(w.ring[i].id); pos != i {
			t.Fatalf("entry %d (%q) found at %d", i, w.ring[i].id, pos)
		}
	}
	for _, id := range probes {
		got, gok := w.get(id)
		i := ref.find(id)
		if gok != (i >= 0) || (gok && (got.id != ref.ring[i].id || !SameError(got.err, ref.ring[i].err))) {
			t.Fatalf("get(%q) = %v, %v; reference has index %d", id, got, gok, i)
		}
	}
	want := (&requestWindow{ring: ref.ring, next: ref.next}).appendBinary(nil)
	if got := w.appendBinary(nil); !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from the reference:\n got %x\nwant %x", got, want)
	}
}

// TestRequestWindowIndex puts random IDs (repeats included) into windows
// of several sizes and checks the index against the ring after puts,
// through growth and evictions, and after a decode of the encoding.
func TestRequestWindowIndex(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	for _, max := range []int{1, 5, windowScan, windowScan + 1, 40, windowMinIndex, 300, 1000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(max)))
			// IDs from a pool about twice the window, so puts hit, miss
			// and evict.
			pool := make([]string, 2*max+8)
			for i := range pool {
				pool[i] = fmt.Sprintf("req-%x", rng.Uint64())
			}
			errs := []error{nil, errors.New("rejected"), NewError("x.code", "coded")}
			w := &requestWindow{max: max}
			ref := &refWindow{max: max}
			for op := 0; op < 6*max+50; op++ {
				id := pool[rng.IntN(len(pool))]
				if rng.IntN(4) == 0 {
					w.get(id) // a lookup before the put, as Step does
				}
				e := errs[rng.IntN(len(errs))]
				w.put(id, e)
				ref.put(id, e)
				if max > 300 && op%37 != 0 {
					// Cheap checks on most puts of a large window.
					if got, ok := w.get(id); !ok || !SameError(got.err, e) {
						t.Fatalf("put %q: get = %v, %v", id, got, ok)
					}
					continue
				}
				probes := []string{id, pool[rng.IntN(len(pool))], "absent"}
				if op%17 == 0 || max <= windowMinIndex {
					probes = pool
				}
				checkWindow(t, w, ref, probes)
				if op%5 == 0 {
					d := &requestWindow{max: max}
					if err := d.decode(w.appendBinary(nil)); err != nil {
						t.Fatal(err)
					}
					checkWindow(t, d, ref, pool)
				}
			}
			// A snapshot taken with a larger window, decoded into this
			// one, keeps the newest entries.
			big := &requestWindow{max: 3 * max}
			bigRef := &refWindow{max: 3 * max}
			for _, id := range pool {
				big.put(id, nil)
				bigRef.put(id, nil)
			}
			d := &requestWindow{max: max}
			if err := d.decode(big.appendBinary(nil)); err != nil {
				t.Fatal(err)
			}
			dRef := &refWindow{max: max}
			for _, e := range bigRef.ring[bigRef.next:] {
				dRef.put(e.id, e.err)
			}
			for _, e := range bigRef.ring[:bigRef.next] {
				dRef.put(e.id, e.err)
			}
			checkWindow(t, d, dRef, pool)
		})
	}
}

// TestRequestWindowCollisions puts IDs that all hash to the last two slots
// of the index (what a flood of colliding IDs would do), so their chain
// wraps around the table's end, and checks that deletions by backward
// shift keep every entry reachable.
func TestRequestWindowCollisions(t *testing.T) {
	const max = 30 // the index stays at windowMinIndex slots
	w := &requestWindow{max: max}
	ref := &refWindow{max: max}
	var ids []string
	for i := 0; w.ix == nil; i++ {
		id := fmt.Sprintf("filler-%d", i)
		ids = append(ids, id)
		w.put(id, nil)
		ref.put(id, nil)
	}
	mask := uint32(windowMinIndex - 1)
	for i := 0; len(ids) < 200; i++ {
		id := fmt.Sprintf("c%d", i)
		if w.ix.hashOf(id)&mask < mask-1 {
			continue
		}
		ids = append(ids, id)
		w.put(id, nil)
		ref.put(id, nil)
		if len(w.ix.slots) != windowMinIndex {
			t.Fatalf("index grew to %d slots", len(w.ix.slots))
		}
		checkWindow(t, w, ref, ids)
	}
}
