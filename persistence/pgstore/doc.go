// Package pgstore is the shared persistence.Store on PostgreSQL (through
// github.com/jackc/pgx/v5), for a cluster of several nodes.
//
// # The idea
//
// One transaction per append tops out near 15-20 k appends/s: every commit
// waits for its own WAL flush. So the store group-commits: appends wait in
// a bounded queue, and one committer goroutine takes every append that is
// waiting (up to MaxGroupAppends, at most one per entity) and writes them
// in ONE statement, hence one transaction and one round trip. Its
// data-modifying CTEs
//
//  1. do the compare-and-set for all entities at once on the entities
//     table: UPDATE ... FROM unnest(...) WHERE seq = expected RETURNING for
//     known entities, INSERT ... ON CONFLICT DO NOTHING RETURNING for new
//     ones. The rows returned are the winners; the others get a
//     *persistence.ConflictError and none of their rows are written;
//  2. insert the winners' journal rows, upsert their snapshots and
//     truncate their journals, joined on the winners;
//
// and the implicit transaction commits with the server's
// synchronous_commit (on: durable) before the store acknowledges anyone.
//
// Several groups are in flight at once (PipelineDepth), each on its own
// connection, so the server's WAL flushes overlap. An append whose entity
// is in a group still in flight waits for the next group: concurrent
// groups never touch the same rows, and each entity's appends are applied
// in submission order. A deadlock or serialization failure (possible only
// with several nodes writing the same entities) retries the group a
// bounded number of times.
//
// # Losing the database
//
// A crash or restart of the server breaks every pooled connection at once.
// The first call that finds its connection lost (a failed connect, a
// broken socket, the server ending the session or still starting up)
// resets the pool and takes the store down: until a probe connects again
// (every 10 ms, doubling to 100 ms), every call fails at once with
// ErrUnreachable, having done nothing, instead of dialling a server that
// is not there. So an outage costs one call failed on a dead connection
// rather than one per pooled connection, the server is not flooded with
// connection attempts while it recovers, and the store is back within
// about 100 ms (and a connection set-up) of the server accepting
// connections.
//
// # Schema
//
// Tables live in a schema of their own (Options.Schema), created and
// migrated by Open: a phasm_migrations table records the applied versions,
// and migrations run in order inside one transaction that holds a
// transaction-scoped advisory lock, so nodes starting together do not
// race. Statements are plain SQL apart from unnest, ON CONFLICT and the
// advisory lock.
//
//	phasm_entities (kind, id) -> seq, snapshot_seq, shard, pending   -- the CAS row and the pending index
//	phasm_journal (kind, id, seq) -> data, writer, epoch             -- machine.Record.AppendBinary; provenance
//	phasm_snapshots (kind, id) -> seq, data                           -- machine.Snapshot.AppendBinary
//
// Load reads the three in one statement (one round trip), which sees one
// snapshot of the database, so it never sees half of a commit. Sequence numbers are stored as bigint:
// they must stay below 2^63.
package pgstore
