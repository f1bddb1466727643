package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/phasm-go/phasm/shard"
)

// Status is a node's report for `phasm status`: its Raft state and the
// membership as it has applied it. Fetch a remote node's with FetchStatus.
type Status struct {
	// Node is the reporting node; Leader the leader it knows ("" if none).
	Node   shard.NodeID `json:"node"`
	Leader shard.NodeID `json:"leader"`
	// RaftState is "Follower", "Candidate", "Leader" or "Shutdown".
	RaftState string `json:"raft_state"`
	// Term is the current Raft term; LastIndex, CommitIndex and
	// AppliedIndex the Raft log positions.
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactAgo is the time since this node last heard from the
	// leader (0 on the leader or when never).
	LastContactAgo time.Duration `json:"last_contact_ago"`
	// Version is the state version, MapEpoch the shard map's epoch, Shards
	// the shard count (0 before initialization).
	Version  uint64 `json:"version"`
	MapEpoch uint64 `json:"map_epoch"`
	Shards   int    `json:"shards"`
	// Members, sorted by ID.
	Members []MemberStatus `json:"members"`
}

// MemberStatus is one member in a Status.
type MemberStatus struct {
	Member
	// StatusName is Status spelled out ("alive", "down", ...).
	StatusName string `json:"status_name"`
	// Suffrage is "Voter" or "Nonvoter" in the Raft configuration, or ""
	// when the member is not in it (a Down member is removed).
	Suffrage string `json:"suffrage"`
	// OwnedShards is how many shards it owns.
	OwnedShards int `json:"owned_shards"`
}

// Status returns the node's report (see Status).
func (n *Node) Status() Status {
	st := n.fsm.state()
	s := Status{
		Node: n.cfg.NodeID, Leader: n.leaderID(), RaftState: n.raft.State().String(),
		Term: n.raft.CurrentTerm(), LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(), Version: st.Version, MapEpoch: st.Map.Epoch, Shards: len(st.Map.Shards),
	}
	if n.raft.State() != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			s.LastContactAgo = n.clock().Sub(lc)
		}
	}
	suffrage := map[shard.NodeID]string{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			suffrage[shard.NodeID(srv.ID)] = srv.Suffrage.String()
		}
	}
	owned := map[shard.NodeID]int{}
	for _, a := range st.Map.Shards {
		owned[a.Owner]++
	}
	for _, m := range st.Members {
		s.Members = append(s.Members, MemberStatus{Member: m, StatusName: m.Status.String(), Suffrage: suffrage[m.ID], OwnedShards: owned[m.ID]})
	}
	return s
}
