package memstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
	"github.com/phasm-go/phasm/persistence/storetest"
)

func open(t *testing.T, cfg storetest.Config) persistence.Store {
	s, err := memstore.Open(memstore.Options{
		Limits:        persistence.Limits{MaxRecordBytes: cfg.MaxRecordBytes, MaxBatchRecords: cfg.MaxBatchRecords},
		MaxQueue:      cfg.MaxQueue,
		RetainJournal: cfg.RetainJournal,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Fences: true,
		Open:   open,
		Reopen: func(t *testing.T, s persistence.Store) persistence.Store {
			s.(*memstore.Store).Crash()
			return s
		},
		Corrupt: func(t *testing.T, s persistence.Store, e machine.Entity, seq uint64, snapshot bool) persistence.Store {
			m := s.(*memstore.Store)
			var err error
			if snapshot {
				err = m.CorruptSnapshot(e)
			} else {
				err = m.CorruptRecord(e, seq)
			}
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		StoredSeqs: func(t *testing.T, s persistence.Store, e machine.Entity) []uint64 {
			return s.(*memstore.Store).StoredSeqs(e)
		},
	})
}

func rec(seq uint64) machine.Record {
	return machine.Record{Seq: seq, Kind: machine.RecordInput, Payload: []byte("x")}
}

// TestCrashDropsOnlyUnsynced: appends held in the queue by a stalled disk
// are lost by a crash and fail; acknowledged ones survive.
func TestCrashDropsOnlyUnsynced(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	e := machine.Entity{Kind: "k", ID: "a"}
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1)}}); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	done := make(chan error, 1)
	s.AppendAsync(persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{rec(2)}}, func(err error) { done <- err })
	s.Crash()
	if err := <-done; !errors.Is(err, memstore.ErrCrashed) || !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("unsynced append: got %v, want ErrCrashed", err)
	}
	l, err := s.Load(ctx, e)
	if err != nil || l.LastSeq != 1 {
		t.Fatalf("after crash: %+v %v, want LastSeq 1", l, err)
	}
	// Usable again.
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{rec(2)}}); err != nil {
		t.Fatal(err)
	}
}

func TestPauseOverloads(t *testing.T) {
	s, err := memstore.Open(memstore.Options{MaxQueue: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Pause()
	results := make(chan error, 3)
	for i := range 3 {
		e := machine.Entity{Kind: "k", ID: string(rune('a' + i))}
		s.AppendAsync(persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1)}}, func(err error) { results <- err })
	}
	if err := <-results; !errors.Is(err, persistence.ErrOverloaded) {
		t.Fatalf("third append with a stalled disk: got %v, want ErrOverloaded", err)
	}
	s.Resume()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

func TestInjectedWriteFailures(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	e := machine.Entity{Kind: "k", ID: "a"}
	boom := errors.New("disk on fire")
	s.FailNextWrites(2, boom)
	for range 2 {
		if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1)}}); !errors.Is(err, boom) {
			t.Fatalf("got %v, want the injected failure", err)
		}
	}
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1)}}); err != nil {
		t.Fatal(err)
	}
	s.FailWrites(boom)
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{rec(2)}}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the injected failure", err)
	}
	s.FailWrites(nil)
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{rec(2)}}); err != nil {
		t.Fatal(err)
	}
}

func TestGapIsCorruption(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	e := machine.Entity{Kind: "k", ID: "a"}
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1), rec(2), rec(3)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DropRecord(e, 2); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(ctx, e)
	var ce *persistence.CorruptionError
	if !errors.As(err, &ce) || ce.Entity != e || ce.Seq != 2 {
		t.Fatalf("got %v, want a *CorruptionError at seq 2", err)
	}
}

func TestOptionsValidateListsEveryProblem(t *testing.T) {
	err := memstore.Options{MaxQueue: -1, MaxGroupAppends: -2, Limits: persistence.Limits{MaxRecordBytes: -3}}.Validate()
	if !errors.Is(err, persistence.ErrInvalidOptions) {
		t.Fatalf("got %v", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n < 3 {
		t.Fatalf("got %d problems, want 3: %v", n, err)
	}
}

// TestInjectedReadFailures: keyspace reads fail as injected, typed, and
// the data is intact once the fault clears; Crash clears faults.
func TestInjectedReadFailures(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	e := machine.Entity{Kind: "k", ID: "1"}
	rec := machine.Record{Seq: 1, Kind: machine.RecordInput, Payload: []byte("p"),
		Writes: kv.AppendChanges(nil, []kv.Change{{Write: kv.Write{Key: []byte("a"), Value: []byte("1")}}})}
	if err := s.Append(context.Background(), persistence.AppendRequest{Entity: e, Records: []machine.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	src := persistence.Source(s, e, 0)
	s.FailNextReads(2, nil)
	if _, _, err := src.Get([]byte("a")); !errors.Is(err, memstore.ErrReadFailed) {
		t.Fatalf("first read: %v", err)
	}
	if _, _, err := src.Scan([]byte("a"), nil, 1); !errors.Is(err, memstore.ErrReadFailed) {
		t.Fatalf("second read: %v", err)
	}
	if v, ok, err := src.Get([]byte("a")); err != nil || !ok || string(v) != "1" {
		t.Fatalf("third read: %q %v %v", v, ok, err)
	}
	down := errors.New("down")
	s.FailReads(down)
	if _, _, err := src.Get([]byte("a")); !errors.Is(err, down) {
		t.Fatalf("failing reads: %v", err)
	}
	s.Crash()
	if _, ok, err := src.Get([]byte("a")); err != nil || !ok {
		t.Fatalf("after crash: %v %v", ok, err)
	}
	if s.Reads() != 5 {
		t.Fatalf("reads counted %d, want 5", s.Reads())
	}
}
