// Package pebblestore is the embedded persistence.Store on Pebble
// (github.com/cockroachdb/pebble), the default for a single node.
//
// # The idea
//
// A synced write costs about as much for one record as for a thousand,
// so the store group-commits: appends wait in a bounded queue, and one
// committer goroutine takes as many as are waiting (up to
// MaxGroupAppends), checks each one's expected sequence number against an
// in-memory cache of last sequence numbers (filled from the database and
// the in-memory tail the first time an entity is touched; only the
// committer writes, so the cache is exact), and writes every append that
// passes as ONE frame of the store's own group log. Then it tells each
// caller its own outcome. A conflicting append fails alone; an append
// that builds on one earlier in the same group (pipelining) sees that
// one's effect.
//
// # The group log is the durability point
//
// Pebble is opened with its write-ahead log disabled. Instead, each group
// is one checksummed frame appended to a segment file in <dir>/log
// (<seq>.log, a new segment every SegmentBytes) and fdatasync'd; the
// group is acknowledged after the sync. A frame holds every write the
// group makes (its journal records as journal-key sets, meta, snapshot,
// pending-index and keyspace writes, range deletions), in the order of
// one Pebble batch, so replaying it re-applies the group. Every log file
// operation goes through the Pebble options' vfs.FS (which must allow a
// sync concurrent with a write to the same file); creating and removing
// segments syncs the directory.
//
// Commits are pipelined: the committer writes the next group's frame
// while earlier ones wait for their sync (at most PipelineDepth groups);
// one sync covers every frame written before it started. After its sync,
// in order, a group is applied: its non-journal writes go into Pebble (an
// unsynced batch: Pebble's memtable) and its journal records into the
// in-memory tail, together under a lock, so Load, Pending, Get and Scan
// see a group only once it is durable, and whole. If a write, sync or
// apply ever fails, the store's state is unknown (fsync errors are not
// retryable), so the store fails every later call with that error until
// it is reopened (which replays the log).
//
// # The tail and checkpoints
//
// Journal records are not inserted into Pebble on the hot path: the
// records written since the last checkpoint stay in memory, per entity
// (the tail). Load reads the entity's tail records and a Pebble snapshot
// together, takes the older records from Pebble and the rest from the
// tail (where a record is in both, the tail's copy), after the snapshot's
// seq, and checks the result is consecutive.
//
// When the tail reaches CheckpointBytes, it is frozen (a new tail takes
// the next groups) with the log position P after its last group, and a
// background checkpoint writes its records, and a marker key holding P,
// into one sorted SST; flushes Pebble's memtables (so every write of the
// groups before P is in SSTs); ingests the SST; then drops the frozen
// tail and deletes the log segments wholly before P. Close checkpoints
// everything. The tails are bounded by MaxTailBytes: past it, the
// committer waits for the running checkpoint, so the queue fills and
// appends wait (AppendAsync gets ErrOverloaded).
//
// A snapshot that truncates the journal cuts the entity's records from
// the tails too; if a checkpoint had already taken them, the range
// deletion is applied again after its ingestion.
//
// # Recovery
//
// Open reads the marker P (none: the start of the log) and replays every
// frame after it, in order, straight into Pebble: all writes are blind
// sets and deletes, so replaying frames whose effect Pebble already holds
// (its memtables may have been flushed after P) gives the same state.
// Frames are checked: an incomplete or damaged frame at the end of the
// last segment, with no valid frame after it, was torn by a crash and
// never acknowledged, and is dropped; any other damage (a bad frame
// followed by valid data, a missing segment) is a
// *persistence.CorruptionError and Open fails. Then Open starts a new
// segment, checkpoints (marker at its start, Pebble flushed) and deletes
// the older segments.
//
// # Key layout
//
// Kind and ID are length-prefixed (uvarint length, bytes), so no two
// entities' keys collide and one entity's keys never prefix another's:
//
//	'c'                                 -> checkpoint marker: log segment, offset, CRC-32C
//	'j' kind id seq(8 bytes big-endian) -> record (machine.Record.AppendBinary, CRC-32C inside)
//	's' kind id                         -> newest snapshot (machine.Snapshot.AppendBinary)
//	'm' kind id                         -> meta: snapshot seq, shard, (unused) pending byte, CRC-32C
//	'p' shard(4 bytes big-endian) kind id -> "" (the pending index)
//	'k' kind id userkey                 -> database-backed state (keyspace)
//
// An entity's last sequence number is its newest record in the tail, or
// else its newest journal key in Pebble, or its snapshot's seq when the
// journal was truncated up to it. Whether it has outstanding actions is
// whether its key is in the pending index under the meta's shard. The meta
// key is written when it first has outstanding actions or a snapshot, and
// then only when a snapshot is taken or its shard changes: an entity with
// one tracked action at a time flips only its pending key.
//
// A snapshot replaces the previous one and, unless RetainJournal is set,
// a range deletion of the journal up to the snapshot's seq rides in the
// same group. Damaged or missing data is a *persistence.CorruptionError
// naming entity and seq.
package pebblestore
