// Package shard maps entities to shards and shards to nodes. It is pure:
// the entity-to-shard hash (a persisted format), the shard map with
// per-shard epochs, and the allocation planner.
package shard
