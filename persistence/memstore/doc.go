// Package memstore is an in-memory persistence.Store for tests and
// simulation that can crash.
//
// # The idea
//
// It behaves like a durable store with a disk that loses whatever was not
// synced: appends go through the same bounded queue and group commit as
// the real backends (package persistence/internal/group), a commit group
// becomes "durable" atomically, and only then are its callers told.
// [Store.Crash] throws away everything that was queued but not yet
// committed, fails those appends, and leaves the store usable as after a
// restart; anything already acknowledged survives. Faults can be injected:
// failing writes ([Store.FailWrites], [Store.FailNextWrites]), a stalled
// disk ([Store.Pause]), and damaged data ([Store.CorruptRecord],
// [Store.CorruptSnapshot], [Store.DropRecord]) that Load must report as a
// *persistence.CorruptionError.
//
// Records and snapshots are kept in their encoded, checksummed form, so
// Load exercises the same decoding and checks as the disk backends.
package memstore
