// Package actor is the node host: entities as protoactor-go actors that
// apply inputs one at a time, persist before replying, execute tracked
// actions with retries, and route inputs to the node that owns their shard.
package actor
