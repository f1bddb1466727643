// Package cluster replicates membership and the shard map with
// hashicorp/raft: bootstrap, join and leave, failure detection, and the
// leader's allocator loop. The actor host follows its watch API.
package cluster
