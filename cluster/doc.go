// Package cluster replicates membership and the shard map with
// hashicorp/raft: bootstrap, join and leave, failure detection, the
// leader's allocator loop, mutual TLS, and the watch API the actor host
// follows.
//
// # The idea
//
// A phasm cluster is a few nodes that agree, through one small Raft group,
// on two things: who the members are (addresses, status, incarnation) and
// who owns each shard (the shard.Map with its per-shard epochs). Entity
// traffic never goes through Raft; it is routed by the map every node
// holds a replica of. Raft carries only membership changes and rounds of
// shard moves, a few entries a second at most.
//
// The replicated state is a plain value, [State], changed only by
// [State.Apply] of a [Command]. Apply is pure and deterministic: time
// enters only inside commands, stamped by the leader when it proposes
// them, so every replica that applies the same log holds the same state
// and the same canonical bytes ([State.MarshalBinary], which is also the
// Raft snapshot). A command is rejected as a whole, with a typed error,
// never half-applied and never a panic: a corrupt log entry or an unknown
// command type leaves the state unchanged on every replica alike. A round
// of shard moves is a compare-and-set on the map epoch it was planned
// from, so a round planned from an older map is refused (ErrStaleRound)
// and the leader plans again.
//
// All decisions are the leader's. Members send it a heartbeat every
// HeartbeatInterval over the cluster RPC (not through Raft). The leader's
// failure detector turns silence into status changes and proposes a
// command only when a status changes: silent for SuspectTimeout, Alive
// becomes Suspect (which holds rebalancing); silent for FailureTimeout,
// Down (its shards move in the next round, at once and without bound); a
// heartbeat from a Joining or Suspect member makes it Alive. A new leader
// starts every timer afresh, so an election never marks the cluster down;
// only the previous leader's timer starts at the new leader's last contact
// with it. After any change, and every RebalanceInterval, the leader's
// allocator runs shard.Plan and proposes the round, one at a time and at
// least RoundInterval apart, each applied before the next is planned.
//
// # Raft membership policy
//
// The first VoterLimit members are Raft voters, the rest non-voters. A
// member marked Down is removed from the Raft configuration, so a dead
// voter stops counting toward the quorum, and an Alive non-voter is
// promoted in its place. A Down node that comes back is told to rejoin by
// its first heartbeat: it joins again with a new incarnation, as Joining,
// and becomes Alive on its next heartbeat. Down members stay in the
// membership (visible in status) until they rejoin or are removed.
//
// # Joining, leaving, crashing
//
// [Start] makes a node a member: a new cluster bootstraps from one
// Bootstrap node or from a static Peers list; any other node asks the
// leader, directly or through any member's admin address in Join, to admit
// it. The leader adds its Raft server and applies AddMember. [Node.Leave]
// is graceful: the node is marked Leaving, the allocator drains its shards
// (within the per-round bound), and once it owns none the leader removes
// it from the membership and from Raft. [Node.Shutdown] is a crash as far
// as the others can tell.
//
// # The cluster RPC
//
// JSON over HTTP/1.1 on each node's admin address (AdminBind), over mutual
// TLS when Config.TLS is set:
//
//	POST /v1/cluster/join       {"id","raft","remote","admin","shards"}
//	                            -> {"leader","incarnation","voter"}
//	POST /v1/cluster/heartbeat  {"id","incarnation"} -> {"leader","rejoin"}
//	POST /v1/cluster/leave      {"id","incarnation"} -> {}
//	POST /v1/cluster/remove     {"id"} -> {}
//	GET  /v1/cluster/status     -> Status
//
// join, leave and remove may be sent to any member: one that is not the
// leader forwards the request once to the leader (marked with the
// Phasm-Forwarded header, so it is never forwarded twice). Heartbeats go
// to the leader only; another node answers not_leader. Errors are a
// non-200 status with {"code","message"}; the codes (not_leader,
// no_leader, shutdown, join_rejected, last_member, owns_shards,
// unknown_member, invalid_transition, stale_incarnation, bad_request,
// internal) map back to this package's sentinels in a [RemoteError], so
// callers use errors.Is across the wire. Bodies are limited to 1 MiB.
//
// # Mutual TLS
//
// With Config.TLS, the Raft transport (a raft.StreamLayer over
// tls.Listener and tls.Dialer) and the RPC both require a client
// certificate signed by the cluster CA and verify the server's against
// it. A certificate from the cluster CA is the credential: host names are
// not checked unless Config.TLS.ServerName is set. Connections that fail
// the handshake are refused and logged. [NewDevCA], [WriteDevCA],
// [DevCA.WriteNode] and [LoadTLS] make and load a development CA and node
// certificates (ECDSA P-256, PEM files).
//
// # Following the cluster
//
// The actor host follows [Node.Watch]: the current [View] at once, then
// the latest view after every change (a slow reader skips intermediate
// ones, never an old one after a newer one). A View has the shard map,
// the members with addresses and status, the leader and the state
// version. [Node.Status] is the report `phasm status` prints.
//
// Multi-node clusters need a shared store: [CheckStore] refuses a
// node-local one.
package cluster
