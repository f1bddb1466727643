package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
	"github.com/phasm-go/phasm/shard"
)

// clusterProc is one `phasm node` process of the cluster test.
type clusterProc struct {
	id, raft, rpc string
	args          []string // the node command without --raft-dir, --peers, --join
	cmd           *exec.Cmd
	admin         *admin.Client
	mu            sync.Mutex
	log           strings.Builder
	exited        chan struct{}
	startedCh     chan string
}

func (p *clusterProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// clusterTestSetup returns the PostgreSQL DSN `make test` provides (the
// test skips without it, or fails when PHASM_REQUIRE_SERVICES=1), a context
// bounding the test, and the phasm binary built for it.
func clusterTestSetup(t testing.TB) (context.Context, string, string) {
	t.Helper()
	dsn := os.Getenv("PHASM_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("PHASM_REQUIRE_SERVICES") == "1" {
			t.Fatal("PHASM_TEST_POSTGRES_DSN is not set but PHASM_REQUIRE_SERVICES=1: run `make test`, which starts PostgreSQL")
		}
		t.Skip("PHASM_TEST_POSTGRES_DSN is not set: run `make test` to start PostgreSQL and run the cluster tests")
	}
	if testing.Short() {
		t.Skip("-short: skipping the binary build")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	bin := filepath.Join(t.TempDir(), "phasm")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return ctx, bin, dsn
}

// Ports handed out by freeAddr in this process, so none is handed twice.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freeAddr returns a loopback address with a port that was free just now
// (static bootstrap needs every node's Raft and RPC address up front, so
// the port is released before the node binds it). Ports come from
// [20000, 32000), below Linux's ephemeral range (32768-60999): the outgoing
// connections opened meanwhile (to PostgreSQL, between nodes) cannot take
// one in between, as they could a port the kernel picked for ":0".
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsUsed[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken
		}
		ln.Close()
		portsUsed[port] = true
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port in [20000, 32000)")
	return ""
}

// TestThreeNodeCluster runs three `phasm node` processes (the real binary)
// on loopback, bootstrapped from a static peer list, on PostgreSQL. It
// waits until every shard is owned, sends inputs through one node's admin
// API to entities that the others own (forwarded node to node), checks the
// replies and states, then stops the nodes one by one with SIGTERM: each
// leaves the cluster (its shards move to the others, whose hosts gain them
// and serve the same entities from the shared store) before it drains.
func TestThreeNodeCluster(t *testing.T) {
	const shards = 16
	ctx, bin, dsn := clusterTestSetup(t)
	procs := startClusterNodes(ctx, t, bin, dsn, 3, shards)

	// Every shard owned, by live members, each of the three owning some.
	waitCluster := func(what string, ok func(cluster.Status) bool, ask *clusterProc) cluster.Status {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		var last cluster.Status
		var lastErr error
		for time.Now().Before(deadline) {
			st, err := cluster.FetchStatus(ctx, ask.rpc, nil, 2*time.Second)
			if err == nil && ok(st) {
				return st
			}
			last, lastErr = st, err
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; last status %+v, err %v", what, last, lastErr)
		return cluster.Status{}
	}
	owned := func(n int) func(cluster.Status) bool {
		return func(st cluster.Status) bool {
			if st.Shards != shards || len(st.Members) != n {
				return false
			}
			sum := 0
			for _, m := range st.Members {
				if m.Status != shard.Alive || m.OwnedShards == 0 || m.Addrs.Remote == "" {
					return false
				}
				sum += m.OwnedShards
			}
			return sum == shards
		}
	}
	waitCluster("every shard to be owned by the three nodes", owned(3), procs[0])

	// Inputs through n1's admin API: most entities live on n2 and n3.
	const entities = 24
	via := procs[0].admin
	send := func(c *admin.Client, id string, add int) {
		t.Helper()
		rep, err := c.Send(ctx, "counter", id, []byte(fmt.Sprintf(`{"add":%d}`, add)), "")
		if err != nil || !rep.Accepted {
			t.Fatalf("send %s via %s: %+v %v", id, c.Addr, rep, err)
		}
	}
	value := func(c *admin.Client, id string) uint64 {
		t.Helper()
		raw, err := c.State(ctx, "counter", id)
		if err != nil {
			t.Fatalf("state of %s via %s: %v", id, c.Addr, err)
		}
		var body struct {
			State struct {
				Value uint64 `json:"value"`
			} `json:"state"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("state of %s: %v: %s", id, err, raw)
		}
		return body.State.Value
	}
	for i := 0; i < entities; i++ {
		send(via, fmt.Sprint("c", i), i+1)
		send(via, fmt.Sprint("c", i), 1)
	}
	accepted := make([]uint64, len(procs))
	var total uint64
	for i, p := range procs {
		st, err := p.admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		accepted[i] = st.Stats.Accepted
		total += st.Stats.Accepted
	}
	t.Logf("inputs accepted per node (all sent through n1): %v", accepted)
	if total != 2*entities || accepted[1] == 0 || accepted[2] == 0 {
		t.Fatalf("accepted per node %v: want %d in all, some on n2 and n3 (forwarded from n1)", accepted, 2*entities)
	}
	for i := 0; i < entities; i++ {
		for _, p := range procs {
			if v := value(p.admin, fmt.Sprint("c", i)); v != uint64(i+2) {
				t.Fatalf("c%d via %s: value %d, want %d", i, p.id, v, i+2)
			}
		}
	}

	// n1 leaves: its shards move to n2 and n3, which serve its entities
	// from the shared store.
	stop := func(p *clusterProc) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("%s exit after SIGTERM: %v", p.id, err)
		}
	}
	stop(procs[0])
	if !strings.Contains(procs[0].logText(), "left the cluster") {
		t.Fatalf("n1 did not leave the cluster gracefully")
	}
	waitCluster("n2 and n3 to own every shard", owned(2), procs[1])
	for i := 0; i < entities; i++ {
		send(procs[1].admin, fmt.Sprint("c", i), 1)
		if v := value(procs[2].admin, fmt.Sprint("c", i)); v != uint64(i+3) {
			t.Fatalf("c%d after n1 left: value %d, want %d", i, v, i+3)
		}
	}
	t.Logf("n1 left; n2 and n3 serve all %d entities", entities)
	stop(procs[1])
	stop(procs[2]) // the last member: it cannot hand its shards off, and stops
	for _, p := range procs {
		if !strings.Contains(p.logText(), "node stopped") {
			t.Errorf("%s did not stop gracefully", p.id)
		}
	}
}
