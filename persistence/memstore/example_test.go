package memstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
)

func Example() {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	e := machine.Entity{Kind: "counter", ID: "visits"}
	rec := func(seq uint64) machine.Record {
		return machine.Record{Seq: seq, Kind: machine.RecordInput, Payload: []byte{byte(seq)}}
	}

	// Two records for a new entity: expected seq 0.
	err := s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 0, Records: []machine.Record{rec(1), rec(2)}})
	fmt.Println("append:", err)

	// A writer that missed them loses the compare-and-set.
	err = s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 0, Records: []machine.Record{rec(1)}})
	fmt.Println("stale append is a conflict:", errors.Is(err, persistence.ErrConflict))

	// A snapshot at seq 2 rides with record 3; the journal before it goes.
	err = s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 2, Records: []machine.Record{rec(3)},
		Snapshot: &machine.Snapshot{Seq: 2, State: []byte("state at 2")}})
	fmt.Println("append with snapshot:", err)

	l, _ := s.Load(ctx, e)
	fmt.Printf("load: snapshot at %d, %d record(s) after it, last seq %d\n", l.Snapshot.Seq, len(l.Records), l.LastSeq)
	// Output:
	// append: <nil>
	// stale append is a conflict: true
	// append with snapshot: <nil>
	// load: snapshot at 2, 1 record(s) after it, last seq 3
}
