package admin

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// raftStates are the values of phasm_raft_state's "state" label: every
// one is exported on each scrape (1 for the node's state, 0 otherwise), so
// a dashboard can sum by state across nodes.
var raftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

// memberStatuses are the values of phasm_cluster_members' "status" label,
// each exported (0 included) on every scrape.
var memberStatuses = []shard.Status{shard.Alive, shard.Joining, shard.Restarting, shard.Suspect, shard.Leaving, shard.Down}

// clusterCollector exports a cluster node's Raft and membership figures,
// read from its Status on every scrape (so they are never stale and cost
// nothing between scrapes).
type clusterCollector struct {
	status func() cluster.Status

	isLeader, leaderInfo, state, term         *prometheus.Desc
	lastIndex, commitIndex, appliedIndex      *prometheus.Desc
	lastContact, shardsOwned, shards, members *prometheus.Desc
	memberShards, mapEpoch, version           *prometheus.Desc
}

// NewClusterCollector returns a Prometheus collector of a cluster node's
// state, read through status (cluster.Node.Status) on every scrape:
//
//	phasm_raft_is_leader                   1 on the Raft leader, else 0
//	phasm_raft_leader_info{leader_id}      1, labelled with the leader this node knows (absent during an election)
//	phasm_raft_state{state}                1 for the node's Raft state (Follower, Candidate, Leader, Shutdown), 0 for the others
//	phasm_raft_term                        the current Raft term
//	phasm_raft_last_index                  the last Raft log index
//	phasm_raft_commit_index                the Raft commit index
//	phasm_raft_applied_index               the last index applied to the cluster state
//	phasm_raft_last_contact_seconds        time since this follower last heard from the leader (0 on the leader)
//	phasm_cluster_shards_owned             shards this node owns in the shard map
//	phasm_cluster_shards                   the cluster's shard count (0 before initialization)
//	phasm_cluster_member_shards{member_id} shards each member owns
//	phasm_cluster_members{status}          members by status (alive, joining, restarting, suspect, leaving, down)
//	phasm_cluster_map_epoch                the shard map's epoch (+1 per change that moves shards)
//	phasm_cluster_state_version            the replicated state's version (+1 per applied change)
func NewClusterCollector(status func() cluster.Status) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("phasm_"+name, help, labels, nil)
	}
	return &clusterCollector{
		status:       status,
		isLeader:     d("raft_is_leader", "1 when this node is the Raft leader, else 0."),
		leaderInfo:   d("raft_leader_info", "Always 1, labelled with the Raft leader this node knows; absent while there is none.", "leader_id"),
		state:        d("raft_state", "1 for this node's Raft state, 0 for the other states.", "state"),
		term:         d("raft_term", "The current Raft term."),
		lastIndex:    d("raft_last_index", "The last index in this node's Raft log."),
		commitIndex:  d("raft_commit_index", "The Raft commit index."),
		appliedIndex: d("raft_applied_index", "The last Raft index applied to the cluster state."),
		lastContact:  d("raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader or before any contact)."),
		shardsOwned:  d("cluster_shards_owned", "Shards this node owns in the shard map."),
		shards:       d("cluster_shards", "The cluster's shard count (0 before the cluster is initialized)."),
		memberShards: d("cluster_member_shards", "Shards each member owns in the shard map.", "member_id"),
		members:      d("cluster_members", "Cluster members by status.", "status"),
		mapEpoch:     d("cluster_map_epoch", "The shard map's epoch: +1 for every change that moves shards."),
		version:      d("cluster_state_version", "The replicated cluster state's version: +1 for every applied change."),
	}
}

// Describe sends every descriptor.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.isLeader, c.leaderInfo, c.state, c.term, c.lastIndex, c.commitIndex,
		c.appliedIndex, c.lastContact, c.shardsOwned, c.shards, c.memberShards, c.members, c.mapEpoch, c.version} {
		ch <- d
	}
}

// Collect reads the status once and sends every metric.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Terms and indexes only grow in practice, but a follower's log can
	// be truncated: gauges, like Raft's own metrics.
	num := func(d *prometheus.Desc, v uint64) { gauge(d, float64(v)) }
	gauge(c.isLeader, b2f(st.RaftState == "Leader"))
	if st.Leader != "" {
		gauge(c.leaderInfo, 1, string(st.Leader))
	}
	for _, s := range raftStates {
		gauge(c.state, b2f(st.RaftState == s), s)
	}
	num(c.term, st.Term)
	num(c.lastIndex, st.LastIndex)
	num(c.commitIndex, st.CommitIndex)
	num(c.appliedIndex, st.AppliedIndex)
	gauge(c.lastContact, st.LastContactAgo.Seconds())
	gauge(c.shards, float64(st.Shards))
	byStatus := map[shard.Status]int{}
	owned := 0
	ms := append([]cluster.MemberStatus(nil), st.Members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	for _, m := range ms {
		byStatus[m.Status]++
		gauge(c.memberShards, float64(m.OwnedShards), string(m.ID))
		if m.ID == st.Node {
			owned = m.OwnedShards
		}
	}
	gauge(c.shardsOwned, float64(owned))
	for _, s := range memberStatuses {
		gauge(c.members, float64(byStatus[s]), s.String())
	}
	num(c.mapEpoch, st.MapEpoch)
	num(c.version, st.Version)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
