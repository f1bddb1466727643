package kv_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/phasm-go/phasm/machine/kv"
)

// model is the obviously correct keyspace the tests compare against.
type model map[string]string

func (m model) scan(start, end []byte, limit int) ([]kv.Pair, bool) {
	var keys []string
	for k := range m {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	out := make([]kv.Pair, len(keys))
	for i, k := range keys {
		out[i] = kv.Pair{Key: []byte(k), Value: []byte(m[k])}
	}
	return out, more
}

func randKey(r *rand.Rand) []byte { return []byte(fmt.Sprintf("k%03d", r.IntN(300))) }

func samePairs(t *testing.T, what string, got []kv.Pair, gotMore bool, want []kv.Pair, wantMore bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d pairs, want %d (%q vs %q)", what, len(got), len(want), got, want)
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("%s: pair %d is %q=%q, want %q=%q", what, i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	// more may be conservative only when the page is full.
	if gotMore != wantMore && !(gotMore && len(got) > 0) {
		t.Fatalf("%s: more = %v, want %v", what, gotMore, wantMore)
	}
	if wantMore && !gotMore {
		t.Fatalf("%s: more = false, want true", what)
	}
}

// TestViewMatchesModel drives a view over a Mem (through a Cache with
// pending writes) with random operations and compares every read with the
// model: read-your-writes, ordering, bounds, deletes hiding keys, and
// discard on Reset.
func TestViewMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		mem := kv.NewMem()
		cache := kv.NewCache(mem, 16, 1<<10)
		committed := model{}
		v := kv.NewView(0)
		var seq uint64
		for txn := 0; txn < 60; txn++ {
			v.Reset(cache)
			live := model{}
			for k, val := range committed {
				live[k] = val
			}
			for op := 0; op < 40; op++ {
				switch r.IntN(5) {
				case 0:
					k, val := randKey(r), []byte(fmt.Sprint(r.IntN(1000)))
					if err := v.Set(k, val); err != nil {
						t.Fatal(err)
					}
					live[string(k)] = string(val)
				case 1:
					k := randKey(r)
					if err := v.Delete(k); err != nil {
						t.Fatal(err)
					}
					delete(live, string(k))
				case 2:
					k := randKey(r)
					got, found, err := v.Get(k)
					want, ok := live[string(k)]
					if err != nil || found != ok || string(got) != want {
						t.Fatalf("seed %d: get %s = %q %v %v, want %q %v", seed, k, got, found, err, want, ok)
					}
				default:
					start := randKey(r)
					var end []byte
					if r.IntN(3) > 0 {
						end = []byte(fmt.Sprintf("k%03d", r.IntN(300)+1))
						if bytes.Compare(start, end) >= 0 {
							start, end = end, start
						}
						if bytes.Equal(start, end) {
							continue
						}
					}
					limit := 1 + r.IntN(20)
					got, more, err := v.Scan(start, end, limit)
					if err != nil {
						t.Fatal(err)
					}
					want, wantMore := live.scan(start, end, limit)
					samePairs(t, fmt.Sprintf("seed %d scan [%s,%s) %d", seed, start, end, limit), got, more, want, wantMore)
				}
			}
			if r.IntN(4) == 0 {
				continue // discarded: the next Reset drops the writes
			}
			ws := v.Writes()
			if !slices.IsSortedFunc(ws, func(a, b kv.Write) int { return bytes.Compare(a.Key, b.Key) }) {
				t.Fatal("write set not sorted")
			}
			changes, err := kv.Changes(cache, ws)
			if err != nil {
				t.Fatal(err)
			}
			enc := kv.AppendChanges(nil, changes)
			dec, err := kv.DecodeChanges(enc)
			if err != nil || !bytes.Equal(kv.AppendChanges(nil, dec), enc) {
				t.Fatalf("round trip: %v", err)
			}
			seq++
			cache.Commit(seq, ws)
			committed = live
			// The store catches up with a lag.
			if r.IntN(2) == 0 {
				mem.Apply(kv.Net(pendingUpTo(&pend, seq, ws)...))
				cache.Durable(seq)
			} else {
				pend = append(pend, ws)
			}
		}
		pend = nil
	}
}

var pend [][]kv.Write

func pendingUpTo(p *[][]kv.Write, _ uint64, ws []kv.Write) [][]kv.Write {
	out := append(*p, ws)
	*p = nil
	return out
}

// TestUndo rebuilds an old keyspace from before-images, newest first.
func TestUndo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	mem := kv.NewMem()
	var history [][]kv.Change
	var digests []uint32
	for i := 0; i < 50; i++ {
		digests = append(digests, mem.Digest())
		v := kv.NewView(0)
		v.Reset(mem)
		for j := 0; j < 5; j++ {
			if r.IntN(3) == 0 {
				_ = v.Delete(randKey(r))
			} else {
				_ = v.Set(randKey(r), []byte{byte(i)})
			}
		}
		cs, err := kv.Changes(mem, v.Writes())
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, cs)
		mem.Apply(v.Writes())
	}
	for at := 0; at < 50; at += 7 {
		o := kv.NewOverlay(mem)
		for i := len(history) - 1; i >= at; i-- {
			o.Undo(history[i])
		}
		all, _, err := o.Scan([]byte{0}, nil, kv.MaxScanLimit)
		if err != nil {
			t.Fatal(err)
		}
		rebuilt := kv.NewMem()
		for _, p := range all {
			rebuilt.Set(p.Key, p.Value)
		}
		if rebuilt.Digest() != digests[at] {
			t.Fatalf("undo to %d: keyspace differs", at)
		}
	}
}

type failing struct{ err error }

func (f failing) Get([]byte) ([]byte, bool, error)                  { return nil, false, f.err }
func (f failing) Scan([]byte, []byte, int) ([]kv.Pair, bool, error) { return nil, false, f.err }

func TestReadFailureAndLimits(t *testing.T) {
	boom := errors.New("unreachable")
	v := kv.NewView(2)
	v.Reset(failing{boom})
	if _, _, err := v.Get([]byte("a")); !errors.Is(err, kv.ErrRead) || !errors.Is(err, boom) {
		t.Fatalf("get: %v", err)
	}
	var re *kv.ReadError
	if _, _, err := v.Scan([]byte("a"), nil, 5); !errors.As(err, &re) || re.Op != "scan" {
		t.Fatalf("scan: %v", err)
	}
	if v.ReadErr() == nil {
		t.Fatal("read error not remembered")
	}
	// Written keys read without the source.
	_ = v.Set([]byte("a"), []byte("1"))
	if got, ok, err := v.Get([]byte("a")); err != nil || !ok || string(got) != "1" {
		t.Fatalf("read own write: %q %v %v", got, ok, err)
	}
	_ = v.Set([]byte("b"), nil)
	if err := v.Set([]byte("c"), nil); !errors.Is(err, kv.ErrTooManyWrites) {
		t.Fatalf("third key: %v", err)
	}
	if err := v.Set([]byte("a"), []byte("2")); err != nil {
		t.Fatalf("rewriting a key is not a new write: %v", err)
	}
	if err := v.Set(make([]byte, kv.MaxKeyBytes+1), nil); !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("big key: %v", err)
	}
	if err := v.Set([]byte("a"), make([]byte, kv.MaxValueBytes+1)); !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("big value: %v", err)
	}
	if err := v.Delete(nil); !errors.Is(err, kv.ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	for _, c := range []struct {
		start, end string
		limit      int
	}{{"b", "a", 1}, {"a", "a", 1}, {"a", "b", 0}, {"a", "b", kv.MaxScanLimit + 1}} {
		if _, _, err := v.Scan([]byte(c.start), []byte(c.end), c.limit); !errors.Is(err, kv.ErrInvalid) {
			t.Fatalf("scan %+v: %v", c, err)
		}
	}
	v.Reset(nil)
	if v.Len() != 0 || v.ReadErr() != nil {
		t.Fatal("reset kept the transaction")
	}
	if _, _, err := v.Get([]byte("a")); !errors.Is(err, kv.ErrUnbound) {
		t.Fatalf("unbound: %v", err)
	}
}

func TestDecodeChangesRejectsDamage(t *testing.T) {
	enc := kv.AppendChanges(nil, []kv.Change{
		{Write: kv.Write{Key: []byte("a"), Value: []byte("1")}},
		{Write: kv.Write{Key: []byte("b"), Delete: true}, Prev: []byte("x"), PrevFound: true},
	})
	for i := range enc {
		for _, cut := range []bool{true, false} {
			b := slices.Clone(enc)
			if cut {
				b = b[:i]
			} else {
				b[i] ^= 0xff
			}
			cs, err := kv.DecodeChanges(b)
			if err == nil && !cut && bytes.Equal(kv.AppendChanges(nil, cs), b) {
				continue // a flipped value byte decodes to another valid set
			}
			if err != nil && !errors.Is(err, kv.ErrCorrupt) {
				t.Fatalf("damage at %d: %v", i, err)
			}
		}
	}
	out := kv.AppendChanges(nil, []kv.Change{{Write: kv.Write{Key: []byte("b")}}, {Write: kv.Write{Key: []byte("a")}}})
	if _, err := kv.DecodeChanges(out); !errors.Is(err, kv.ErrCorrupt) {
		t.Fatalf("unsorted keys: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	mem := kv.NewMem()
	for i := 0; i < 100; i++ {
		mem.Set([]byte(fmt.Sprintf("k%03d", i)), []byte("v"))
	}
	c := kv.NewCache(mem, 10, 1<<20)
	for i := 0; i < 100; i++ {
		if _, ok, _ := c.Get([]byte(fmt.Sprintf("k%03d", i))); !ok {
			t.Fatal("missing")
		}
	}
	if c.Cached() != 10 {
		t.Fatalf("cached %d, limit 10", c.Cached())
	}
	c.Get([]byte("k099"))
	if h, _ := c.Stats(); h != 1 {
		t.Fatalf("hits %d", h)
	}
	c.Commit(1, []kv.Write{{Key: []byte("k000"), Delete: true}})
	if _, ok, _ := c.Get([]byte("k000")); ok {
		t.Fatal("pending delete not visible")
	}
	c.Drop()
	if c.Cached() != 0 || c.PendingSteps() != 0 {
		t.Fatal("drop kept data")
	}
	if _, ok, _ := c.Get([]byte("k000")); !ok {
		t.Fatal("dropped pending write still visible")
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{{"a", "b"}, {"a\xff", "b"}, {"\xff", ""}} {
		got := kv.PrefixEnd([]byte(c.in))
		if string(got) != c.want || (c.want == "" && got != nil) {
			t.Fatalf("PrefixEnd(%q) = %q", c.in, got)
		}
	}
}
