// Package machine is the contract between a machine author and the phasm
// runtime, and the pure core that runs it.
//
// # The idea
//
// An entity (an account, a clinic's calendar) is a state machine. Its
// author writes two pure functions over a state S:
//
//   - Transition(state, input, actions) validates an input, mutates the
//     state and appends action descriptions. It performs no I/O.
//   - Restore(state, actions) re-emits the tracked actions that are still
//     outstanding after a crash, reading the state only.
//
// Actions are descriptions, never executions. A tracked action ({ID,
// Action}) matters to correctness: the runtime executes it after the
// transition is durable, at least once, and returns its result to the
// entity as a completion input. An untracked action is fire-and-forget.
//
// # Rules for machine authors
//
//  1. Atomic: a transition that returns an error leaves the state as it was.
//  2. Deterministic: same state and input give the same state, actions and
//     error. No clock, no global randomness, no I/O, no map-order leaks.
//  3. Valid: invariants hold after every call, success or failure.
//  4. Action IDs come from a counter in the state; every emission gets a
//     fresh ID; Restore re-emits under the original IDs and never invents.
//  5. Whatever Restore needs to re-emit an action is in the state written by
//     the same transition.
//  6. Every completion changes the state.
//  7. Restore is a function of state alone and re-emits every outstanding
//     tracked action.
//  8. All external data (time, answers of other systems) arrives as input.
//
// The simulator in package sim checks every rule with seeded runs.
//
// # The driver
//
// A [Kind] bundles a machine with its codecs and limits; a [Driver] runs one
// entity of that kind. Like etcd's raft core, the driver does no I/O and
// returns its effects as data: [Driver.Step] applies one input and appends
// to an [Effects] the journal record to persist, the tracked actions to
// execute and the untracked actions to send. The caller must carry them out
// in this order: make the records durable, then reply, then execute the
// actions. A rejected input leaves the state exactly as it was (the driver
// rolls back even a machine that mutated before failing), a completion for
// an action that is not outstanding is dropped, and a request ID seen
// recently gets the original reply without a second transition.
//
// After a crash, [Kind.Recover] loads a [Snapshot] and replays the journal
// with [Driver.Replay], which verifies each step against its record and
// reports hidden nondeterminism as a *[NondeterminismError]; then
// [Driver.Restore] re-emits the outstanding actions.
//
// # Database-backed state
//
// A state whose pointer implements [ViewState] keeps its large part in the
// entity's keyspace and reads and writes it through a kv.View (package
// machine/kv) inside Transition. The driver makes each step a transaction
// over both parts: a rejection discards the view's writes (and rolls back
// the in-memory part), an accepted step journals its write set with the
// keys' before-images in Record.Writes, and a failed read fails the step
// without journaling anything. [Kind.RecoverFrom] replays a journal tail
// over the keyspace and verifies the replayed write sets. Snapshots hold
// the in-memory part only.
//
// # Encoding
//
// State, actions and records are compared and checksummed as bytes, so the
// encoding must be canonical: equal values give equal bytes. [DefaultCodec]
// is such a codec for ordinary Go types (maps included); a machine with a
// large or hot state can supply its own [Codec] and a Clone function.
package machine
