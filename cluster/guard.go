package cluster

import "fmt"

// CheckStore refuses a cluster of more than one node on a node-local store.
// A shard's journals must be readable by whichever node owns the shard
// next; an embedded store (Pebble, in-memory) lives on one node's disk and
// cannot move with the shard, so a failover would silently start the
// shard's entities empty. Call it at start-up with the store's locality
// and the expected cluster size (the number of peers, or 2 when joining an
// existing cluster). The error wraps ErrLocalStore.
func CheckStore(storeIsNodeLocal bool, clusterSize int) error {
	if storeIsNodeLocal && clusterSize > 1 {
		return fmt.Errorf("%w: a cluster of %d nodes cannot run on a node-local store (its journals cannot move with a shard); use a shared store such as PostgreSQL, or run a single node", ErrLocalStore, clusterSize)
	}
	return nil
}
