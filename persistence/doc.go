// Package persistence defines where entities' journals and snapshots live:
// the Store contract, its request model, its errors and its limits. Each
// backend lives in its own subpackage (memstore, pebblestore, pgstore) and
// one conformance suite (storetest) runs against all of them.
//
// # The idea
//
// An entity's durable history is a journal of records numbered 1, 2, 3, ...
// (machine.Record, each carrying its own CRC-32C) plus, now and then, a
// snapshot of its state at some sequence number (machine.Snapshot, also
// checksummed). Recovery loads the newest snapshot and replays the records
// after it (machine.Kind.Recover).
//
// Every write is a compare-and-set on the entity's last sequence number:
// an [AppendRequest] names the sequence number it expects the journal to
// end at, and is written entirely or not at all. Two writers that both
// believe they own an entity cannot both succeed; the loser gets a
// [*ConflictError] and nothing of its request is visible.
//
// Durability is bought with fsync (or a database commit), which costs the
// same for one record as for a thousand. So stores group-commit: appends
// from many entities that arrive while a write is in progress are checked
// one by one, written together in one synced batch or transaction, and
// acknowledged together. Each caller still gets its own outcome: a
// conflict fails only the request that conflicts. [Store.AppendAsync]
// exposes this to callers that must not block (the actor runtime); its
// queue is bounded and a full queue is reported as [ErrOverloaded].
//
// A snapshot may ride along with an append and is written atomically with
// it. Unless a store is configured to retain its journal, the records at or
// below a written snapshot's sequence number are deleted in the same
// write. [SnapshotPolicy] is the runtime's rule for when to take one.
//
// Each append also says whether the entity has outstanding tracked
// actions afterwards; the store keeps a per-shard index of those entities
// in the same atomic write, so a shard that starts can re-activate exactly
// them ([Store.Pending]).
//
// Database-backed entities (machine.ViewState) also have a keyspace: an
// ordered set of keys per entity, read through [Keyspace] (every backend
// implements it; [Source] adapts it for the machine's view) and written
// only by appends: the write sets the records carry (machine.Record.Writes)
// are folded into net writes by [Encode] and applied in the same atomic
// write as the records, so a failed compare-and-set writes no key and the
// keyspace always reflects the entity's last record.
//
// Bad data is never a panic and never a silent reset: a record or snapshot
// that fails its checksum, or a journal with a gap, is reported by Load as
// a [*CorruptionError] naming the entity and the sequence number.
//
// # Limits
//
// Everything is bounded: the size of a record ([Limits.MaxRecordBytes]), of
// a snapshot, of one request, the number of in-flight appends and the size
// of a commit group (each backend's Options). Exceeding a size limit is
// [ErrTooLarge] with the sizes in the message; a full queue is
// [ErrOverloaded].
package persistence
