package cluster_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// testShards keeps the maps small; testLog (PHASM_TEST_LOG=1) shows the
// nodes' logs on stderr.
const testShards = 60

func testLogger() *slog.Logger {
	if os.Getenv("PHASM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fastConfig is a node configuration with timeouts short enough for tests.
func fastConfig(dir string, id shard.NodeID) cluster.Config {
	return cluster.Config{
		NodeID:                 id,
		DataDir:                filepath.Join(dir, string(id)),
		RaftBind:               "127.0.0.1:0",
		AdminBind:              "127.0.0.1:0",
		RemoteAddr:             "127.0.0.1:1" + string(id),
		Shards:                 testShards,
		Plan:                   shard.PlanOptions{MaxMovesPerRound: 64},
		HeartbeatInterval:      100 * time.Millisecond,
		FailureTimeout:         time.Second,
		RaftHeartbeatTimeout:   300 * time.Millisecond,
		RaftElectionTimeout:    300 * time.Millisecond,
		RaftLeaderLeaseTimeout: 150 * time.Millisecond,
		RoundInterval:          20 * time.Millisecond,
		RebalanceInterval:      200 * time.Millisecond,
		JoinTimeout:            15 * time.Second,
		RPCTimeout:             time.Second,
		ApplyTimeout:           2 * time.Second,
		Logger:                 testLogger().With("test_node", string(id)),
	}
}

// testCluster starts and tracks nodes; Cleanup shuts them all down.
type testCluster struct {
	t     testing.TB
	dir   string
	nodes map[shard.NodeID]*cluster.Node
	conf  func(dir string, id shard.NodeID) cluster.Config
}

func newTestCluster(t testing.TB) *testCluster {
	c := &testCluster{t: t, dir: t.TempDir(), nodes: map[shard.NodeID]*cluster.Node{}, conf: fastConfig}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Shutdown()
		}
	})
	return c
}

func (c *testCluster) start(id shard.NodeID, edit func(*cluster.Config)) (*cluster.Node, error) {
	cfg := c.conf(c.dir, id)
	if edit != nil {
		edit(&cfg)
	}
	n, err := cluster.Start(context.Background(), cfg)
	if err == nil {
		c.nodes[id] = n
	}
	return n, err
}

func (c *testCluster) mustStart(id shard.NodeID, edit func(*cluster.Config)) *cluster.Node {
	c.t.Helper()
	n, err := c.start(id, edit)
	if err != nil {
		c.t.Fatalf("starting %s: %v", id, err)
	}
	return n
}

func bootstrap(cfg *cluster.Config) { cfg.Bootstrap = true }

func joinVia(n *cluster.Node) func(*cluster.Config) {
	addr := n.AdminAddr()
	return func(cfg *cluster.Config) { cfg.Join = []string{addr} }
}

// kill shuts a node down without leaving (a crash, as the others see it).
func (c *testCluster) kill(id shard.NodeID) {
	c.t.Helper()
	if err := c.nodes[id].Shutdown(); err != nil {
		c.t.Logf("shutdown %s: %v", id, err)
	}
	delete(c.nodes, id)
}

// leader returns the node that leads, if exactly one of the running nodes
// does.
func (c *testCluster) leader() *cluster.Node {
	var l *cluster.Node
	for _, n := range c.nodes {
		if n.IsLeader() {
			if l != nil {
				return nil
			}
			l = n
		}
	}
	return l
}

// waitFor polls cond until it holds or the bound passes; the failure
// message is cond's last explanation.
func waitFor(t testing.TB, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %s", what, bound, why)
		}
		<-tick.C
	}
}

// settled reports whether every running node has applied the same view,
// in which the members in alive are Alive, the others are not Alive, and
// every shard is owned by an Alive member with owned counts within one.
func (c *testCluster) settled(alive ...shard.NodeID) (bool, string) {
	var first *cluster.View
	for id, n := range c.nodes {
		v := n.View()
		if first == nil {
			first = &v
		} else if v.Version != first.Version {
			return false, fmt.Sprintf("%s at version %d, another node at %d", id, v.Version, first.Version)
		}
	}
	if first == nil {
		return false, "no nodes"
	}
	v := *first
	want := map[shard.NodeID]bool{}
	for _, id := range alive {
		want[id] = true
	}
	for _, m := range v.Members {
		if (m.Status == shard.Alive) != want[m.ID] {
			return false, fmt.Sprintf("member %s is %s", m.ID, m.Status)
		}
	}
	for _, id := range alive {
		if _, ok := v.Member(id); !ok {
			return false, fmt.Sprintf("%s is not a member", id)
		}
	}
	if len(v.Map.Shards) != testShards {
		return false, fmt.Sprintf("map has %d shards", len(v.Map.Shards))
	}
	counts := map[shard.NodeID]int{}
	for s := range v.Map.Shards {
		m, _, ok := v.Owner(shard.ID(s))
		if !ok || !want[m.ID] {
			return false, fmt.Sprintf("shard %d owned by %q (%s)", s, m.ID, m.Status)
		}
		counts[m.ID]++
	}
	lo, hi := testShards, 0
	for _, id := range alive {
		lo, hi = min(lo, counts[id]), max(hi, counts[id])
	}
	if hi-lo > 1 {
		return false, fmt.Sprintf("unbalanced: %v", counts)
	}
	return true, ""
}

// threeNodes starts a bootstrapped a and joins b and c through a, and
// waits until they are settled.
func threeNodes(t testing.TB) *testCluster {
	c := newTestCluster(t)
	a := c.mustStart("a", bootstrap)
	c.mustStart("b", joinVia(a))
	c.mustStart("c", joinVia(a))
	waitFor(t, 15*time.Second, "three nodes settle", func() (bool, string) { return c.settled("a", "b", "c") })
	return c
}

func TestBootstrapJoinAndBalance(t *testing.T) {
	c := threeNodes(t)
	l := c.leader()
	if l == nil || l.ID() != "a" {
		t.Fatalf("leader: want a, got %v", l)
	}
	st := l.Status()
	if st.RaftState != "Leader" || st.Term == 0 || st.CommitIndex == 0 || st.Shards != testShards {
		t.Errorf("status: %+v", st)
	}
	total := 0
	for _, m := range st.Members {
		if m.Suffrage != "Voter" {
			t.Errorf("member %s: suffrage %q, want Voter", m.ID, m.Suffrage)
		}
		if m.Addrs.Raft == "" || m.Addrs.Admin == "" || m.Addrs.Remote != "127.0.0.1:1"+string(m.ID) {
			t.Errorf("member %s: addresses %+v", m.ID, m.Addrs)
		}
		total += m.OwnedShards
	}
	if total != testShards {
		t.Errorf("owned shards sum to %d", total)
	}
	// The status RPC answers the same.
	remote, err := cluster.FetchStatus(context.Background(), c.nodes["b"].AdminAddr(), nil, time.Second)
	if err != nil || remote.Node != "b" || remote.Leader != "a" || len(remote.Members) != 3 {
		t.Errorf("FetchStatus: %+v, %v", remote, err)
	}
}

func TestWatchDeliversChanges(t *testing.T) {
	c := newTestCluster(t)
	a := c.mustStart("a", bootstrap)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := a.Watch(ctx)
	first := <-w
	if first.Self != "a" {
		t.Fatalf("first view: %+v", first)
	}
	c.mustStart("b", joinVia(a))
	// Views arrive in version order until one shows b Alive and owning shards.
	last := first.Version
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for done := false; !done; {
		select {
		case v := <-w:
			if v.Version < last {
				t.Fatalf("version went back from %d to %d", last, v.Version)
			}
			last = v.Version
			if m, ok := v.Member("b"); ok && m.Status == shard.Alive && len(v.Map.ShardsOf("b")) > 0 {
				done = true
			}
		case <-deadline.C:
			t.Fatal("no view with b alive and owning shards")
		}
	}
	cancel()
	for range w { // closed after cancel
	}
}

func TestFollowerCrashMovesShardsAndRejoins(t *testing.T) {
	c := threeNodes(t)
	owned := len(c.nodes["c"].View().Owned())
	if owned == 0 {
		t.Fatal("c owns nothing")
	}
	cfg := fastConfig(c.dir, "c")
	c.kill("c")
	waitFor(t, 10*time.Second, "c down and its shards moved", func() (bool, string) {
		ok, why := c.settled("a", "b")
		if !ok {
			return false, why
		}
		m, _ := c.nodes["a"].View().Member("c")
		if m.Status != shard.Down {
			return false, "c is " + m.Status.String()
		}
		for _, ms := range c.nodes["a"].Status().Members {
			if ms.ID == "c" && ms.Suffrage != "" {
				return false, "c is still a raft " + ms.Suffrage
			}
		}
		return true, ""
	})
	// c restarts from its data directory: it rejoins with a new
	// incarnation and gets shards again.
	n, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes["c"] = n
	waitFor(t, 15*time.Second, "c back", func() (bool, string) { return c.settled("a", "b", "c") })
	if m, _ := c.nodes["a"].View().Member("c"); m.Incarnation < 2 {
		t.Errorf("c's incarnation after rejoining: %d", m.Incarnation)
	}
}

// TestKilledLeadersRestartAndRejoin kills the leader, waits until the
// others mark it Down and drop it from Raft, restarts it from its data
// directory, and waits until it is back, several rounds in a row. A
// restarted node's join used to race with the leader's voter
// reconciliation: the leader added it to Raft, reconciled from a state
// that still said Down and removed it again before admitting it, leaving
// it admitted but outside Raft for good (found by the fault suite).
func TestKilledLeadersRestartAndRejoin(t *testing.T) {
	c := threeNodes(t)
	for round := 1; round <= 3; round++ {
		var l *cluster.Node
		waitFor(t, 15*time.Second, "a single leader", func() (bool, string) {
			l = c.leader()
			return l != nil, "no single leader"
		})
		id := l.ID()
		cfg := fastConfig(c.dir, id)
		c.kill(id)
		var others []shard.NodeID
		for o := range c.nodes {
			others = append(others, o)
		}
		waitFor(t, 15*time.Second, fmt.Sprintf("round %d: %s down and out of Raft", round, id), func() (bool, string) {
			if ok, why := c.settled(others...); !ok {
				return false, why
			}
			n := c.nodes[others[0]]
			if m, _ := n.View().Member(id); m.Status != shard.Down {
				return false, fmt.Sprintf("%s is %s", id, m.Status)
			}
			for _, ms := range n.Status().Members {
				if ms.ID == id && ms.Suffrage != "" {
					return false, fmt.Sprintf("%s is still a raft %s", id, ms.Suffrage)
				}
			}
			return true, ""
		})
		n, err := cluster.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("round %d: restarting %s: %v", round, id, err)
		}
		c.nodes[id] = n
		waitFor(t, 15*time.Second, fmt.Sprintf("round %d: %s back", round, id), func() (bool, string) {
			if ok, why := c.settled("a", "b", "c"); !ok {
				return false, why
			}
			for _, ms := range c.nodes[others[0]].Status().Members {
				if ms.ID == id && ms.Suffrage == "" {
					return false, fmt.Sprintf("%s is a member but not in Raft", id)
				}
			}
			return true, ""
		})
	}
}

// TestRejoinIsNotUndoneByVoterReconciliation forces the interleaving the
// fault suite found: while the leader admits a restarted node that is
// still Down in the membership, its voter reconciliation runs. It must not
// remove the Raft server the join has just added.
func TestRejoinIsNotUndoneByVoterReconciliation(t *testing.T) {
	c := threeNodes(t)
	cfg := fastConfig(c.dir, "c")
	c.kill("c")
	waitFor(t, 15*time.Second, "c down and out of Raft", func() (bool, string) {
		if ok, why := c.settled("a", "b"); !ok {
			return false, why
		}
		for _, ms := range c.nodes["a"].Status().Members {
			if ms.ID == "c" && (ms.Status != shard.Down || ms.Suffrage != "") {
				return false, fmt.Sprintf("c is %s, raft %q", ms.Status, ms.Suffrage)
			}
		}
		return true, ""
	})
	reconciled := make(chan struct{})
	var once sync.Once
	cluster.SetJoinHook(func(n *cluster.Node) {
		once.Do(func() {
			go func() { n.ReconcileVoters(); close(reconciled) }()
			// Give the reconciliation every chance to run now, with the
			// member still Down, if nothing holds it back.
			time.Sleep(300 * time.Millisecond)
		})
	})
	defer cluster.SetJoinHook(nil)
	n, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes["c"] = n
	select {
	case <-reconciled:
	case <-time.After(10 * time.Second):
		t.Fatal("the join hook did not run")
	}
	waitFor(t, 15*time.Second, "c back, in Raft", func() (bool, string) {
		if ok, why := c.settled("a", "b", "c"); !ok {
			return false, why
		}
		l := c.leader()
		if l == nil {
			return false, "no single leader"
		}
		for _, ms := range l.Status().Members {
			if ms.ID == "c" && ms.Suffrage == "" {
				return false, "c is a member but not in Raft"
			}
		}
		return true, ""
	})
}

func TestLeaderCrashElectsNewLeader(t *testing.T) {
	c := threeNodes(t)
	c.kill("a")
	waitFor(t, 15*time.Second, "new leader, a down, shards moved", func() (bool, string) {
		l := c.leader()
		if l == nil {
			return false, "no single leader"
		}
		if ok, why := c.settled("b", "c"); !ok {
			return false, why
		}
		for _, n := range c.nodes {
			if n.View().Leader != l.ID() {
				return false, fmt.Sprintf("%s follows %q", n.ID(), n.View().Leader)
			}
		}
		return true, ""
	})
}

func TestGracefulLeaveHandsShardsOff(t *testing.T) {
	c := threeNodes(t)
	b := c.nodes["b"]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	delete(c.nodes, "b")
	waitFor(t, 10*time.Second, "b gone", func() (bool, string) {
		ok, why := c.settled("a", "c")
		if !ok {
			return false, why
		}
		if _, ok := c.nodes["a"].View().Member("b"); ok {
			return false, "b is still a member"
		}
		if len(c.nodes["a"].Status().Members) != 2 {
			return false, "status lists more than 2 members"
		}
		return true, ""
	})
}

func TestLeaderLeavesGracefully(t *testing.T) {
	c := threeNodes(t)
	a := c.nodes["a"]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	delete(c.nodes, "a")
	waitFor(t, 10*time.Second, "a gone", func() (bool, string) {
		ok, why := c.settled("b", "c")
		if !ok {
			return false, why
		}
		if l := c.leader(); l == nil {
			return false, "no leader"
		}
		if _, ok := c.nodes["b"].View().Member("a"); ok {
			return false, "a is still a member"
		}
		return true, ""
	})
}

func TestLastMemberCannotLeave(t *testing.T) {
	c := newTestCluster(t)
	a := c.mustStart("a", bootstrap)
	waitFor(t, 5*time.Second, "a owns every shard", func() (bool, string) { return c.settled("a") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Leave(ctx); !errors.Is(err, cluster.ErrLastMember) {
		t.Fatalf("Leave of the last member: %v, want ErrLastMember", err)
	}
}

// TestWholeClusterStoppingAtOnce: every member leaves at the same time
// (a SIGTERM to all of them). Whoever is left with shards and no member
// that could take them stops waiting at once with ErrLastMember instead of
// running out its deadline.
func TestWholeClusterStoppingAtOnce(t *testing.T) {
	c := threeNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 3)
	for _, id := range []shard.NodeID{"a", "b", "c"} {
		n := c.nodes[id]
		go func() { errs <- n.Leave(ctx) }()
	}
	last := 0
	for range 3 {
		err := <-errs
		switch {
		case err == nil:
		case errors.Is(err, cluster.ErrLastMember):
			last++
		default:
			t.Errorf("Leave while every member leaves: %v, want nil or ErrLastMember", err)
		}
	}
	if last == 0 {
		t.Error("all three left: someone had to be left with the shards")
	}
}

func TestJoinWithOtherShardCountIsRejected(t *testing.T) {
	c := newTestCluster(t)
	a := c.mustStart("a", bootstrap)
	_, err := c.start("b", func(cfg *cluster.Config) { cfg.Join = []string{a.AdminAddr()}; cfg.Shards = testShards + 1 })
	if !errors.Is(err, cluster.ErrJoinRejected) {
		t.Fatalf("join with another shard count: %v, want ErrJoinRejected", err)
	}
}

func TestJoinThroughFollowerIsForwarded(t *testing.T) {
	c := newTestCluster(t)
	a := c.mustStart("a", bootstrap)
	b := c.mustStart("b", joinVia(a))
	c.mustStart("c", joinVia(b)) // b forwards to a
	waitFor(t, 15*time.Second, "settled", func() (bool, string) { return c.settled("a", "b", "c") })
}

func TestStaticPeers(t *testing.T) {
	c := newTestCluster(t)
	ids := []shard.NodeID{"p1", "p2", "p3"}
	var peers []cluster.Peer
	for _, id := range ids {
		peers = append(peers, cluster.Peer{ID: id, RaftAddr: freeAddr(t), AdminAddr: freeAddr(t)})
	}
	type result struct {
		n   *cluster.Node
		err error
	}
	results := make(chan result, len(ids))
	for i, id := range ids {
		cfg := fastConfig(c.dir, id)
		cfg.RaftBind, cfg.AdminBind = peers[i].RaftAddr, peers[i].AdminAddr
		cfg.Peers = peers
		cfg.VoterLimit = 2 // p3 starts as a non-voter
		go func() {
			n, err := cluster.Start(context.Background(), cfg)
			results <- result{n, err}
		}()
	}
	for range ids {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		c.nodes[r.n.ID()] = r.n
	}
	waitFor(t, 15*time.Second, "settled", func() (bool, string) { return c.settled(ids...) })
	voters := 0
	for _, m := range c.leader().Status().Members {
		if m.Suffrage == "Voter" {
			voters++
		}
	}
	if voters != 2 {
		t.Errorf("%d voters, want 2 (VoterLimit)", voters)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (static peers need their addresses before the nodes start).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestMutualTLS(t *testing.T) {
	now := time.Now()
	ca, err := cluster.NewDevCA("cluster CA", now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := cluster.NewDevCA("another CA", now)
	if err != nil {
		t.Fatal(err)
	}
	tlsFor := func(ca *cluster.DevCA, id shard.NodeID) *tls.Config {
		nc, err := ca.IssueNode(id, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := ca.TLS(nc)
		if err != nil {
			t.Fatal(err)
		}
		return conf
	}
	c := newTestCluster(t)
	a := c.mustStart("a", func(cfg *cluster.Config) { cfg.Bootstrap = true; cfg.TLS = tlsFor(ca, "a") })
	c.mustStart("b", func(cfg *cluster.Config) { cfg.Join = []string{a.AdminAddr()}; cfg.TLS = tlsFor(ca, "b") })
	waitFor(t, 15*time.Second, "TLS cluster settles", func() (bool, string) { return c.settled("a", "b") })

	// A node whose certificate comes from another CA cannot join.
	_, err = c.start("x", func(cfg *cluster.Config) {
		cfg.Join = []string{a.AdminAddr()}
		cfg.TLS = tlsFor(other, "x")
		cfg.JoinTimeout = time.Second
	})
	if !errors.Is(err, cluster.ErrJoinFailed) {
		t.Fatalf("join with a foreign certificate: %v, want ErrJoinFailed", err)
	}
	// Nor can a node without TLS.
	_, err = c.start("y", func(cfg *cluster.Config) { cfg.Join = []string{a.AdminAddr()}; cfg.JoinTimeout = time.Second })
	if !errors.Is(err, cluster.ErrJoinFailed) {
		t.Fatalf("join without TLS: %v, want ErrJoinFailed", err)
	}
	// Nor can a node that presents another node's certificate: a node
	// speaks only for itself.
	_, err = c.start("w", func(cfg *cluster.Config) {
		cfg.Join = []string{a.AdminAddr()}
		cfg.TLS = tlsFor(ca, "b")
		cfg.JoinTimeout = time.Second
	})
	if !errors.Is(err, cluster.ErrIdentity) {
		t.Fatalf("join with b's certificate as w: %v, want ErrIdentity", err)
	}
	for _, id := range []shard.NodeID{"x", "w"} {
		if _, ok := a.View().Member(id); ok {
			t.Errorf("%s became a member", id)
		}
	}
	// The status RPC needs a certificate from the CA too.
	if _, err := cluster.FetchStatus(context.Background(), a.AdminAddr(), tlsFor(other, "z"), time.Second); !errors.Is(err, cluster.ErrRPC) {
		t.Errorf("status with a foreign certificate: %v", err)
	}
	if st, err := cluster.FetchStatus(context.Background(), a.AdminAddr(), tlsFor(ca, "z"), time.Second); err != nil || len(st.Members) != 2 {
		t.Errorf("status with the cluster's certificate: %+v, %v", st, err)
	}
}
