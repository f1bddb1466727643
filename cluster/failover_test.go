package cluster_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// defaultConfig is a node with the package's default timeouts and shard
// count: what the failover figures are about.
func defaultConfig(dir string, id shard.NodeID) cluster.Config {
	return cluster.Config{
		NodeID: id, DataDir: filepath.Join(dir, string(id)),
		RaftBind: "127.0.0.1:0", AdminBind: "127.0.0.1:0",
		Logger: testLogger().With("test_node", string(id)),
	}
}

// BenchmarkFailover measures failover with the default timeouts
// (FailureTimeout 3s, Raft heartbeat and election timeouts 1s, 256
// shards): the time from a SIGKILL-equivalent Shutdown of a node that owns
// a third of the shards until a survivor's view has every shard owned by a
// live node. Each iteration kills one node of three and then restarts it
// (it rejoins) and waits for balance again. Run it with
//
//	go test -run '^$' -bench Failover -benchtime 5x ./cluster/
//
// It reports the median and the maximum over the iterations.
func BenchmarkFailover(b *testing.B) {
	for _, victim := range []string{"follower", "leader"} {
		b.Run(victim, func(b *testing.B) {
			c := newTestCluster(b)
			c.conf = defaultConfig
			a := c.mustStart("a", bootstrap)
			c.mustStart("b", joinVia(a))
			c.mustStart("c", joinVia(a))
			ids := []shard.NodeID{"a", "b", "c"}
			waitBalanced(b, c, ids)
			var took []time.Duration
			b.ResetTimer()
			for range b.N {
				l := c.leader()
				if l == nil {
					b.Fatal("no leader")
				}
				var dead shard.NodeID
				for _, id := range ids {
					if (id == l.ID()) == (victim == "leader") {
						dead = id
						break
					}
				}
				var survivor *cluster.Node
				for _, id := range ids {
					if id != dead {
						survivor = c.nodes[id]
					}
				}
				owned := len(c.nodes[dead].View().Owned())
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				w := survivor.Watch(ctx)
				<-w
				start := time.Now()
				c.kill(dead)
				for v := range w {
					if allOwnedBy(v, dead) {
						break
					}
				}
				d := time.Since(start)
				cancel()
				if ctx.Err() != nil && d >= 30*time.Second {
					b.Fatal("no failover within 30s")
				}
				took = append(took, d)
				b.Logf("killed %s %s (owned %d shards): every shard owned by a live node after %s", victim, dead, owned, d.Round(time.Millisecond))

				b.StopTimer()
				n, err := cluster.Start(context.Background(), defaultConfig(c.dir, dead))
				if err != nil {
					b.Fatal(err)
				}
				c.nodes[dead] = n
				waitBalanced(b, c, ids)
				b.StartTimer()
			}
			slices.Sort(took)
			b.ReportMetric(took[len(took)/2].Seconds(), "median-failover-s")
			b.ReportMetric(took[len(took)-1].Seconds(), "max-failover-s")
			b.ReportMetric(0, "ns/op")
			b.Logf("failover (%s, n=%d): %v", victim, len(took), took)
		})
	}
}

// allOwnedBy reports whether every shard in v is owned by an Alive member
// other than dead.
func allOwnedBy(v cluster.View, dead shard.NodeID) bool {
	if len(v.Map.Shards) == 0 {
		return false
	}
	for s := range v.Map.Shards {
		m, _, ok := v.Owner(shard.ID(s))
		if !ok || m.ID == dead || m.Status != shard.Alive {
			return false
		}
	}
	return true
}

func waitBalanced(tb testing.TB, c *testCluster, ids []shard.NodeID) {
	tb.Helper()
	waitFor(tb, 60*time.Second, "balanced", func() (bool, string) {
		for _, n := range c.nodes {
			v := n.View()
			counts := map[shard.NodeID]int{}
			for s := range v.Map.Shards {
				m, _, ok := v.Owner(shard.ID(s))
				if !ok || m.Status != shard.Alive {
					return false, fmt.Sprintf("%s: shard %d not owned by a live member", n.ID(), s)
				}
				counts[m.ID]++
			}
			for _, id := range ids {
				if m, ok := v.Member(id); !ok || m.Status != shard.Alive {
					return false, fmt.Sprintf("%s: %s not alive", n.ID(), id)
				}
				if d := counts[id] - len(v.Map.Shards)/len(ids); d < -1 || d > 1 {
					return false, fmt.Sprintf("%s: unbalanced %v", n.ID(), counts)
				}
			}
		}
		return true, ""
	})
}
