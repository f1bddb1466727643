// Package shard maps entities to shards and shards to nodes. It is pure:
// no clock, no randomness, no goroutines, no I/O; the cluster layer feeds
// it the facts and carries out what it returns.
//
// # The idea
//
// A cluster has a fixed number of shards (DefaultShards unless
// configured). Every entity belongs to exactly one shard, computed from its
// kind and ID by [Of]; that function is a persisted format, golden-tested,
// because stored journals are found through it. Shards, not entities, are
// what nodes own and what moves between nodes, so moving a node's work is
// moving a few hundred shards rather than millions of entities.
//
// Which node owns which shard is the shard [Map], a plain value the cluster
// replicates with Raft. Each shard's [Assignment] carries an epoch that
// rises by one every time the shard changes owner, and the map has an
// epoch of its own that rises by one with every change.
//
// The planner, [Plan], looks at the current map and the members with their
// status and returns a [Round]: the moves to make now. It puts
// availability first (shards of dead or removed members move at once,
// without limit), hands off the shards of members that are leaving, and
// then evens the load so owned counts among Alive members differ by at
// most one, moving as few shards as that takes. Discretionary moves
// (drains and rebalancing) are bounded per round, and rebalancing waits
// while any member is Joining, Restarting or Suspect, so a wave of joins
// or a rolling restart does not set off a storm of moves. Given the same
// inputs it always returns the same Round.
//
// [Map.Apply] turns a map and a round into the next map. It is a
// compare-and-set: a round planned from another map epoch is refused with
// [ErrStalePlan].
//
// # The cluster layer's loop
//
//	r, err := shard.Plan(cur, members, opts) // on the leader
//	if len(r.Moves) > 0 {
//		// propose r through Raft; every replica's FSM runs
//		next, err := cur.Apply(r) // ErrStalePlan: drop it, the leader replans
//	}
//	// wait for the round's handoffs to finish (or time out), then plan again
//
// # Fencing with epochs
//
// The pair (shard, Assignment.Epoch) names one tenure of one owner. A node
// serves shard s only while the newest map it has applied says it owns s,
// and only under that map's epoch for s. On handoff the old owner sees the
// new map, stops the shard's entities and flushes; the new owner starts
// them under the raised epoch. Because the two may overlap when timing
// lies, the epoch is a fencing token: anything that carries it (forwarded
// inputs, the store's per-shard records, the index of entities with
// outstanding actions) refuses a tenure older than the newest it has seen,
// and the store's compare-and-set on journal sequence numbers keeps each
// entity's history single-writer regardless.
//
// # Encoding
//
// [Map.MarshalBinary] writes a canonical, versioned, checksummed encoding
// (equal maps give equal bytes); [Map.UnmarshalBinary] reports any damage
// as an error wrapping [ErrCorrupt] and never panics.
package shard
