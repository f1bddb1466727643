package cluster

// Test hooks for the external tests of this package.

// SetJoinHook runs f in every leaderJoin between adding the joining node
// to Raft and admitting it as a member (nil: none).
func SetJoinHook(f func(n *Node)) { testHookJoinAdded = f }

// ReconcileVoters runs the leader's Raft membership reconciliation now.
func (n *Node) ReconcileVoters() { n.reconcileVoters() }
