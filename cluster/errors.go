package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them (or a
// shard package sentinel); check them with errors.Is.
var (
	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("cluster: invalid config")

	// ErrUnknownCommand: an encoded command of a version or type this
	// build does not know. A *DecodeError carries the details.
	ErrUnknownCommand = errors.New("cluster: unknown command")
	// ErrCorruptCommand: an encoded command is truncated, fails its
	// checksum, is not canonical, or holds an invalid field.
	ErrCorruptCommand = errors.New("cluster: corrupt command")
	// ErrCorruptSnapshot: an encoded State is malformed, fails its checksum,
	// or decodes to a state that breaks the invariants of State.Validate.
	ErrCorruptSnapshot = errors.New("cluster: corrupt snapshot")

	// ErrInvalidCommand: a command whose fields are invalid in themselves
	// (an empty node ID, an address that is too long, a bad shard count).
	ErrInvalidCommand = errors.New("cluster: invalid command")
	// ErrInvalidState: a State breaks one of its invariants.
	ErrInvalidState = errors.New("cluster: invalid state")
	// ErrNotInitialized: the command needs the shard map, and no Init
	// command has been applied yet.
	ErrNotInitialized = errors.New("cluster: state not initialized")
	// ErrAlreadyInitialized: Init with a shard count other than the one
	// the state was initialized with.
	ErrAlreadyInitialized = errors.New("cluster: already initialized")
	// ErrUnknownMember: the command names a node that is not a member.
	ErrUnknownMember = errors.New("cluster: unknown member")
	// ErrStaleIncarnation: the command names an incarnation of the member
	// other than its current one (it was planned before the member
	// rejoined). Drop it.
	ErrStaleIncarnation = errors.New("cluster: stale incarnation")
	// ErrInvalidTransition: the member's status does not allow the
	// command (a Down member cannot start leaving, a Leaving member cannot
	// become Alive again without rejoining).
	ErrInvalidTransition = errors.New("cluster: invalid status transition")
	// ErrMemberOwnsShards: Remove of a member that still owns shards. Its
	// shards must move first (Leave, or MarkDown and let the allocator run).
	ErrMemberOwnsShards = errors.New("cluster: member still owns shards")
	// ErrTooManyMembers: AddMember beyond MaxMembers.
	ErrTooManyMembers = errors.New("cluster: too many members")
	// ErrStaleRound: ApplyRound of a round planned from another map epoch.
	// It also wraps shard.ErrStalePlan. The leader plans again.
	ErrStaleRound = errors.New("cluster: stale round")
	// ErrInvalidRound: ApplyRound of a round that does not fit the map or
	// moves a shard to a member that is not Alive. It may also wrap
	// shard.ErrInvalidPlan.
	ErrInvalidRound = errors.New("cluster: invalid round")

	// ErrIdentity: on mutual TLS, a cluster RPC whose node ID is not the
	// Common Name of the caller's certificate (a node may speak only for
	// itself), or a forwarded request from a caller that is not a member.
	ErrIdentity = errors.New("cluster: caller's certificate does not match its node ID")

	// ErrNotLeader: the request needs the Raft leader and this node is not
	// it (or a forwarded request reached a node that is not the leader).
	// Retry against the current leader.
	ErrNotLeader = errors.New("cluster: not the leader")
	// ErrNoLeader: no leader is known right now (an election is running,
	// or the cluster has lost its quorum). Retry later.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrJoinRejected: the cluster refused the join (a different shard
	// count, an invalid request, or too many members). Not retryable.
	ErrJoinRejected = errors.New("cluster: join rejected")
	// ErrJoinFailed: the node could not join within Config.JoinTimeout.
	// The error lists the last failure per address.
	ErrJoinFailed = errors.New("cluster: join failed")
	// ErrLastMember: Leave of the only member that could own shards; there
	// is nobody to hand them to.
	ErrLastMember = errors.New("cluster: no other live member to hand shards to")
	// ErrLeaveTimeout: Leave's context ended before the node's shards were
	// handed off and it was removed. The node stays Leaving.
	ErrLeaveTimeout = errors.New("cluster: leave did not finish")
	// ErrShutdown: the node has been shut down.
	ErrShutdown = errors.New("cluster: node shut down")
	// ErrRPC: a join, heartbeat or leave request failed in transport (a
	// refused connection, a TLS handshake the peer rejected, a timeout, a
	// malformed answer). Retryable against another address.
	ErrRPC = errors.New("cluster: rpc failed")
	// ErrLocalStore: a cluster of more than one node on a node-local
	// store; see CheckStore.
	ErrLocalStore = errors.New("cluster: a multi-node cluster needs a shared store")
	// ErrCerts: creating or loading certificates failed.
	ErrCerts = errors.New("cluster: certificates")
)

// DecodeError is returned for a command or snapshot that cannot be decoded.
// It wraps ErrUnknownCommand, ErrCorruptCommand or ErrCorruptSnapshot.
type DecodeError struct {
	// What is "command" or "snapshot".
	What string
	// Offset is the byte offset at which decoding failed (the length for a
	// checksum failure).
	Offset int
	// Reason says what was wrong.
	Reason string
	// Err is the sentinel.
	Err error
}

// Error implements the error interface.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d: %s", e.Err, e.What, e.Offset, e.Reason)
}

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// RemoteError is an error answer from another node's cluster RPC. Err is the
// sentinel the remote's code maps to (ErrNotLeader, ErrNoLeader,
// ErrJoinRejected, ...), so errors.Is works across the wire.
type RemoteError struct {
	// Addr is the admin address that answered.
	Addr string
	// Code is the wire code (see the package documentation).
	Code string
	// Message is the remote's error text.
	Message string
	// Err is the local sentinel for Code.
	Err error
}

// Error implements the error interface.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("%v (from %s): %s", e.Err, e.Addr, e.Message)
}

// Unwrap returns the sentinel.
func (e *RemoteError) Unwrap() error { return e.Err }
