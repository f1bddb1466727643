package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// Config is what a test needs from the store it opens; zero fields mean
// the backend's defaults.
type Config struct {
	MaxQueue        int
	MaxRecordBytes  int
	MaxBatchRecords int
	RetainJournal   bool
}

// Harness connects the suite to one backend.
type Harness struct {
	// Open returns a fresh, empty store configured by cfg. It registers its
	// own cleanup with t (closing a store twice must be harmless).
	Open func(t *testing.T, cfg Config) persistence.Store
	// Reopen simulates a restart of the process: it closes or crashes s and
	// returns a store over the same durable data. Nil skips the restart
	// tests.
	Reopen func(t *testing.T, s persistence.Store) persistence.Store
	// Corrupt damages what is stored for e: the record seq (snapshot false)
	// or the snapshot (snapshot true), and returns the store to use
	// afterwards (it may reopen). Nil skips the corruption tests.
	Corrupt func(t *testing.T, s persistence.Store, e machine.Entity, seq uint64, snapshot bool) persistence.Store
	// Fences says the store fences appends on AppendRequest.Epoch (a store
	// several nodes share must); false skips the fence test.
	Fences bool
	// StoredSeqs lists the journal sequence numbers physically stored for e,
	// ascending, to check truncation. Nil skips that check.
	StoredSeqs func(t *testing.T, s persistence.Store, e machine.Entity) []uint64
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"SnapshotAndTail", testSnapshotAndTail},
		{"Truncation", testTruncation},
		{"InvalidRequests", testInvalidRequests},
		{"TooLarge", testTooLarge},
		{"Conflict", testConflict},
		{"RacingWriters", testRacingWriters},
		{"GroupCommit", testGroupCommit},
		{"MixedOutcomesInOneGroup", testMixedOutcomes},
		{"PipelinedAppendsKeepOrder", testPipelined},
		{"ReplayThroughRecover", testReplay},
		{"Pending", testPending},
		{"Corruption", testCorruption},
		{"ContextCancellation", testContext},
		{"Closed", testClosed},
		{"Overload", testOverload},
		{"Restart", testRestart},
		{"Keyspace", testKeyspace},
		{"KeyspaceIsolation", testKeyspaceIsolation},
		{"KeyspaceAtomicWithJournal", testKeyspaceAtomic},
		{"KeyspaceMatchesModel", testKeyspaceModel},
		{"KeyspaceRecoverDatabaseBackedEntity", testKeyspaceRecover},
		{"KeyspaceRestart", testKeyspaceRestart},
		{"EpochFence", testEpochFence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// waitLimit bounds every wait in the suite; it is a failure bound, never a
// timing assertion.
const waitLimit = 60 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// entityName returns an entity unique to the test (stores may be shared
// by a backend between subtests).
func entityName(t *testing.T, id string) machine.Entity {
	return machine.Entity{Kind: "st-" + t.Name(), ID: id}
}

// recs returns records from+1 .. from+n with payloads naming tag.
func recs(from uint64, n int, tag string) []machine.Record {
	out := make([]machine.Record, n)
	for i := range out {
		seq := from + 1 + uint64(i)
		out[i] = machine.Record{
			Seq:       seq,
			Kind:      machine.RecordInput,
			Time:      int64(seq) * 1000,
			RequestID: fmt.Sprintf("%s-%d", tag, seq),
			Payload:   []byte(fmt.Sprintf("payload %s %d", tag, seq)),
			Digest:    uint32(seq),
			HasDigest: seq%2 == 0,
		}
	}
	return out
}

func mustAppend(t *testing.T, s persistence.Store, req persistence.AppendRequest) {
	t.Helper()
	if err := s.Append(ctxFor(t), req); err != nil {
		t.Fatalf("append %s expected %d: %v", req.Entity, req.ExpectedSeq, err)
	}
}

func mustLoad(t *testing.T, s persistence.Store, e machine.Entity) persistence.Loaded {
	t.Helper()
	l, err := s.Load(ctxFor(t), e)
	if err != nil {
		t.Fatalf("load %s: %v", e, err)
	}
	return l
}

func sameRecord(a, b machine.Record) bool {
	return a.Seq == b.Seq && a.Kind == b.Kind && a.Time == b.Time && a.RequestID == b.RequestID &&
		a.ActionID == b.ActionID && string(a.Payload) == string(b.Payload) && string(a.Err) == string(b.Err) &&
		a.HasDigest == b.HasDigest && (!a.HasDigest || a.Digest == b.Digest) && string(a.Writes) == string(b.Writes)
}

func checkRecords(t *testing.T, got, want []machine.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records (%v), want %d", len(got), seqsOf(got), len(want))
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func seqsOf(rs []machine.Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func testRoundTrip(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	e := entityName(t, "a")
	l := mustLoad(t, s, e)
	if l.LastSeq != 0 || l.Snapshot != nil || len(l.Records) != 0 {
		t.Fatalf("unknown entity: got %+v, want nothing", l)
	}
	all := recs(0, 5, "rt")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 0, Records: all[:3]})
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 3, Records: all[3:]})
	l = mustLoad(t, s, e)
	if l.LastSeq != 5 || l.Snapshot != nil {
		t.Fatalf("got LastSeq %d snapshot %v, want 5 and none", l.LastSeq, l.Snapshot)
	}
	checkRecords(t, l.Records, all)

	// Entities whose kind and ID concatenate alike stay apart.
	e1 := machine.Entity{Kind: e.Kind + "x", ID: "y"}
	e2 := machine.Entity{Kind: e.Kind, ID: "xy"}
	mustAppend(t, s, persistence.AppendRequest{Entity: e1, Records: recs(0, 1, "e1")})
	mustAppend(t, s, persistence.AppendRequest{Entity: e2, Records: recs(0, 2, "e2")})
	checkRecords(t, mustLoad(t, s, e1).Records, recs(0, 1, "e1"))
	checkRecords(t, mustLoad(t, s, e2).Records, recs(0, 2, "e2"))
}

func snap(seq uint64, tag string) *machine.Snapshot {
	return &machine.Snapshot{Seq: seq, State: []byte(fmt.Sprintf("state %s %d", tag, seq)), Requests: []byte{0}, Outstanding: []byte{0}}
}

func checkSnapshot(t *testing.T, got, want *machine.Snapshot) {
	t.Helper()
	if got == nil || want == nil {
		if got != want {
			t.Fatalf("snapshot: got %v, want %v", got, want)
		}
		return
	}
	if got.Seq != want.Seq || string(got.State) != string(want.State) ||
		string(got.Requests) != string(want.Requests) || string(got.Outstanding) != string(want.Outstanding) {
		t.Fatalf("snapshot: got %+v, want %+v", got, want)
	}
}

func testSnapshotAndTail(t *testing.T, h Harness) {
	for _, retain := range []bool{false, true} {
		t.Run(fmt.Sprintf("RetainJournal=%v", retain), func(t *testing.T) {
			s := h.Open(t, Config{RetainJournal: retain})
			e := entityName(t, "a")
			all := recs(0, 9, "st")
			// A snapshot in the middle of the records it rides with.
			mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: all[:5], Snapshot: snap(3, "st")})
			l := mustLoad(t, s, e)
			checkSnapshot(t, l.Snapshot, snap(3, "st"))
			checkRecords(t, l.Records, all[3:5])
			if l.LastSeq != 5 {
				t.Fatalf("LastSeq %d, want 5", l.LastSeq)
			}
			mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 5, Records: all[5:7]})
			l = mustLoad(t, s, e)
			checkSnapshot(t, l.Snapshot, snap(3, "st"))
			checkRecords(t, l.Records, all[3:7])
			// A snapshot-only append at the last seq; then a newer one
			// replaces it.
			mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 7, Snapshot: snap(7, "st")})
			l = mustLoad(t, s, e)
			checkSnapshot(t, l.Snapshot, snap(7, "st"))
			if len(l.Records) != 0 || l.LastSeq != 7 {
				t.Fatalf("after snapshot at the end: records %v LastSeq %d, want none and 7", seqsOf(l.Records), l.LastSeq)
			}
			mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 7, Records: all[7:9], Snapshot: snap(9, "st2")})
			l = mustLoad(t, s, e)
			checkSnapshot(t, l.Snapshot, snap(9, "st2"))
			if len(l.Records) != 0 || l.LastSeq != 9 {
				t.Fatalf("records %v LastSeq %d, want none and 9", seqsOf(l.Records), l.LastSeq)
			}
		})
	}
}

func testTruncation(t *testing.T, h Harness) {
	if h.StoredSeqs == nil {
		t.Skip("the harness has no StoredSeqs hook")
	}
	for _, retain := range []bool{false, true} {
		t.Run(fmt.Sprintf("RetainJournal=%v", retain), func(t *testing.T) {
			s := h.Open(t, Config{RetainJournal: retain})
			e := entityName(t, "a")
			other := entityName(t, "b")
			all := recs(0, 8, "tr")
			mustAppend(t, s, persistence.AppendRequest{Entity: other, Records: recs(0, 3, "o")})
			mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: all[:4]})
			mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 4, Records: all[4:6], Snapshot: snap(5, "tr")})
			got := h.StoredSeqs(t, s, e)
			want := []uint64{6}
			if retain {
				want = []uint64{1, 2, 3, 4, 5, 6}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("stored seqs %v, want %v", got, want)
			}
			if got := h.StoredSeqs(t, s, other); !slices.Equal(got, []uint64{1, 2, 3}) {
				t.Fatalf("another entity's journal was touched: %v", got)
			}
		})
	}
}

func testInvalidRequests(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	e := entityName(t, "a")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: recs(0, 2, "ok")})
	bad := map[string]persistence.AppendRequest{
		"empty kind":          {Entity: machine.Entity{ID: "x"}, Records: recs(0, 1, "x")},
		"empty ID":            {Entity: machine.Entity{Kind: e.Kind}, Records: recs(0, 1, "x")},
		"nothing to write":    {Entity: e, ExpectedSeq: 2},
		"gap before":          {Entity: e, ExpectedSeq: 2, Records: recs(3, 1, "x")},
		"gap inside":          {Entity: e, ExpectedSeq: 2, Records: append(recs(2, 1, "x"), recs(4, 1, "x")...)},
		"snapshot beyond":     {Entity: e, ExpectedSeq: 2, Records: recs(2, 1, "x"), Snapshot: snap(4, "x")},
		"snapshot at zero":    {Entity: e, ExpectedSeq: 2, Records: recs(2, 1, "x"), Snapshot: snap(0, "x")},
		"snapshot-only ahead": {Entity: e, ExpectedSeq: 2, Snapshot: snap(3, "x")},
	}
	for name, req := range bad {
		err := s.Append(ctxFor(t), req)
		if !errors.Is(err, persistence.ErrInvalidRequest) {
			t.Errorf("%s: got %v, want ErrInvalidRequest", name, err)
		}
		done := make(chan error, 1)
		s.AppendAsync(req, func(err error) { done <- err })
		if err := <-done; !errors.Is(err, persistence.ErrInvalidRequest) {
			t.Errorf("%s (async): got %v, want ErrInvalidRequest", name, err)
		}
	}
	l := mustLoad(t, s, e)
	if l.LastSeq != 2 || l.Snapshot != nil {
		t.Fatalf("invalid requests wrote something: %+v", l)
	}
}

func testTooLarge(t *testing.T, h Harness) {
	s := h.Open(t, Config{MaxRecordBytes: 1024, MaxBatchRecords: 4})
	e := entityName(t, "a")
	big := recs(0, 1, "big")
	big[0].Payload = make([]byte, 2000)
	err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, Records: big})
	var tl *persistence.TooLargeError
	if !errors.Is(err, persistence.ErrTooLarge) || !errors.As(err, &tl) {
		t.Fatalf("oversized record: got %v, want a *TooLargeError", err)
	}
	if tl.Seq != 1 || tl.Limit != 1024 || tl.Size <= 2000 || tl.Entity != e {
		t.Fatalf("oversized record: got %+v", tl)
	}
	err = s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, Records: recs(0, 5, "many")})
	if !errors.As(err, &tl) || tl.What != "batch records" || tl.Size != 5 || tl.Limit != 4 {
		t.Fatalf("oversized batch: got %v", err)
	}
	if l := mustLoad(t, s, e); l.LastSeq != 0 {
		t.Fatalf("oversized requests wrote something: %+v", l)
	}
	// The limits are inclusive.
	ok := recs(0, 4, "ok")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: ok})
}

func testConflict(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	e := entityName(t, "a")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: recs(0, 2, "first")})
	for _, expected := range []uint64{0, 1, 3, 7} {
		err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: expected, Records: recs(expected, 1, "second")})
		var ce *persistence.ConflictError
		if !errors.Is(err, persistence.ErrConflict) || !errors.As(err, &ce) {
			t.Fatalf("expected %d: got %v, want a *ConflictError", expected, err)
		}
		if ce.Entity != e || ce.ExpectedSeq != expected || (ce.Known && ce.ActualSeq != 2) {
			t.Fatalf("expected %d: got %+v", expected, ce)
		}
	}
	// A conflicting snapshot-only request writes nothing either.
	err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Snapshot: snap(1, "x"), Pending: true, Shard: 1})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("snapshot-only conflict: got %v", err)
	}
	l := mustLoad(t, s, e)
	checkRecords(t, l.Records, recs(0, 2, "first"))
	if l.Snapshot != nil {
		t.Fatal("a conflicting request wrote its snapshot")
	}
	if p, err := s.Pending(ctxFor(t), 1); err != nil || slices.Contains(p, e) {
		t.Fatalf("a conflicting request changed the pending index: %v %v", p, err)
	}
}

func testRacingWriters(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	const rounds = 100
	for i := range rounds {
		e := entityName(t, fmt.Sprint(i))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[w] = s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, Records: recs(0, w+1, fmt.Sprint("w", w))})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: both writers won", i)
				}
				winner = w
			case !errors.Is(err, persistence.ErrConflict):
				t.Fatalf("round %d: writer %d: %v", i, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", i)
		}
		l := mustLoad(t, s, e)
		checkRecords(t, l.Records, recs(0, winner+1, fmt.Sprint("w", winner)))
	}
}

func testGroupCommit(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	const writers, each = 256, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := entityName(t, fmt.Sprint(w))
			for i := range each {
				req := persistence.AppendRequest{Entity: e, ExpectedSeq: uint64(i), Records: recs(uint64(i), 1, "g"), Shard: uint32(w % 4), Pending: i%2 == 0}
				var err error
				if w%2 == 0 {
					err = s.Append(ctxFor(t), req)
				} else {
					done := make(chan error, 1)
					s.AppendAsync(req, func(err error) { done <- err })
					err = <-done
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		l := mustLoad(t, s, entityName(t, fmt.Sprint(w)))
		checkRecords(t, l.Records, recs(0, each, "g"))
	}
}

// testMixedOutcomes submits, all at once, good and conflicting appends for
// many entities, so that they share commit groups: each caller must get
// its own outcome and only the good ones may be written.
func testMixedOutcomes(t *testing.T, h Harness) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	s := h.Open(t, Config{})
	const n = 512
	good := make([]bool, n)
	results := make([]chan error, n)
	for i := range n {
		e := entityName(t, fmt.Sprint(i))
		mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: recs(0, 1, "base")})
		good[i] = rng.IntN(2) == 0
	}
	for i := range n {
		e := entityName(t, fmt.Sprint(i))
		expected := uint64(1)
		if !good[i] {
			expected = uint64(rng.IntN(2) * 5) // 0 or 5: both wrong
		}
		results[i] = make(chan error, 1)
		ch := results[i]
		s.AppendAsync(persistence.AppendRequest{Entity: e, ExpectedSeq: expected, Records: recs(expected, 2, "mixed"), Shard: 7, Pending: true},
			func(err error) { ch <- err })
	}
	for i := range n {
		err := <-results[i]
		e := entityName(t, fmt.Sprint(i))
		l := mustLoad(t, s, e)
		if good[i] {
			if err != nil {
				t.Fatalf("entity %d: good append failed: %v", i, err)
			}
			if l.LastSeq != 3 {
				t.Fatalf("entity %d: LastSeq %d, want 3", i, l.LastSeq)
			}
			continue
		}
		if !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("entity %d: conflicting append: got %v", i, err)
		}
		checkRecords(t, l.Records, recs(0, 1, "base"))
	}
	pending, err := s.Pending(ctxFor(t), 7)
	if err != nil {
		t.Fatal(err)
	}
	var want []machine.Entity
	for i := range n {
		if good[i] {
			want = append(want, entityName(t, fmt.Sprint(i)))
		}
	}
	sortEntities(want)
	if !slices.Equal(pending, want) {
		t.Fatalf("pending index has %d entities, want the %d that won", len(pending), len(want))
	}
}

func sortEntities(es []machine.Entity) {
	slices.SortFunc(es, func(a, b machine.Entity) int {
		if c := compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return compare(a.ID, b.ID)
	})
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testPipelined: a caller may queue the next append for an entity before
// the previous one is acknowledged; appends to one entity are applied in
// submission order.
func testPipelined(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	const entities, depth = 32, 16
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range entities {
		e := entityName(t, fmt.Sprint(i))
		for j := range depth {
			wg.Add(1)
			s.AppendAsync(persistence.AppendRequest{Entity: e, ExpectedSeq: uint64(2 * j), Records: recs(uint64(2*j), 2, "p")}, func(err error) {
				defer wg.Done()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d pipelined appends failed, first: %v", n, firstErr.Load())
	}
	for i := range entities {
		checkRecords(t, mustLoad(t, s, entityName(t, fmt.Sprint(i))).Records, recs(0, 2*depth, "p"))
	}
}

func testPending(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	a, b, c := entityName(t, "a"), entityName(t, "b"), entityName(t, "c")
	mustAppend(t, s, persistence.AppendRequest{Entity: a, Shard: 1, Records: recs(0, 1, "p"), Pending: true})
	mustAppend(t, s, persistence.AppendRequest{Entity: b, Shard: 1, Records: recs(0, 1, "p"), Pending: true})
	mustAppend(t, s, persistence.AppendRequest{Entity: c, Shard: 2, Records: recs(0, 1, "p"), Pending: true})
	check := func(shard uint32, want ...machine.Entity) {
		t.Helper()
		got, err := s.Pending(ctxFor(t), shard)
		if err != nil {
			t.Fatal(err)
		}
		var mine []machine.Entity // other tests may share the store
		for _, e := range got {
			if e.Kind == a.Kind {
				mine = append(mine, e)
			}
		}
		if !slices.Equal(mine, want) {
			t.Fatalf("pending in shard %d: got %v, want %v", shard, mine, want)
		}
	}
	check(1, a, b)
	check(2, c)
	check(3)
	// Cleared by the next append that says so; a snapshot-only append too.
	mustAppend(t, s, persistence.AppendRequest{Entity: a, Shard: 1, ExpectedSeq: 1, Records: recs(1, 1, "p")})
	check(1, b)
	mustAppend(t, s, persistence.AppendRequest{Entity: b, Shard: 1, ExpectedSeq: 1, Snapshot: snap(1, "p")})
	check(1)
	// Set again; and an entity that moved shards is listed only in its new one.
	mustAppend(t, s, persistence.AppendRequest{Entity: a, Shard: 1, ExpectedSeq: 2, Records: recs(2, 1, "p"), Pending: true})
	mustAppend(t, s, persistence.AppendRequest{Entity: c, Shard: 3, ExpectedSeq: 1, Records: recs(1, 1, "p"), Pending: true})
	check(1, a)
	check(2)
	check(3, c)
	if h.Reopen != nil {
		s = h.Reopen(t, s)
		check(1, a)
		check(3, c)
	}
}

func testCorruption(t *testing.T, h Harness) {
	if h.Corrupt == nil {
		t.Skip("the harness has no Corrupt hook")
	}
	s := h.Open(t, Config{})
	e := entityName(t, "rec")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: recs(0, 4, "c")})
	s = h.Corrupt(t, s, e, 3, false)
	_, err := s.Load(ctxFor(t), e)
	checkCorruption(t, err, e, 3)

	e2 := entityName(t, "snap")
	mustAppend(t, s, persistence.AppendRequest{Entity: e2, Records: recs(0, 4, "c"), Snapshot: snap(2, "c")})
	s = h.Corrupt(t, s, e2, 2, true)
	_, err = s.Load(ctxFor(t), e2)
	checkCorruption(t, err, e2, 2)

	// Other entities are unaffected.
	e3 := entityName(t, "fine")
	mustAppend(t, s, persistence.AppendRequest{Entity: e3, Records: recs(0, 2, "c")})
	checkRecords(t, mustLoad(t, s, e3).Records, recs(0, 2, "c"))
}

func checkCorruption(t *testing.T, err error, e machine.Entity, seq uint64) {
	t.Helper()
	var ce *persistence.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("load of damaged data: got %v, want a *CorruptionError", err)
	}
	if !errors.Is(err, persistence.ErrCorrupt) || !errors.Is(err, machine.ErrCorrupt) {
		t.Fatalf("%v: does not match persistence.ErrCorrupt and machine.ErrCorrupt", err)
	}
	if ce.Entity != e || ce.Seq != seq {
		t.Fatalf("%v: names entity %s seq %d, want %s seq %d", err, ce.Entity, ce.Seq, e, seq)
	}
}

func testContext(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	e := entityName(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: recs(0, 1, "x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: got %v", err)
	}
	if _, err := s.Load(ctx, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("load with a cancelled context: got %v", err)
	}
	if _, err := s.Pending(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("pending with a cancelled context: got %v", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer dcancel()
	if err := s.Append(dctx, persistence.AppendRequest{Entity: e, Records: recs(0, 1, "x")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append past its deadline: got %v", err)
	}
	if l := mustLoad(t, s, e); l.LastSeq != 0 {
		t.Fatalf("a cancelled append was written: %+v", l)
	}
	// Appends cancelled while in flight either fail with the context's
	// error (and are not written) or succeed (and are): never anything else.
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const n = 200
	var wg sync.WaitGroup
	outcome := make([]error, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome[i] = s.Append(ctx, persistence.AppendRequest{Entity: entityName(t, fmt.Sprint("c", i)), Records: recs(0, 1, "c")})
		}()
		if rng.IntN(2) == 0 {
			cancel()
		} else {
			defer cancel()
		}
	}
	wg.Wait()
	for i, err := range outcome {
		l := mustLoad(t, s, entityName(t, fmt.Sprint("c", i)))
		switch {
		case err == nil && l.LastSeq != 1:
			t.Fatalf("append %d succeeded but is not stored", i)
		case errors.Is(err, context.Canceled) && l.LastSeq != 0:
			t.Fatalf("append %d reported cancelled but is stored", i)
		case err != nil && !errors.Is(err, context.Canceled):
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func testClosed(t *testing.T, h Harness) {
	s := h.Open(t, Config{})
	e := entityName(t, "a")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: recs(0, 1, "x")})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: recs(1, 1, "x")}); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	done := make(chan error, 1)
	s.AppendAsync(persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: recs(1, 1, "x")}, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("async append after Close: %v", err)
	}
	if _, err := s.Load(ctxFor(t), e); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("load after Close: %v", err)
	}
	if _, err := s.Pending(ctxFor(t), 0); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("pending after Close: %v", err)
	}
}

// testOverload: with room for one in-flight append, a burst of
// AppendAsync calls must see ErrOverloaded; every done runs exactly once.
func testOverload(t *testing.T, h Harness) {
	s := h.Open(t, Config{MaxQueue: 1})
	var overloaded, ok, other, calls atomic.Int64
	var firstOther atomic.Value
	var wg sync.WaitGroup
	const maxBursts = 2000
	for i := 0; i < maxBursts && overloaded.Load() == 0; i++ {
		for j := range 4 {
			e := entityName(t, fmt.Sprint(i, "-", j))
			wg.Add(1)
			s.AppendAsync(persistence.AppendRequest{Entity: e, Records: recs(0, 1, "o")}, func(err error) {
				defer wg.Done()
				calls.Add(1)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, persistence.ErrOverloaded):
					overloaded.Add(1)
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, err)
				}
			})
		}
		if i%16 == 15 {
			wg.Wait() // let the callbacks of this burst land
		}
	}
	wg.Wait()
	if other.Load() > 0 {
		t.Fatalf("unexpected errors, first: %v", firstOther.Load())
	}
	if overloaded.Load() == 0 {
		t.Fatalf("no ErrOverloaded in %d bursts of 4 with MaxQueue 1", maxBursts)
	}
	if ok.Load() == 0 {
		t.Fatal("no append succeeded")
	}
	if calls.Load() != ok.Load()+overloaded.Load() {
		t.Fatal("a done callback ran more than once")
	}
}

func testRestart(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the harness has no Reopen hook")
	}
	s := h.Open(t, Config{})
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := entityName(t, fmt.Sprint(i))
			req := persistence.AppendRequest{Entity: e, Records: recs(0, 3, "r"), Shard: 5, Pending: i%3 == 0}
			if i%4 == 0 {
				req.Snapshot = snap(2, "r")
			}
			if err := s.Append(ctxFor(t), req); err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	s = h.Reopen(t, s)
	for i := range n {
		e := entityName(t, fmt.Sprint(i))
		l := mustLoad(t, s, e)
		if i%4 == 0 {
			checkSnapshot(t, l.Snapshot, snap(2, "r"))
			checkRecords(t, l.Records, recs(2, 1, "r"))
		} else {
			checkRecords(t, l.Records, recs(0, 3, "r"))
		}
	}
	p, err := s.Pending(ctxFor(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != (n+2)/3 {
		t.Fatalf("pending after restart: %d entities, want %d", len(p), (n+2)/3)
	}
	// The store keeps working, and the compare-and-set still holds.
	e := entityName(t, "0")
	if err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: 2, Records: recs(2, 1, "x")}); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("stale append after restart: %v", err)
	}
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 3, Records: recs(3, 1, "x")})
}

// testEpochFence: an append under an epoch below the entity's last
// append's fails with a fenced conflict and writes nothing, even with the
// right ExpectedSeq (a stale owner that reloaded the new owner's records);
// equal and higher epochs pass.
func testEpochFence(t *testing.T, h Harness) {
	if !h.Fences {
		t.Skip("the store does not fence on epochs (one host opens it alone)")
	}
	s := h.Open(t, Config{})
	e := entityName(t, "fence")
	mustAppend(t, s, persistence.AppendRequest{Entity: e, Records: recs(0, 1, "a"), Epoch: 2})
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: recs(1, 1, "b"), Epoch: 2})
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 2, Records: recs(2, 1, "c"), Epoch: 3})
	err := s.Append(ctxFor(t), persistence.AppendRequest{Entity: e, ExpectedSeq: 3, Records: recs(3, 1, "stale"), Epoch: 2})
	var ce *persistence.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("append under a stale epoch: %v, want a *ConflictError", err)
	}
	if !ce.Fenced || ce.RequestEpoch != 2 || ce.StoredEpoch != 3 {
		t.Fatalf("conflict %+v: want it fenced, with epochs 2 and 3", ce)
	}
	if !errors.Is(err, persistence.ErrConflict) || !strings.Contains(err.Error(), "stale owner") {
		t.Fatalf("fenced conflict reads %q", err)
	}
	l, err := s.Load(ctxFor(t), e)
	if err != nil {
		t.Fatal(err)
	}
	if l.LastSeq != 3 || len(l.Records) != 3 {
		t.Fatalf("after the fenced append: last seq %d with %d records, want 3 and 3", l.LastSeq, len(l.Records))
	}
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 3, Records: recs(3, 1, "d"), Epoch: 3})
	mustAppend(t, s, persistence.AppendRequest{Entity: e, ExpectedSeq: 4, Records: recs(4, 1, "e"), Epoch: 7})
}
