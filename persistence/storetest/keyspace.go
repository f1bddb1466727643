package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
)

// The keyspace tests check the view's semantics at the store: writes
// journaled in records reach the entity's keyspace atomically with them
// (same compare-and-set, same group commit), ordered bounded scans,
// isolation between entities, and recovery of a database-backed machine.

func keyspaceOf(t *testing.T, s persistence.Store) persistence.Keyspace {
	t.Helper()
	ks, ok := s.(persistence.Keyspace)
	if !ok {
		t.Fatalf("%T does not implement persistence.Keyspace", s)
	}
	return ks
}

// kw is a write in test notation: value "" with del false sets an empty
// value.
type kw struct {
	key, value string
	del        bool
}

// wrec returns record seq carrying the writes (before-images are the
// machine's business; the store only applies the writes).
func wrec(seq uint64, ws ...kw) machine.Record {
	r := recs(seq-1, 1, "kv")[0]
	cs := make([]kv.Change, 0, len(ws))
	for _, w := range ws {
		cs = append(cs, kv.Change{Write: kv.Write{Key: []byte(w.key), Value: []byte(w.value), Delete: w.del}})
	}
	// One write per key, the last one, sorted: what a transaction yields.
	net := kv.Net(kv.WritesOf(cs))
	cs = cs[:0]
	for _, w := range net {
		cs = append(cs, kv.Change{Write: w})
	}
	if len(cs) > 0 {
		r.Writes = kv.AppendChanges(nil, cs)
	}
	return r
}

// keyModel is the expected keyspace of one entity.
type keyModel map[string]string

func (m keyModel) apply(ws ...kw) {
	for _, w := range ws {
		if w.del {
			delete(m, w.key)
		} else {
			m[w.key] = w.value
		}
	}
}

func (m keyModel) sorted(start, end string, hasEnd bool) []kv.Pair {
	var keys []string
	for k := range m {
		if k >= start && (!hasEnd || k < end) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]kv.Pair, len(keys))
	for i, k := range keys {
		out[i] = kv.Pair{Key: []byte(k), Value: []byte(m[k])}
	}
	return out
}

// scanAll pages through [start, end) with pages of limit and checks the
// paging contract on the way.
func scanAll(t *testing.T, ks persistence.Keyspace, e machine.Entity, start, end []byte, limit int) []kv.Pair {
	t.Helper()
	var out []kv.Pair
	cursor := start
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatal("scan does not terminate")
		}
		page, more, err := ks.Scan(ctxFor(t), e, cursor, end, limit)
		if err != nil {
			t.Fatalf("scan %s [%q, %q) limit %d: %v", e, cursor, end, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("scan returned %d pairs, limit %d", len(page), limit)
		}
		for i, p := range page {
			if bytes.Compare(p.Key, cursor) < 0 || (end != nil && bytes.Compare(p.Key, end) >= 0) {
				t.Fatalf("scan [%q, %q) returned key %q outside the range", cursor, end, p.Key)
			}
			if i > 0 && bytes.Compare(page[i-1].Key, p.Key) >= 0 {
				t.Fatalf("scan returned %q after %q: not ascending", p.Key, page[i-1].Key)
			}
		}
		out = append(out, page...)
		if !more {
			return out
		}
		if len(page) == 0 {
			t.Fatal("scan reported more with an empty page")
		}
		last := page[len(page)-1].Key
		cursor = append(slices.Clone(last), 0)
		if end != nil && bytes.Compare(cursor, end) >= 0 {
			return out
		}
	}
}

func samePairs(t *testing.T, what string, got, want []kv.Pair) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d pairs, want %d\ngot  %q\nwant %q", what, len(got), len(want), got, want)
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("%s: pair %d is %q=%q, want %q=%q", what, i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
}

func checkKeyspace(t *testing.T, ks persistence.Keyspace, e machine.Entity, m keyModel) {
	t.Helper()
	samePairs(t, fmt.Sprintf("full scan of %s", e), scanAll(t, ks, e, []byte{0}, nil, kv.MaxScanLimit), m.sorted("\x00", "", false))
	for k, v := range m {
		got, found, err := ks.Get(ctxFor(t), e, []byte(k))
		if err != nil || !found || string(got) != v {
			t.Fatalf("get %s %q = %q %v %v, want %q", e, k, got, found, err, v)
		}
	}
}

func testKeyspace(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	ks := keyspaceOf(t, s)
	e := entityName(t, "cal")
	m := keyModel{}
	// An unknown entity has an empty keyspace.
	if _, found, err := ks.Get(ctxFor(t), e, []byte("x")); err != nil || found {
		t.Fatalf("get on an unknown entity: %v %v", found, err)
	}
	if p, more, err := ks.Scan(ctxFor(t), e, []byte("a"), nil, 10); err != nil || len(p) != 0 || more {
		t.Fatalf("scan on an unknown entity: %q %v %v", p, more, err)
	}
	first := []kw{{key: "d", value: "4"}, {key: "b", value: "2"}, {key: "a", value: "1"}, {key: "c", value: "3"}, {key: "e", value: ""}, {key: "b\x00", value: "2.5"}, {key: "\xff\xff", value: "top"}}
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: []machine.Record{wrec(1, first...)}})
	m.apply(first...)
	checkKeyspace(t, ks, e, m)
	// Several records in one append fold in order: the last write wins.
	second := []kw{{key: "b", del: true}, {key: "c", value: "33"}, {key: "f", value: "6"}}
	third := []kw{{key: "c", value: "333"}, {key: "f", del: true}, {key: "zz", del: true}}
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{wrec(2, second...), recs(2, 1, "plain")[0], wrec(4, third...)}})
	m.apply(second...)
	m.apply(third...)
	checkKeyspace(t, ks, e, m)
	if _, found, _ := ks.Get(ctxFor(t), e, []byte("b")); found {
		t.Fatal("deleted key still found")
	}
	// An empty value is a value.
	if v, found, err := ks.Get(ctxFor(t), e, []byte("e")); err != nil || !found || len(v) != 0 {
		t.Fatalf("empty value: %q %v %v", v, found, err)
	}
	// Bounds: start inclusive, end exclusive; limit and more.
	for _, c := range []struct {
		start, end string
		limit      int
	}{{"b", "d", 10}, {"a", "b\x00", 10}, {"a", "\xff", 1}, {"a", "\xff", 2}, {"c", "", 3}, {"0", "a", 5}, {"zz", "", 5}} {
		var end []byte
		if c.end != "" {
			end = []byte(c.end)
		}
		want := m.sorted(c.start, c.end, end != nil)
		page, more, err := ks.Scan(ctxFor(t), e, []byte(c.start), end, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		n := min(c.limit, len(want))
		samePairs(t, fmt.Sprintf("scan [%q, %q) limit %d", c.start, c.end, c.limit), page, want[:n])
		if more != (len(want) > c.limit) {
			t.Fatalf("scan [%q, %q) limit %d: more = %v with %d keys in range", c.start, c.end, c.limit, more, len(want))
		}
		samePairs(t, "paged scan", scanAll(t, ks, e, []byte(c.start), end, c.limit), want)
	}
	// A snapshot-only append leaves the keyspace alone.
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 4, Snapshot: snap(4, "kv")})
	checkKeyspace(t, ks, e, m)
	// Bad reads are invalid requests, not empty answers.
	for name, err := range map[string]error{
		"empty key":     func() error { _, _, err := ks.Get(ctxFor(t), e, nil); return err }(),
		"huge key":      func() error { _, _, err := ks.Get(ctxFor(t), e, make([]byte, kv.MaxKeyBytes+1)); return err }(),
		"empty entity":  func() error { _, _, err := ks.Get(ctxFor(t), machine.Entity{}, []byte("a")); return err }(),
		"inverted scan": func() error { _, _, err := ks.Scan(ctxFor(t), e, []byte("b"), []byte("a"), 1); return err }(),
		"zero limit":    func() error { _, _, err := ks.Scan(ctxFor(t), e, []byte("a"), nil, 0); return err }(),
		"huge limit":    func() error { _, _, err := ks.Scan(ctxFor(t), e, []byte("a"), nil, kv.MaxScanLimit+1); return err }(),
	} {
		if !errors.Is(err, persistence.ErrInvalidRequest) {
			t.Errorf("%s: got %v, want ErrInvalidRequest", name, err)
		}
	}
	// A write set that does not decode is refused before anything is queued.
	bad := wrec(5, kw{key: "x", value: "1"})
	bad.Writes = bad.Writes[:len(bad.Writes)-1]
	if err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: 4, Records: []machine.Record{bad}}); !errors.Is(err, persistence.ErrInvalidRequest) {
		t.Fatalf("append with a damaged write set: %v", err)
	}
	checkKeyspace(t, ks, e, m)
}

// testKeyspaceIsolation: entities whose names are prefixes of each other,
// or that share an ID across kinds, never see each other's keys.
func testKeyspaceIsolation(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	ks := keyspaceOf(t, s)
	base := entityName(t, "")
	ents := []machine.Entity{
		{Kind: base.Kind, ID: "a"}, {Kind: base.Kind, ID: "ab"}, {Kind: base.Kind, ID: "a\x01"},
		{Kind: base.Kind + "a", ID: "b"}, {Kind: base.Kind, ID: "ab\x01"},
	}
	models := make([]keyModel, len(ents))
	for i, e := range ents {
		models[i] = keyModel{}
		ws := []kw{{key: "k", value: e.String()}, {key: fmt.Sprintf("only-%d", i), value: "x"}, {key: "\x01", value: "low"}}
		mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: []machine.Record{wrec(1, ws...)}})
		models[i].apply(ws...)
	}
	// Deleting in one entity leaves the others.
	mustAppend(t, s, persistence.AppendRequest{Entity: ents[0], ExpectedSeq: 1, Records: []machine.Record{wrec(2, kw{key: "k", del: true})}})
	models[0].apply(kw{key: "k", del: true})
	for i, e := range ents {
		checkKeyspace(t, ks, e, models[i])
	}
}

// testKeyspaceAtomic: a failed compare-and-set writes none of the
// append's keys; in a group with winners and losers only winners write.
func testKeyspaceAtomic(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	ks := keyspaceOf(t, s)
	e := entityName(t, "x")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: []machine.Record{wrec(1, kw{key: "a", value: "1"})}})
	err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: 0, Records: []machine.Record{wrec(1, kw{key: "a", value: "lost"}, kw{key: "b", value: "lost"})}})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("conflicting append: %v", err)
	}
	checkKeyspace(t, ks, e, keyModel{"a": "1"})

	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		ent := entityName(t, fmt.Sprint("g", i))
		mustAppend(t, s, persistence.AppendRequest{Entity: ent, Records: []machine.Record{wrec(1, kw{key: "base", value: "0"})}})
		expected := uint64(1)
		if i%2 == 1 {
			expected = 3 // wrong
		}
		wg.Add(1)
		s.AppendAsync(persistence.AppendRequest{Entity: ent, ExpectedSeq: expected,
			Records: []machine.Record{wrec(expected+1, kw{key: "base", del: true}, kw{key: "new", value: "1"})}},
			func(err error) { errs[i] = err; wg.Done() })
	}
	wg.Wait()
	for i := range n {
		ent := entityName(t, fmt.Sprint("g", i))
		if i%2 == 1 {
			if !errors.Is(errs[i], persistence.ErrConflict) {
				t.Fatalf("entity %d: %v", i, errs[i])
			}
			checkKeyspace(t, ks, ent, keyModel{"base": "0"})
			continue
		}
		if errs[i] != nil {
			t.Fatalf("entity %d: %v", i, errs[i])
		}
		checkKeyspace(t, ks, ent, keyModel{"new": "1"})
	}
}

// testKeyspaceModel pipelines random write sets to several entities and
// compares every keyspace with a model, with random scan bounds.
func testKeyspaceModel(t *testing.T, h Harness) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	s := h.Open(t, Config{})
	ks := keyspaceOf(t, s)
	const ents, appends = 8, 25
	models := make([]keyModel, ents)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for i := range ents {
		models[i] = keyModel{}
		e := entityName(t, fmt.Sprint(i))
		seq := uint64(0)
		for range appends {
			var rs []machine.Record
			for range 1 + rng.IntN(3) {
				var ws []kw
				for range rng.IntN(6) {
					k := fmt.Sprintf("%02x", rng.IntN(40))
					if rng.IntN(3) == 0 {
						ws = append(ws, kw{key: k, del: true})
					} else {
						ws = append(ws, kw{key: k, value: fmt.Sprint(rng.IntN(1000))})
					}
				}
				seq++
				rs = append(rs, wrec(seq, ws...))
				models[i].apply(ws...)
			}
			wg.Add(1)
			s.AppendAsync(persistence.AppendRequest{Entity: e, ExpectedSeq: seq - uint64(len(rs)), Records: rs}, func(err error) {
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("pipelined appends failed: %v", failed[0])
	}
	for i := range ents {
		e := entityName(t, fmt.Sprint(i))
		checkKeyspace(t, ks, e, models[i])
		for range 20 {
			a, b := fmt.Sprintf("%02x", rng.IntN(41)), fmt.Sprintf("%02x", rng.IntN(41))
			if a == b {
				continue
			}
			if a > b {
				a, b = b, a
			}
			limit := 1 + rng.IntN(7)
			samePairs(t, fmt.Sprintf("scan [%s, %s) by %d", a, b, limit), scanAll(t, ks, e, []byte(a), []byte(b), limit), models[i].sorted(a, b, true))
		}
	}
}

// ledger is the suite's database-backed machine: each input adds an entry
// key and may delete an older one; the in-memory part counts.
type ledger struct{}

type ledgerState struct {
	Entries, Deleted uint64
	view             *kv.View `phasm:"-"`
}

func (s *ledgerState) BindView(v *kv.View) { s.view = v }

type ledgerInput struct{ N uint64 }

func ledgerKey(n uint64) []byte { return []byte(fmt.Sprintf("e/%08d", n)) }

// errReadYourWrites is what the ledger returns when its reads do not see
// its own writes; the test fails on it.
var errReadYourWrites = machine.NewError("st.ryw", "storetest: a read did not see the transaction's own write")

func (ledger) Transition(s *ledgerState, in machine.Input[ledgerInput, machine.None], _ *machine.Actions[machine.None, machine.None]) error {
	key := ledgerKey(s.Entries + 1)
	value := []byte(fmt.Sprint(in.Value.N))
	if err := s.view.Set(key, value); err != nil {
		return err
	}
	// Read-your-writes, by key and by scan.
	got, found, err := s.view.Get(key)
	if err != nil {
		return err
	}
	pairs, _, err := s.view.Scan([]byte("e/"), kv.PrefixEnd([]byte("e/")), kv.MaxScanLimit)
	if err != nil {
		return err
	}
	if !found || string(got) != string(value) || uint64(len(pairs)) != s.Entries+1-s.Deleted {
		return errReadYourWrites
	}
	if in.Value.N == 0 {
		return errZero // after writing: the write must be discarded
	}
	s.Entries++
	// Ordered scans: delete the oldest entry every third input.
	if s.Entries%3 == 0 {
		pairs, _, err := s.view.Scan([]byte("e/"), kv.PrefixEnd([]byte("e/")), 1)
		if err != nil {
			return err
		}
		if err := s.view.Delete(pairs[0].Key); err != nil {
			return err
		}
		s.Deleted++
	}
	return nil
}

func (ledger) Restore(*ledgerState, *machine.Actions[machine.None, machine.None]) error { return nil }

// testKeyspaceRecover runs a database-backed machine against the store
// (appends with snapshots) and recovers it from the store: snapshot,
// journal tail and keyspace must rebuild the same entity.
func testKeyspaceRecover(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	ks := keyspaceOf(t, s)
	k, err := machine.NewKind[ledgerState, ledgerInput, machine.None, machine.None, machine.None]("st-ledger", ledger{},
		machine.Options[ledgerState, ledgerInput, machine.None, machine.None, machine.None]{})
	if err != nil {
		t.Fatal(err)
	}
	e := machine.Entity{Kind: k.Name(), ID: entityName(t, "l").Kind}
	d, err := k.NewDriver(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	cache := kv.NewCache(persistence.Source(ks, e, 0), 0, 0)
	d.SetSource(cache)
	var fx machine.Effects[machine.None, machine.None]
	for i := uint64(1); i <= 40; i++ {
		fx.Reset()
		expected := d.Seq()
		in := machine.Input[ledgerInput, machine.None]{Value: ledgerInput{N: i % 7}, RequestID: fmt.Sprint("r", i)}
		out, err := d.Step(in, &fx)
		if err != nil {
			t.Fatal(err)
		}
		if errors.Is(out.Err, errReadYourWrites) {
			t.Fatalf("input %d: %v", i, out.Err)
		}
		if (i%7 == 0) != (out.Status == machine.Rejected) {
			t.Fatalf("input %d: %v %v", i, out.Status, out.Err)
		}
		req := persistence.AppendRequest{Entity: e, ExpectedSeq: expected, Records: fx.Records}
		if i%11 == 0 {
			sn, err := d.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			req.Snapshot = &sn
		}
		mustAppend(t, s, req)
		cache.Durable(d.Seq())
	}
	l := mustLoad(t, s, e)
	d2, err := k.RecoverFrom(e.ID, l.Snapshot, l.Records, persistence.Source(ks, e, 0))
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if withoutView(*d2.State()) != withoutView(*d.State()) || d2.Seq() != d.Seq() {
		t.Fatalf("recovered %+v at %d, want %+v at %d", *d2.State(), d2.Seq(), *d.State(), d.Seq())
	}
	want := keyModel{}
	all := scanAll(t, ks, e, []byte("e/"), nil, 7)
	for _, p := range all {
		want[string(p.Key)] = string(p.Value)
	}
	if uint64(len(want)) != d.State().Entries-d.State().Deleted {
		t.Fatalf("keyspace holds %d entries, machine says %d", len(want), d.State().Entries-d.State().Deleted)
	}
	// The recovered entity keeps going where the first left off.
	fx.Reset()
	if _, err := d2.Step(machine.Input[ledgerInput, machine.None]{Value: ledgerInput{N: 1}}, &fx); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: d.Seq(), Records: fx.Records})
}

func withoutView(s ledgerState) ledgerState { s.view = nil; return s }

// testKeyspaceRestart: keyspaces are durable like journals.
func testKeyspaceRestart(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness has no Reopen hook")
	}
	s := h.Open(t, Config{})
	e := entityName(t, "r")
	ws := []kw{{key: "a", value: "1"}, {key: "b", value: "2"}}
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: []machine.Record{wrec(1, ws...)}})
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{wrec(2, kw{key: "a", del: true})}})
	s = h.Reopen(t, s)
	checkKeyspace(t, keyspaceOf(t, s), e, keyModel{"b": "2"})
}
