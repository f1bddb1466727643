package pebblestore

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/storetest"
)

// quietLogger drops Pebble's informational messages (WAL replay after a
// crash is expected here).
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (l quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func quiet() *pebble.Options {
	o := DefaultPebbleOptions()
	o.Logger = quietLogger{}
	return o
}

func optionsFor(cfg storetest.Config) Options {
	return Options{
		Pebble:        quiet(),
		Limits:        persistence.Limits{MaxRecordBytes: cfg.MaxRecordBytes, MaxBatchRecords: cfg.MaxBatchRecords},
		MaxQueue:      cfg.MaxQueue,
		RetainJournal: cfg.RetainJournal,
	}
}

func openIn(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawUpdate closes s, changes its database directly and reopens it.
func rawUpdate(t *testing.T, s *Store, fn func(db *pebble.DB)) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(s.dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return openIn(t, s.dir, s.opts)
}

func flipByte(t *testing.T, db *pebble.DB, key []byte) {
	t.Helper()
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	b := slices.Clone(v)
	closer.Close()
	b[len(b)/2] ^= 0x40
	if err := db.Set(key, b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func storedSeqs(t *testing.T, s *Store, e machine.Entity) []uint64 {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: journalKey(e, 0), UpperBound: append(entityKey(prefixJournal, e), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		out = append(out, beUint64(k[len(k)-8:]))
	}
	// And the records not yet checkpointed, held in memory.
	s.viewMu.RLock()
	for _, t := range []tailView{s.frozen.records(e), s.active.records(e)} {
		for _, r := range t.recs {
			out = append(out, r.seq)
		}
	}
	s.viewMu.RUnlock()
	slices.Sort(out)
	return slices.Compact(out)
}

func harness() storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, cfg storetest.Config) persistence.Store {
			return openIn(t, t.TempDir(), optionsFor(cfg))
		},
		Reopen: func(t *testing.T, s persistence.Store) persistence.Store {
			ps := s.(*Store)
			if err := ps.Close(); err != nil {
				t.Fatal(err)
			}
			return openIn(t, ps.dir, ps.opts)
		},
		Corrupt: func(t *testing.T, s persistence.Store, e machine.Entity, seq uint64, snapshot bool) persistence.Store {
			key := journalKey(e, seq)
			if snapshot {
				key = entityKey(prefixSnapshot, e)
			}
			return rawUpdate(t, s.(*Store), func(db *pebble.DB) { flipByte(t, db, key) })
		},
		StoredSeqs: func(t *testing.T, s persistence.Store, e machine.Entity) []uint64 {
			return storedSeqs(t, s.(*Store), e)
		},
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, harness()) }

func TestKeysNeverCollide(t *testing.T) {
	es := []machine.Entity{{Kind: "a", ID: "bc"}, {Kind: "ab", ID: "c"}, {Kind: "a\x01", ID: "b"}, {Kind: "a", ID: "b\x00"}}
	seen := map[string]machine.Entity{}
	for _, e := range es {
		for _, k := range [][]byte{entityKey(prefixMeta, e), journalKey(e, 1), pendingKey(1, e)} {
			if other, dup := seen[string(k)]; dup {
				t.Fatalf("%s and %s share key %q", e, other, k)
			}
			seen[string(k)] = e
		}
		got, rest, err := parseEntity(appendEntity(nil, e))
		if err != nil || got != e || len(rest) != 0 {
			t.Fatalf("parse %s: %v %v %q", e, got, err, rest)
		}
	}
}

func TestMissingSnapshotAndDamagedMetaAreCorruption(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir, Options{Pebble: quiet()})
	e := machine.Entity{Kind: "k", ID: "a"}
	rec := func(seq uint64) machine.Record {
		return machine.Record{Seq: seq, Kind: machine.RecordInput, Payload: []byte("x")}
	}
	if err := s.Append(t.Context(), persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1), rec(2)},
		Snapshot: &machine.Snapshot{Seq: 1, State: []byte("s")}}); err != nil {
		t.Fatal(err)
	}
	s = rawUpdate(t, s, func(db *pebble.DB) {
		if err := db.Delete(entityKey(prefixSnapshot, e), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
	_, err := s.Load(t.Context(), e)
	var ce *persistence.CorruptionError
	if !errors.As(err, &ce) || ce.Seq != 1 || ce.Where != "snapshot" {
		t.Fatalf("missing snapshot: got %v", err)
	}
	s = rawUpdate(t, s, func(db *pebble.DB) { flipByte(t, db, entityKey(prefixMeta, e)) })
	if _, err := s.Load(t.Context(), e); !errors.Is(err, persistence.ErrCorrupt) || !errors.Is(err, machine.ErrCorrupt) {
		t.Fatalf("damaged meta: got %v", err)
	}
	// The committer reports it too instead of overwriting the entity.
	err = s.Append(t.Context(), persistence.AppendRequest{Entity: e, ExpectedSeq: 2, Records: []machine.Record{rec(3)}})
	if !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("append over damaged meta: got %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{MaxQueue: -1, MaxGroupBytes: -1, MaxCachedEntities: -1}.Validate()
	if !errors.Is(err, persistence.ErrInvalidOptions) {
		t.Fatalf("got %v", err)
	}
	if _, err := Open(t.TempDir(), Options{MaxGroupAppends: -5}); !errors.Is(err, persistence.ErrInvalidOptions) {
		t.Fatalf("Open with bad options: %v", err)
	}
}
