package persistence_test

import (
	"errors"
	"testing"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

func TestSnapshotPolicyDue(t *testing.T) {
	p := persistence.SnapshotPolicy{EveryRecords: 10}
	cases := []struct {
		last, seq uint64
		want      bool
	}{{0, 9, false}, {0, 10, true}, {5, 14, false}, {5, 15, true}, {20, 20, false}, {20, 10, false}}
	for _, c := range cases {
		if got := p.Due(c.last, c.seq); got != c.want {
			t.Errorf("Due(%d, %d) = %v, want %v", c.last, c.seq, got, c.want)
		}
	}
	if (persistence.SnapshotPolicy{}).Due(0, 1<<40) {
		t.Error("a zero policy took a snapshot")
	}
}

func TestDecodeRecordNamesEntityAndSeq(t *testing.T) {
	e := machine.Entity{Kind: "k", ID: "a"}
	r := machine.Record{Seq: 7, Kind: machine.RecordInput, Payload: []byte("hello")}
	b := r.AppendBinary(nil)
	if got, err := persistence.DecodeRecord(e, 7, b); err != nil || got.Seq != 7 || string(got.Payload) != "hello" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	_, err := persistence.DecodeRecord(e, 8, b) // stored under the wrong seq
	var ce *persistence.CorruptionError
	if !errors.As(err, &ce) || ce.Seq != 8 || ce.Entity != e {
		t.Fatalf("misplaced record: %v", err)
	}
	b[3] ^= 1
	_, err = persistence.DecodeRecord(e, 7, b)
	if !errors.As(err, &ce) || ce.Seq != 7 || !errors.Is(err, machine.ErrCorrupt) || !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("damaged record: %v", err)
	}
	if _, err := persistence.DecodeSnapshot(e, 3, []byte{1, 2}); !errors.As(err, &ce) || ce.Seq != 3 || ce.Where != "snapshot" {
		t.Fatalf("truncated snapshot: %v", err)
	}
}

func TestCheckJournal(t *testing.T) {
	e := machine.Entity{Kind: "k", ID: "a"}
	recs := func(seqs ...uint64) []machine.Record {
		out := make([]machine.Record, len(seqs))
		for i, s := range seqs {
			out[i].Seq = s
		}
		return out
	}
	if err := persistence.CheckJournal(e, 2, 5, recs(3, 4, 5)); err != nil {
		t.Fatal(err)
	}
	var ce *persistence.CorruptionError
	if err := persistence.CheckJournal(e, 2, 5, recs(3, 5)); !errors.As(err, &ce) || ce.Seq != 4 {
		t.Fatalf("gap: %v", err)
	}
	if err := persistence.CheckJournal(e, 2, 5, recs(3, 4)); !errors.As(err, &ce) || ce.Seq != 5 {
		t.Fatalf("missing tail: %v", err)
	}
}

func TestEncodeChecksEveryRule(t *testing.T) {
	e := machine.Entity{Kind: "k", ID: "a"}
	rec := func(seq uint64, n int) machine.Record {
		return machine.Record{Seq: seq, Kind: machine.RecordInput, Payload: make([]byte, n)}
	}
	l := persistence.Limits{MaxRecordBytes: 100, MaxBatchRecords: 3, MaxSnapshotBytes: 50, MaxBatchBytes: 200}
	cases := map[string]struct {
		req  persistence.AppendRequest
		want error
	}{
		"ok":              {persistence.AppendRequest{Entity: e, ExpectedSeq: 4, Records: []machine.Record{rec(5, 1), rec(6, 1)}}, nil},
		"empty kind":      {persistence.AppendRequest{Entity: machine.Entity{ID: "a"}, Records: []machine.Record{rec(1, 1)}}, persistence.ErrInvalidRequest},
		"nothing":         {persistence.AppendRequest{Entity: e}, persistence.ErrInvalidRequest},
		"not consecutive": {persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1, 1), rec(3, 1)}}, persistence.ErrInvalidRequest},
		"wrong start":     {persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: []machine.Record{rec(1, 1)}}, persistence.ErrInvalidRequest},
		"snapshot ahead":  {persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1, 1)}, Snapshot: &machine.Snapshot{Seq: 2}}, persistence.ErrInvalidRequest},
		"big record":      {persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1, 101)}}, persistence.ErrTooLarge},
		"many records":    {persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1, 1), rec(2, 1), rec(3, 1), rec(4, 1)}}, persistence.ErrTooLarge},
		"big snapshot":    {persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1, 1)}, Snapshot: &machine.Snapshot{Seq: 1, State: make([]byte, 60)}}, persistence.ErrTooLarge},
		"big batch":       {persistence.AppendRequest{Entity: e, Records: []machine.Record{rec(1, 80), rec(2, 80), rec(3, 80)}}, persistence.ErrTooLarge},
	}
	for name, c := range cases {
		enc, err := persistence.Encode(&c.req, l)
		if c.want == nil {
			if err != nil || len(enc.Records) != len(c.req.Records) {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestLimitsValidateListsEveryProblem(t *testing.T) {
	err := persistence.Limits{MaxRecordBytes: -1, MaxSnapshotBytes: -1, MaxBatchRecords: -1, MaxBatchBytes: -1}.Validate()
	if !errors.Is(err, persistence.ErrInvalidOptions) {
		t.Fatal(err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 4 {
		t.Fatalf("%d problems listed, want 4: %v", n, err)
	}
}
