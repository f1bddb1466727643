package admin

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// scrape gathers reg and returns every sample as "name{labels}" -> value
// (labels as k="v" in the order registered).
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if ls := m.GetLabel(); len(ls) > 0 {
				key += "{"
				for i, l := range ls {
					if i > 0 {
						key += ","
					}
					key += l.GetName() + `="` + l.GetValue() + `"`
				}
				key += "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

func testNodeConfig(dir string, id shard.NodeID, shards int) cluster.Config {
	return cluster.Config{
		NodeID: id, DataDir: filepath.Join(dir, string(id)),
		RaftBind: "127.0.0.1:0", AdminBind: "127.0.0.1:0", RemoteAddr: "127.0.0.1:1",
		Shards: shards, Plan: shard.PlanOptions{MaxMovesPerRound: 64},
		HeartbeatInterval: 100 * time.Millisecond, FailureTimeout: time.Second,
		RaftHeartbeatTimeout: 300 * time.Millisecond, RaftElectionTimeout: 300 * time.Millisecond,
		RaftLeaderLeaseTimeout: 150 * time.Millisecond, RoundInterval: 20 * time.Millisecond,
		RebalanceInterval: 200 * time.Millisecond, JoinTimeout: 15 * time.Second, RPCTimeout: time.Second,
		ApplyTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// waitMetrics scrapes until ok holds (bounded), returning the last scrape.
func waitMetrics(t *testing.T, reg *prometheus.Registry, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, reg)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last scrape: %v", what, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterMetricsMove runs two in-process cluster nodes and checks the
// collector's figures as the second joins: a leader with a term, a commit
// index that grows with the join, members by status and shards owned.
func TestClusterMetricsMove(t *testing.T) {
	const shards = 12
	dir := t.TempDir()
	n1, err := cluster.Start(context.Background(), func() cluster.Config {
		c := testNodeConfig(dir, "n1", shards)
		c.Bootstrap = true
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n1.Shutdown() })
	reg1 := prometheus.NewRegistry()
	reg1.MustRegister(NewClusterCollector(n1.Status))

	m := waitMetrics(t, reg1, "n1 to lead an initialized cluster of one", func(m map[string]float64) bool {
		return m["phasm_raft_is_leader"] == 1 && m[`phasm_cluster_members{status="alive"}`] == 1 &&
			m["phasm_cluster_shards_owned"] == shards
	})
	if m["phasm_raft_term"] < 1 || m[`phasm_raft_state{state="Leader"}`] != 1 || m[`phasm_raft_state{state="Follower"}`] != 0 ||
		m[`phasm_raft_leader_info{leader_id="n1"}`] != 1 || m["phasm_cluster_shards"] != shards ||
		m[`phasm_cluster_member_shards{member_id="n1"}`] != shards || m["phasm_cluster_map_epoch"] < 1 ||
		m["phasm_raft_commit_index"] < 1 || m["phasm_raft_applied_index"] < 1 || m["phasm_raft_last_contact_seconds"] != 0 {
		t.Fatalf("n1 alone: unexpected figures %v", m)
	}
	commit, version, epoch := m["phasm_raft_commit_index"], m["phasm_cluster_state_version"], m["phasm_cluster_map_epoch"]

	n2, err := cluster.Start(context.Background(), func() cluster.Config {
		c := testNodeConfig(dir, "n2", shards)
		c.Join = []string{n1.AdminAddr()}
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n2.Shutdown() })
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(NewClusterCollector(n2.Status))

	m = waitMetrics(t, reg1, "n2 to join and own shards", func(m map[string]float64) bool {
		return m[`phasm_cluster_members{status="alive"}`] == 2 && m[`phasm_cluster_member_shards{member_id="n2"}`] > 0
	})
	if m["phasm_raft_commit_index"] <= commit || m["phasm_cluster_state_version"] <= version || m["phasm_cluster_map_epoch"] <= epoch {
		t.Errorf("after the join: commit index %g (was %g), version %g (was %g), map epoch %g (was %g): each should grow",
			m["phasm_raft_commit_index"], commit, m["phasm_cluster_state_version"], version, m["phasm_cluster_map_epoch"], epoch)
	}
	if got := m["phasm_cluster_shards_owned"] + m[`phasm_cluster_member_shards{member_id="n2"}`]; got != shards {
		t.Errorf("n1 owns %g and n2 %g shards: want %d in all", m["phasm_cluster_shards_owned"], m[`phasm_cluster_member_shards{member_id="n2"}`], shards)
	}
	m2 := waitMetrics(t, reg2, "n2 to follow n1", func(m map[string]float64) bool {
		return m[`phasm_raft_state{state="Follower"}`] == 1 && m[`phasm_raft_leader_info{leader_id="n1"}`] == 1 &&
			m["phasm_cluster_shards_owned"] > 0
	})
	if m2["phasm_raft_is_leader"] != 0 || m2["phasm_raft_term"] < 1 {
		t.Errorf("n2: is_leader %g, term %g: want 0 and >= 1", m2["phasm_raft_is_leader"], m2["phasm_raft_term"])
	}
}
