// Package storetest is the conformance suite every persistence.Store
// backend runs: one set of tests for the contract (round trips, the
// compare-and-set, group commit with per-caller outcomes, snapshots and
// truncation, replay through machine.Kind.Recover, the pending index,
// corruption detection, limits, cancellation, Close and overload).
//
// A backend's test calls [Run] with a [Harness]: how to open a fresh store
// with a given [Config], and optional hooks for what the Store interface
// cannot do by itself (restart on the same data, damage stored bytes, list
// stored journal sequence numbers). Tests whose hook is nil are skipped
// with a message saying so.
package storetest
