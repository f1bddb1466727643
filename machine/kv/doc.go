// Package kv is the transactional, fallible key-value view a machine can
// hold as (part of) its state: database-backed state.
//
// # The idea
//
// A plain-value state is encoded whole on every snapshot and copied on
// every commit; that stops scaling when an entity's state is large (a
// clinic's calendar for a year, an account with millions of ledger lines).
// A machine whose state embeds a [View] keeps the large part in its
// entity's own keyspace in the store instead, and reads and writes it
// through the view inside Transition, with the same rules as plain state:
//
//   - Deterministic: the view reads the keyspace as the entity's journal
//     left it, so the same keyspace, in-memory state and input give the same
//     writes. Scans are ordered by key (bytes.Compare) and bounded.
//   - Atomic: the view is a transaction. Reads see the transition's own
//     writes; nothing is visible outside or durable until the runtime
//     commits after a successful transition; an error return discards every
//     write.
//   - Fallible: the keyspace lives in a database, so a read may fail (the
//     store is unreachable, a record is corrupt). The read returns a
//     *[ReadError]; the machine returns it, and the runtime fails the step
//     without journaling anything (even if the machine swallowed the
//     error), because the outcome of a step that could not read its state
//     is not a function of that state. The entity stays as it was and the
//     input can be retried.
//
// The runtime (package machine's Driver) owns the view: it binds it to the
// entity's committed keyspace (a [Source]) before each call, collects the
// write set after a successful transition, journals it with the input (with
// the value each written key had before, so replay can rebuild the keyspace
// as of any journaled sequence number) and hands it to the store, which
// applies it atomically with the journal records.
//
// The package is pure: no I/O, no goroutines, no clocks. Sources backed by
// a database live in package persistence; [Mem] is the in-memory keyspace
// the simulator and tests use, [Overlay] layers writes over a source, and
// [Cache] is the bounded per-entity read cache the runtime puts in front of
// a store.
package kv
