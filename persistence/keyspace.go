package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// Keyspace reads the keyspaces of database-backed entities (see package
// machine/kv): one ordered set of keys per entity, written only by
// appends, atomically with the journal records that carry the writes
// (machine.Record.Writes). A keyspace reflects the entity's last appended
// record. Every backend of this module implements it; callers find it on
// a Store with a type assertion, as an optional interface.
type Keyspace interface {
	// Get returns the value of key in e's keyspace and whether it exists.
	Get(ctx context.Context, e machine.Entity, key []byte) (value []byte, found bool, err error)
	// Scan returns e's pairs with start <= key < end in ascending byte
	// order (nil end: no upper bound), at most limit (1..kv.MaxScanLimit);
	// more reports that keys in the range may follow, and is only true
	// with at least one pair returned. Scan arguments are checked with
	// kv.CheckScan.
	Scan(ctx context.Context, e machine.Entity, start, end []byte, limit int) (pairs []kv.Pair, more bool, err error)
}

// Source adapts one entity's keyspace in ks to a kv.Source, the read side
// of a database-backed machine's view. Each read gets its own context
// with the given timeout (none when timeout <= 0), so an unreachable store
// surfaces as a failed read, never as a stuck entity.
func Source(ks Keyspace, e machine.Entity, timeout time.Duration) kv.Source {
	return &source{ks: ks, e: e, timeout: timeout}
}

type source struct {
	ks      Keyspace
	e       machine.Entity
	timeout time.Duration
}

func (s *source) ctx() (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *source) Get(key []byte) ([]byte, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.ks.Get(ctx, s.e, key)
}

func (s *source) Scan(start, end []byte, limit int) ([]kv.Pair, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.ks.Scan(ctx, s.e, start, end, limit)
}

// netWrites decodes the write sets the records carry and folds them into
// the net writes the store applies to the entity's keyspace. A write set
// that does not decode makes the request invalid.
func netWrites(req *AppendRequest) ([]kv.Write, error) {
	var sets [][]kv.Write
	for i := range req.Records {
		r := &req.Records[i]
		if len(r.Writes) == 0 {
			continue
		}
		cs, err := kv.DecodeChanges(r.Writes)
		if err != nil {
			return nil, invalid(req.Entity, "record seq %d: %v", r.Seq, err)
		}
		sets = append(sets, kv.WritesOf(cs))
	}
	if len(sets) == 0 {
		return nil, nil
	}
	return kv.Net(sets...), nil
}

// CheckKeyRead validates the arguments of a keyspace read as every backend
// does: a non-empty entity and key of at most kv.MaxKeyBytes.
func CheckKeyRead(e machine.Entity, key []byte) error {
	if e.Kind == "" || e.ID == "" {
		return invalid(e, "empty kind or ID")
	}
	if len(key) == 0 || len(key) > kv.MaxKeyBytes {
		return fmt.Errorf("%w: entity %s: key of %d bytes (1..%d)", ErrInvalidRequest, e, len(key), kv.MaxKeyBytes)
	}
	return nil
}

// CheckScanRead validates the arguments of a keyspace scan.
func CheckScanRead(e machine.Entity, start, end []byte, limit int) error {
	if e.Kind == "" || e.ID == "" {
		return invalid(e, "empty kind or ID")
	}
	if err := kv.CheckScan(start, end, limit); err != nil {
		return fmt.Errorf("%w: entity %s: %w", ErrInvalidRequest, e, err)
	}
	return nil
}
