package faults

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
	"github.com/phasm-go/phasm/shard"
)

// Ports inside every node container.
const (
	raftPort  = "7000"
	rpcPort   = "7001"
	peerPort  = "7002"
	adminPort = "7480"
)

// node is one `phasm node` container.
type node struct {
	id        string
	ip        string
	container string
	dir       string // bind-mounted at /data (the Raft log survives kills)
}

func (n *node) rpc() string   { return n.ip + ":" + rpcPort }
func (n *node) admin() string { return n.ip + ":" + adminPort }

// testCluster is the three containers and what they share.
type testCluster struct {
	net     *network
	image   string
	nodes   []*node
	certDir string // the CA and every certificate (mounted at /certs)
	client  cluster.CertFiles
	tls     *tls.Config
	dsn     string // as the containers reach PostgreSQL
	schema  string
	shards  int
	logf    func(format string, args ...any)
}

// newTestCluster names the nodes and issues their certificates (and the
// load clients'), without starting anything.
func newTestCluster(work, prefix, image string, nw *network, n, shards int, dsn, schema string, logf func(string, ...any)) (*testCluster, error) {
	c := &testCluster{net: nw, image: image, certDir: filepath.Join(work, "certs"), dsn: dsn, schema: schema, shards: shards, logf: logf}
	now := time.Now()
	ca, err := cluster.WriteDevCA(c.certDir, now)
	if err != nil {
		return nil, err
	}
	for i := range n {
		nd := &node{id: nodeID(i), ip: fmt.Sprintf("%s%d", nw.prefix, 10+i), container: fmt.Sprintf("%s-%s", prefix, nodeID(i)),
			dir: filepath.Join(work, nodeID(i))}
		if _, err := ca.WriteNode(c.certDir, shard.NodeID(nd.id), []string{nd.ip, nd.id}, now); err != nil {
			return nil, err
		}
		// The container runs as 65532: its data directory must be its own.
		if err := os.MkdirAll(nd.dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(nd.dir, 65532, 65532); err != nil && os.Geteuid() == 0 {
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
	}
	if c.client, err = ca.WriteNode(c.certDir, "loader", []string{nw.gateway}, now); err != nil {
		return nil, err
	}
	if err := os.Chmod(c.certDir, 0o755); err != nil {
		return nil, err
	}
	// Keys are read by uid 65532 inside the containers.
	entries, _ := os.ReadDir(c.certDir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "-key.pem") {
			if err := os.Chmod(filepath.Join(c.certDir, e.Name()), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if c.tls, err = cluster.LoadTLS(c.client); err != nil {
		return nil, err
	}
	return c, nil
}

// create runs every node's container for the first time.
func (c *testCluster) create(ctx context.Context) error {
	var peers []string
	for _, n := range c.nodes {
		peers = append(peers, fmt.Sprintf("%s@%s:%s@%s:%s", n.id, n.ip, raftPort, n.ip, rpcPort))
	}
	for _, n := range c.nodes {
		args := []string{"run", "-d", "--name", n.container, "--network", c.net.name, "--ip", n.ip,
			"-v", n.dir + ":/data", "-v", c.certDir + ":/certs:ro", c.image,
			"node", "--node-id", n.id, "--postgres", c.dsn, "--postgres-schema", c.schema, "--postgres-retain-journal",
			"--raft-dir", "/data/raft", "--raft", "0.0.0.0:" + raftPort, "--cluster-rpc", "0.0.0.0:" + rpcPort,
			"--listen", "0.0.0.0:" + peerPort, "--admin", "0.0.0.0:" + adminPort, "--advertise", n.ip,
			"--peers", strings.Join(peers, ","), "--shards", fmt.Sprint(c.shards),
			"--tls-cert", "/certs/" + n.id + ".pem", "--tls-key", "/certs/" + n.id + "-key.pem", "--tls-ca", "/certs/" + cluster.CAFile,
			"--shutdown-timeout", "20s", "--log-format", "json"}
		if _, err := dockerCmd(ctx, time.Minute, args...); err != nil {
			return err
		}
	}
	return nil
}

// remove force-removes the containers (after saving their logs to dir).
func (c *testCluster) remove(ctx context.Context, logDir string) {
	for _, n := range c.nodes {
		if logDir != "" {
			if out, err := dockerCmd(ctx, time.Minute, "logs", n.container); err == nil || out != "" {
				_ = os.WriteFile(filepath.Join(logDir, n.id+".log"), []byte(out+"\n"), 0o644)
			}
		}
		_, _ = dockerCmd(ctx, time.Minute, "rm", "-f", "-v", n.container)
	}
}

func (c *testCluster) kill(ctx context.Context, n *node) error {
	_, err := dockerCmd(ctx, time.Minute, "kill", n.container)
	return err
}

func (c *testCluster) start(ctx context.Context, n *node) error {
	_, err := dockerCmd(ctx, time.Minute, "start", n.container)
	return err
}

// stop sends SIGTERM (a graceful leave) and waits up to 30 s before a
// SIGKILL.
func (c *testCluster) stop(ctx context.Context, n *node) error {
	_, err := dockerCmd(ctx, 90*time.Second, "stop", "-t", "30", n.container)
	return err
}

func (c *testCluster) pause(ctx context.Context, n *node) error {
	_, err := dockerCmd(ctx, time.Minute, "pause", n.container)
	return err
}

func (c *testCluster) unpause(ctx context.Context, n *node) error {
	_, err := dockerCmd(ctx, time.Minute, "unpause", n.container)
	return err
}

// running reports whether n's container is running and not paused.
func (c *testCluster) running(ctx context.Context, n *node) bool {
	out, err := dockerCmd(ctx, 30*time.Second, "inspect", "-f", "{{.State.Running}} {{.State.Paused}}", n.container)
	return err == nil && out == "true false"
}

// partition drops all traffic between n and the other nodes, both ways,
// with rules in n's network namespace (cut=true), or removes them. n keeps
// PostgreSQL (on the gateway) and the load clients.
func (c *testCluster) partition(ctx context.Context, n *node, cut bool) error {
	pid, err := dockerCmd(ctx, 30*time.Second, "inspect", "-f", "{{.State.Pid}}", n.container)
	if err != nil {
		return err
	}
	op := "-A"
	if !cut {
		op = "-D"
	}
	for _, o := range c.nodes {
		if o == n {
			continue
		}
		for _, rule := range [][]string{{"INPUT", "-s", o.ip}, {"OUTPUT", "-d", o.ip}} {
			args := append([]string{"-t", pid, "-n", "iptables", "-w", op}, rule...)
			args = append(args, "-j", "DROP")
			if _, err := runCmd(ctx, ErrDocker, 30*time.Second, "nsenter", args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeState is what one node reports.
type nodeState struct {
	status cluster.Status
	view   cluster.View
	err    error
}

// observe asks every node for its cluster status (cluster RPC, mutual
// TLS) and its view (admin API), concurrently.
func (c *testCluster) observe(ctx context.Context) []nodeState {
	out := make([]nodeState, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := cluster.FetchStatus(ctx, n.rpc(), c.tls, 2*time.Second)
			if err != nil {
				out[i].err = fmt.Errorf("%s status: %w", n.id, err)
				return
			}
			ac := &admin.Client{Addr: n.admin(), HTTP: &http.Client{Timeout: 2 * time.Second}}
			vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			v, err := ac.View(vctx)
			cancel()
			if err != nil {
				out[i].err = fmt.Errorf("%s view: %w", n.id, err)
				return
			}
			out[i] = nodeState{status: st, view: v}
		}()
	}
	wg.Wait()
	return out
}

// leader returns the node every answering node names as the Raft leader.
func (c *testCluster) leader(ctx context.Context) (*node, error) {
	var named string
	for _, s := range c.observe(ctx) {
		if s.err == nil && s.status.Leader != "" {
			if named != "" && named != string(s.status.Leader) {
				return nil, fmt.Errorf("faults: nodes disagree on the leader: %s and %s", named, s.status.Leader)
			}
			named = string(s.status.Leader)
		}
	}
	for _, n := range c.nodes {
		if n.id == named {
			return n, nil
		}
	}
	return nil, fmt.Errorf("faults: no node names a leader")
}

// convergence returns "" when the cluster has converged: every node
// answers with the same view version and leader, every member is alive,
// every node is a member, and every shard is owned by a member whose
// container runs; otherwise what is missing.
func (c *testCluster) convergence(ctx context.Context, running map[string]bool) string {
	states := c.observe(ctx)
	var problems []string
	var ref *nodeState
	for i := range states {
		s := &states[i]
		if s.err != nil {
			problems = append(problems, s.err.Error())
			continue
		}
		if ref == nil {
			ref = s
			continue
		}
		if s.view.Version != ref.view.Version || s.status.Leader != ref.status.Leader {
			problems = append(problems, fmt.Sprintf("%s at view version %d (leader %q), %s at %d (leader %q)",
				s.view.Self, s.view.Version, s.status.Leader, ref.view.Self, ref.view.Version, ref.status.Leader))
		}
	}
	if ref == nil {
		return strings.Join(problems, "; ")
	}
	v := ref.view
	if ref.status.Leader == "" {
		problems = append(problems, "no leader")
	}
	alive := map[shard.NodeID]bool{}
	for _, m := range v.Members {
		if m.Status == shard.Alive {
			alive[m.ID] = true
		} else {
			problems = append(problems, fmt.Sprintf("member %s is %s", m.ID, m.Status))
		}
	}
	for _, n := range c.nodes {
		if !alive[shard.NodeID(n.id)] {
			problems = append(problems, fmt.Sprintf("%s is not an alive member", n.id))
		}
	}
	if len(v.Map.Shards) != c.shards {
		problems = append(problems, fmt.Sprintf("the map has %d shards, want %d", len(v.Map.Shards), c.shards))
	}
	bad := 0
	for _, a := range v.Map.Shards {
		if a.Owner == "" || !alive[a.Owner] || (running != nil && !running[string(a.Owner)]) {
			bad++
		}
	}
	if bad > 0 {
		problems = append(problems, fmt.Sprintf("%d shards not owned by a live node", bad))
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}

// logTails returns the last lines of every container's log.
func (c *testCluster) logTails(ctx context.Context, lines int) string {
	var b strings.Builder
	for _, n := range c.nodes {
		out, _ := dockerCmd(ctx, 30*time.Second, "logs", "--tail", fmt.Sprint(lines), n.container)
		fmt.Fprintf(&b, "--- %s (running: %v) ---\n%s\n", n.id, c.running(ctx, n), out)
	}
	return b.String()
}

// laggards returns the nodes that keep the cluster from converging as the
// most advanced view sees it: nodes that do not answer, that lag behind
// that view's version, or that it does not count as alive members.
func (c *testCluster) laggards(ctx context.Context) []*node {
	states := c.observe(ctx)
	ref := -1
	for i, s := range states {
		if s.err == nil && (ref < 0 || s.view.Version > states[ref].view.Version) {
			ref = i
		}
	}
	var out []*node
	for i, n := range c.nodes {
		if ref < 0 || states[i].err != nil || states[i].view.Version < states[ref].view.Version {
			out = append(out, n)
			continue
		}
		if m, ok := states[ref].view.Member(shard.NodeID(n.id)); !ok || m.Status != shard.Alive {
			out = append(out, n)
		}
	}
	return out
}

// waitConverged polls convergence until it holds or bound passes.
func (c *testCluster) waitConverged(ctx context.Context, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(bound)
	var last string
	for {
		if last = c.convergence(ctx, nil); last == "" {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start), fmt.Errorf("%w within %s: %s", ErrNotConverged, bound, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
