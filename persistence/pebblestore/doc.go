// Package pebblestore is the embedded persistence.Store on Pebble
// (github.com/cockroachdb/pebble), the default for a single node.
//
// # The idea
//
// A synced Pebble write costs about as much for one record as for a
// thousand, so the store group-commits: appends wait in a bounded queue,
// and one committer goroutine takes as many as are waiting (up to
// MaxGroupAppends), checks each one's expected sequence number against an
// in-memory cache of last sequence numbers (filled from the database the
// first time an entity is touched; only the committer writes, so the cache
// is exact), and writes every append that passes in ONE pebble batch with
// Sync. Then it tells each caller its own outcome. A conflicting append
// fails alone; an append that builds on one earlier in the same group
// (pipelining) sees that one's effect.
//
// Commits are pipelined: the committer applies a group's batch
// (pebble's ApplyNoSyncWait) and goes on with the next group while the
// fsync of the previous one is in flight (at most PipelineDepth groups);
// a separate goroutine waits for each sync and acknowledges the group's
// callers, in order. A batch is visible to Load once applied, which can be
// just before its fsync completes: an in-process reader may see an append
// whose acknowledgement is still on its way, never one that will be
// reported as failed. If a write or sync ever fails, the database's state
// is unknown (fsync errors are not retryable), so the store fails every
// later call with that error until it is reopened.
//
// # Key layout
//
// Kind and ID are length-prefixed (uvarint length, bytes), so no two
// entities' keys collide and one entity's keys never prefix another's:
//
//	'j' kind id seq(8 bytes big-endian) -> record (machine.Record.AppendBinary, CRC-32C inside)
//	's' kind id                         -> newest snapshot (machine.Snapshot.AppendBinary)
//	'm' kind id                         -> meta: snapshot seq, shard, pending flag, CRC-32C
//	'p' shard(4 bytes big-endian) kind id -> "" (the pending index)
//
// An entity's last sequence number is its newest journal key, or its
// snapshot's seq when the journal was truncated up to it: Pebble batches
// are atomic, so the journal never ends in half an append. Deriving it
// instead of storing it keeps the hot path at one key per record (the
// meta key is written only when a snapshot is taken or the pending flag
// or shard changes), which halves Pebble's memtable and compaction work.
//
// A snapshot replaces the previous one and, unless RetainJournal is set,
// a range deletion of the journal up to the snapshot's seq rides in the
// same batch. Load reads meta, snapshot and journal from one Pebble
// snapshot, so it never sees half of a commit; damaged or missing data is
// a *persistence.CorruptionError naming entity and seq.
package pebblestore
