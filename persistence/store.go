package persistence

import (
	"context"

	"github.com/phasm-go/phasm/machine"
)

// Store keeps entities' journals, snapshots and the per-shard index of
// entities with outstanding tracked actions. Implementations are safe for
// concurrent use. Every backend passes the storetest conformance suite.
type Store interface {
	// Load returns the newest snapshot (nil if none), the journal records
	// after it in sequence order, and the entity's last sequence number (0
	// and nothing else for an unknown entity). Corrupt or missing data is a
	// *CorruptionError naming the entity and the sequence number. Load
	// honours ctx and returns ErrClosed after Close.
	Load(ctx context.Context, e machine.Entity) (Loaded, error)

	// Append writes req atomically iff the entity's last sequence number
	// equals req.ExpectedSeq and, in a store that fences (see
	// AppendRequest.Epoch), req.Epoch is not below the epoch of the
	// entity's last append; otherwise it fails with a *ConflictError
	// (wrapping ErrConflict) and writes nothing. It returns once the write
	// is durable or has failed. Concurrent callers are group-committed.
	// An invalid request fails with ErrInvalidRequest or ErrTooLarge before
	// anything is queued. When the queue is full Append waits for room
	// (bounded by ctx). If ctx ends before the request joins a commit
	// group, Append returns ctx.Err() and nothing is written; once it has
	// joined a group the result is the group's.
	Append(ctx context.Context, req AppendRequest) error

	// AppendAsync is Append without blocking: done is called exactly once,
	// from another goroutine, after the write is durable or has failed.
	// When the store's bounded queue is full, done gets ErrOverloaded; after
	// Close it gets ErrClosed. done must not block for long: it runs on the
	// store's acknowledging goroutine.
	//
	// Appends to one entity are applied in the order they were submitted,
	// so a caller may submit the next append (expecting the previous one's
	// last seq) before the previous one is acknowledged; if the previous
	// one fails, the next one fails with a conflict.
	AppendAsync(req AppendRequest, done func(error))

	// Pending lists the entities of a shard whose latest append said they
	// have outstanding tracked actions, in (kind, id) order.
	Pending(ctx context.Context, shard uint32) ([]machine.Entity, error)

	// Close commits what is already queued, stops accepting work (later
	// calls fail with ErrClosed) and releases the store's resources. It is
	// safe to call more than once.
	Close() error
}

// AppendRequest is one atomic write for one entity.
type AppendRequest struct {
	// Entity is the entity written; Kind and ID must not be empty.
	Entity machine.Entity
	// Shard is the entity's shard, computed by the caller (persistence does
	// not know how entities map to shards). It keys the pending index.
	Shard uint32
	// ExpectedSeq is the entity's last sequence number the caller believes
	// the journal ends at (0 for a new entity): the compare-and-set.
	ExpectedSeq uint64
	// Records are consecutive: ExpectedSeq+1, ExpectedSeq+2, ... It may be
	// empty only if Snapshot is set. The store encodes them during the call;
	// the caller may reuse them afterwards.
	Records []machine.Record
	// Snapshot, when set, is written atomically with the records. Its Seq
	// must be at least 1 and at most the last sequence number after the
	// records. It replaces any older snapshot.
	Snapshot *machine.Snapshot
	// Pending says that after this append the entity has outstanding
	// tracked actions: the store keeps it in (true) or drops it from
	// (false) the shard's pending index, atomically with the journal.
	Pending bool
	// Epoch is the shard epoch the writer owns the entity's shard under
	// (0 when unknown). A store that several nodes share fences on it: an
	// append whose Epoch is below the epoch of the entity's last successful
	// append fails with a conflict (Fenced), so a stale owner (one that
	// lost the shard and has not learned it yet, say after a pause) cannot
	// apply inputs after the new owner did, even once it has reloaded the
	// new owner's records. The compare-and-set on ExpectedSeq alone keeps
	// the journal linear, not single-writer. pgstore and memstore fence;
	// pebblestore, which one host opens alone, ignores Epoch. pgstore also
	// keeps it with every journal record (with its writer's node ID) for
	// audits.
	Epoch uint64
}

// LastSeq returns the entity's last sequence number if req succeeds.
func (r *AppendRequest) LastSeq() uint64 { return r.ExpectedSeq + uint64(len(r.Records)) }

// Loaded is what Store.Load returns.
type Loaded struct {
	// Snapshot is the newest snapshot, or nil.
	Snapshot *machine.Snapshot
	// Records are the journal records after the snapshot (after seq 0
	// without one), consecutive, ending at LastSeq.
	Records []machine.Record
	// LastSeq is the entity's last sequence number, 0 for an unknown entity.
	LastSeq uint64
}
