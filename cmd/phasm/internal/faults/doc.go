// Package faults is phasm's fault suite, Jepsen-style: a workload, a
// nemesis and a checker, on real containers.
//
// The harness (Run) builds the phasm image FROM scratch around a static
// binary built on the host, creates a Docker network with a subnet of its
// own, starts a throwaway PostgreSQL server on the host listening on the
// network's gateway address, issues mutual-TLS certificates from a dev CA,
// and starts three `phasm node` containers bootstrapped from a static
// peer list. Two `phasm load` processes on the host (bank transfers and
// dentist bookings) run against the cluster for the whole run, each
// recording every acknowledged operation in its ledger and its counts in a
// timeline.
//
// The nemesis draws its schedule from the seed (Plan) and prints it before
// anything runs: kill a node (docker kill), kill the Raft leader,
// partition a node from its peers (DROP rules inside the container's
// network namespace: it keeps PostgreSQL and the clients, the case
// fencing exists for), pause a node (docker pause: a gray failure), a
// rolling restart of all three (SIGTERM, graceful leave, start) and a
// PostgreSQL crash-restart (immediate stop, start). Faults run one after
// another; after each the harness heals, waits for the cluster to
// converge and leaves a quiet gap.
//
// The checker runs after the last heal and a quiet period:
//   - the load driver's own checks (stopped with SIGINT: it waits for
//     quiescence and reads every entity back): every acknowledged
//     operation reflected, money conserved, no negative balance, each
//     transfer applied exactly once on each side, no double booking,
//     every booking paid, no request left awaiting payment;
//   - no entity left with outstanding tracked actions in the store's
//     pending index (every in-flight action completed);
//   - the shard map converged: every node reports the same view, every
//     member alive, every shard owned by a live, running node;
//   - the journals (kept whole with --postgres-retain-journal, each record
//     carrying its writer's node ID and shard epoch): per shard and
//     epoch one writer only, epochs never going backwards along an
//     entity's journal, no record written without an ownership epoch,
//     sequence numbers without gaps, no tracked action completed twice
//     (AuditJournal).
//
// Report writes the run as markdown with an SVG plot of throughput over
// time, the faults shaded, and per fault the unavailability window (the
// longest stretch in which acknowledged operations fell below a tenth of
// the rate before the fault) and the time the cluster took to converge.
//
// The test that runs it (faults_test.go) is behind the build tag `faults`:
// `make faults-short` (part of `make test`) and `make faults-long`.
package faults
