// Package actor is the node host: it runs entities of registered machine
// kinds as protoactor-go actors and keeps the runtime guarantees of
// SEMANTICS.md section 3.
//
// # The path of one input
//
// Application code holds a typed [Ref] to an entity (kind and ID) and calls
// Ask, Tell or Query. The host hashes the entity to a shard; each shard is
// an actor that owns its entities' actors, activates an entity on first use
// and passivates it when idle or when the shard exceeds its share of the
// active-entity cap (least recently used first). Requests for an active
// entity go straight to its actor; the shard actor opens and closes that
// direct path so that one sender's requests keep their order and none
// reaches an actor that has stopped.
//
// An entity actor loads its snapshot and journal from the store, replays
// them through the pure driver (package machine) verifying every recorded
// digest, runs Restore and hands the actions it re-emits to the executors.
// Then it applies inputs one at a time: it steps every queued input into
// one batch, stamps each with the acceptance time, appends the batch's
// records to the store with the expected sequence number (a
// compare-and-set), and only when the append is durable replies to the
// callers, hands tracked actions to the executors and untracked ones to
// the kind's sink. Inputs that arrive while an append is in flight form the
// next batch, so a busy entity writes one record group per round trip and
// the store groups many entities' appends into one synced write.
//
// A rejected input is rolled back by the driver and answered with the
// machine's own error, unchanged. A retried request ID gets the original
// reply. A query waits for the inputs queued before it to be durable, so it
// never shows state a crash could take back.
//
// # Actions
//
// Tracked actions run at least once in goroutines bounded by
// ActionConfig.MaxInFlight, with a per-attempt timeout, exponential backoff
// with jitter, and a terminal failure result after MaxAttempts. Each call
// carries the idempotency key (kind/id/action) and a fencing token. Two
// kinds of tracked action are built in: a durable timer and delivery of an
// input to another entity (request ID = the idempotency key, retried until
// the target answers, completed with its reply). Results come back as
// completion inputs; the driver drops duplicates.
//
// # Bounds
//
// Every queue is bounded: requests pending host-wide, inputs waiting at an
// entity, actions queued, inputs per batch. Past a bound a call fails with
// ErrOverloaded instead of blocking. protoactor's bounded mailboxes block
// senders, so the host bounds admission itself and keeps mailboxes
// unbounded.
//
// # Cluster mode
//
// With Config.Cluster set, the host listens on protoactor remote and
// routes every request (Ask, Tell, Query, tracked-action completions and
// entity-to-entity deliveries) by the shard map of the current
// cluster.View: a shard this node owns is served locally as above; another
// owner's shard goes, as one wire.Envelope, to that member's router (the
// actor named RouterName at Addrs.Remote), which answers with an OP_REPLY
// envelope under the same correlation. Inputs, results and states travel
// in the kind's machine codecs; a rejection arrives as a *machine.Error,
// so errors.Is still matches the machine's sentinel. A shard that is
// unowned or whose owner is down fails at once with ErrNoOwner; a node
// asked for a shard it does not own answers ErrMoved; both are retried by
// Ask and Query within their context, with the view read again each time.
// A Client (NewClient, RegisterClient) does the same for processes that
// host no entities.
//
// # Shard handoff
//
// A host that follows a watched view (ClusterConfig.Watch, fed by
// cluster.Node.Watch) owns exactly the shards the newest view assigns it,
// each under the shard's epoch in the view, which is the fence its
// entities' actions carry. When a shard moves away, its shard actor stops
// serving at once: requests that still reach it are answered ErrMoved (a
// completion is sent on to the new owner), every entity finishes its
// append in flight, answers its queued inputs ErrMoved and stops, even
// with outstanding actions (they are durable, and the new owner's Restore
// re-drives them; the old owner dispatches no new ones). When a shard is
// gained, the entities the store lists with outstanding actions are
// activated at once. A shard that moved away and back between two views
// is handed off and re-activated under its new epoch. The store's
// compare-and-set remains the safety net: an append from a stale owner
// fails, and the entity reloads. Host.Shard reports how a host holds a
// shard.
//
// # Failures
//
// A panic in machine code fails that input only (the driver recovers it).
// A failed append answers the batch's callers with ErrUnavailable (Ask
// retries it transparently with the same request ID) and reloads the
// entity from the store. An entity whose data cannot be loaded (corruption,
// nondeterminism found on replay) answers ErrEntityFailed with the cause
// and is loaded afresh on its next use; one whose store cannot be read
// right now (an unreachable database) answers ErrUnavailable instead, so
// Ask retries until the store is back or its context ends.
package actor
