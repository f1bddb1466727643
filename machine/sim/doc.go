// Package sim is the seeded simulator machine authors run against their own
// machines: it proves, step by step, that a machine keeps the rules of
// package machine, under crashes and every fault the runtime can see.
//
// # How a run works
//
// A run is one seed. From it, the simulator draws every choice: the inputs
// (through the user's [Model]), the outcomes of tracked actions (success,
// domain failure, terminal failure), their delays and reordering,
// duplicated and lost results, client retries with request IDs, and
// crashes. It drives the production driver (machine.Driver), not a copy of
// it, and keeps each entity's durable copy as the runtime would: binary
// journal records and periodic snapshots.
//
// After every operation it checks:
//   - the user's invariants (the machine's or model's Invariants method, an
//     EntityChecker, a WorldChecker across entities);
//   - determinism: the step re-run from the same prior state gives
//     byte-identical state (canonical encoding), actions and error;
//   - atomicity: a rejected step did not mutate the state;
//   - completions: every accepted completion changed the state, and no
//     action ID is reused in an entity's life;
//   - request window: a client retry got the original reply.
//
// A crash discards the entity's live state and in-flight results, rebuilds
// it from snapshot and journal (verifying every record), and checks that
// the rebuilt state equals the old one, that Restore did not modify it, and
// that Restore re-emitted exactly the outstanding tracked actions by ID:
// none missing, none unknown, none twice.
//
// Database-backed machines (machine.ViewState) run against a simulated
// keyspace per entity, durable like the journal (World.Keyspace reads it).
// Faults.ReadFailProb fails one of a step's keyspace reads: the step must
// fail without changing the in-memory part or the keyspace, and the input
// is retried. The determinism check then also compares the write set of
// the re-run (against the keyspace as it was before the step), atomicity
// also covers the keyspace, and crashes recover with Kind.RecoverFrom.
//
// After the safety phase (a fixed number of steps with faults) comes a
// liveness phase: no new inputs, no new faults, lost results time out, and
// every entity must come to rest with nothing outstanding; then the
// model's FinalChecker runs.
//
// # When a check fails
//
// Run returns a *[Failure] with the seed, the step, the check and the
// error, and a shrunk event sequence that still fails the same check
// (delta debugging over the recorded events). Sim.Run(seed) reproduces the
// run; Sim.Replay replays an event sequence, for regression tests.
//
// Runs are counted in steps, never in time, so "N operations verified" is
// reproducible. The package uses no clock, no global random source and no
// goroutines: run seeds in parallel from tests (t.Parallel) when wanted.
package sim
