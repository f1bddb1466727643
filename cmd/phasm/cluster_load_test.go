package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
)

// TestLoadAgainstThreeNodeCluster starts three `phasm node` processes on
// PostgreSQL (as TestThreeNodeCluster does), waits until every shard is
// owned, then runs `phasm load --target` (the members' cluster RPC
// addresses) with the bank workload through the cluster client, and
// requires the check to pass with no failed operation; a second run with
// --verify reads the saved ledger back against the cluster.
func TestLoadAgainstThreeNodeCluster(t *testing.T) {
	const shards = 16
	ctx, bin, dsn := clusterTestSetup(t)
	procs := startClusterNodes(ctx, t, bin, dsn, 3, shards)

	// Every shard owned by the three live members.
	waitOwned(ctx, t, procs[0], 3, shards)

	var rpcs, admins []string
	for _, p := range procs {
		rpcs = append(rpcs, p.rpc)
		admins = append(admins, p.admin.Addr)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	ledger := filepath.Join(dir, "ledger")
	args := []string{"load", "--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ","),
		"--workload", "bank", "--ops", "2000", "--seed", "7", "--json", report, "--data", ledger}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	t.Logf("phasm %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("phasm load against the cluster: %v", err)
	}
	rep, b := readLoadReport(t, report)
	if !rep.Check.Passed || rep.OpsFailed != 0 || rep.OpsOK+rep.OpsRejected != 2000 {
		t.Fatalf("report: %s", b)
	}

	// The cluster's status shows every member with the entities active on it.
	stArgs := []string{"status", "--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ",")}
	stOut, err := exec.CommandContext(ctx, bin, stArgs...).CombinedOutput()
	t.Logf("phasm %s:\n%s", strings.Join(stArgs, " "), stOut)
	if err != nil {
		t.Fatalf("phasm status against the cluster: %v", err)
	}
	if !strings.Contains(string(stOut), "ACTIVE") {
		t.Fatalf("no ACTIVE column in the cluster status")
	}
	for _, line := range strings.Split(string(stOut), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[1] == "alive" && f[4] == "-" {
			t.Fatalf("a live member without its active entities: %q", line)
		}
	}
	t.Logf("3-node cluster: %d ok, %d rejected, %d failed, %.0f acknowledged ops/s", rep.OpsOK, rep.OpsRejected, rep.OpsFailed, rep.Throughput)

	// Every node served some of the inputs: the client routed to owners.
	for _, p := range procs {
		st, err := p.admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Stats.Accepted == 0 {
			t.Errorf("%s accepted no input", p.id)
		}
	}

	// A second bank run with the same seed and no --data works on fresh
	// entities (a random ID prefix): the first run's balances do not
	// trip its check.
	again := []string{"load", "--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ","),
		"--workload", "bank", "--ops", "500", "--seed", "7"}
	out, err = exec.CommandContext(ctx, bin, again...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "check       PASSED") || !strings.Contains(string(out), "id-prefix=r") {
		t.Fatalf("phasm %s: %v\n%s", strings.Join(again, " "), err, out)
	}

	// The other workloads run through the same client.
	for _, wl := range []string{"counter", "dentist"} {
		wargs := []string{"load", "--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ","),
			"--workload", wl, "--ops", "500", "--seed", "7"}
		out, err := exec.CommandContext(ctx, bin, wargs...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "check       PASSED") {
			t.Fatalf("phasm %s: %v\n%s", strings.Join(wargs, " "), err, out)
		}
	}

	// --verify reads the saved ledger and checks the cluster against it.
	vargs := []string{"load", "--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ","),
		"--workload", "bank", "--verify", "--data", ledger}
	out, err = exec.CommandContext(ctx, bin, vargs...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "check       PASSED") {
		t.Fatalf("phasm %s: %v\n%s", strings.Join(vargs, " "), err, out)
	}
}

// startClusterNodes starts n `phasm node` processes on loopback,
// bootstrapped from a static peer list, on PostgreSQL in a fresh schema,
// and returns them once each serves its admin API. They are killed when
// the test ends (their logs are printed when it failed). extra flags are
// added to every node's command line.
func startClusterNodes(ctx context.Context, t testing.TB, bin, dsn string, n, shards int, extra ...string) []*clusterProc {
	t.Helper()
	schema := fmt.Sprintf("phasm_cluster_load_test_%d", time.Now().UnixNano())
	procs := make([]*clusterProc, n)
	var peers []string
	for i := range procs {
		p := &clusterProc{id: fmt.Sprintf("n%d", i+1), raft: freeAddr(t), rpc: freeAddr(t)}
		procs[i] = p
		peers = append(peers, p.id+"@"+p.raft+"@"+p.rpc)
	}
	for _, p := range procs {
		p.args = append([]string{"node", "--node-id", p.id, "--postgres", dsn, "--postgres-schema", schema,
			"--raft", p.raft, "--cluster-rpc", p.rpc, "--listen", "127.0.0.1:0",
			"--admin", freeAddr(t), "--shards", fmt.Sprint(shards),
			"--shutdown-timeout", "30s", "--log-format", "text"}, extra...)
		launchNode(ctx, t, bin, p, "--raft-dir", t.TempDir(), "--peers", strings.Join(peers, ","))
	}
	for _, p := range procs {
		awaitNode(ctx, t, p)
	}
	return procs
}

var adminRE = regexp.MustCompile(`msg="node started".* admin=(\S+)`)

// launchNode starts p's process with p.args plus extra (a restart gives
// other extra arguments: a new Raft directory and --join); awaitNode waits
// until it serves. The admin API keeps its address across restarts (a
// load client was given it).
func launchNode(ctx context.Context, t testing.TB, bin string, p *clusterProc, extra ...string) {
	t.Helper()
	p.exited = make(chan struct{})
	p.cmd = exec.CommandContext(ctx, bin, append(append([]string{}, p.args...), extra...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	cmd, exited := p.cmd, p.exited
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := adminRE.FindStringSubmatch(sc.Text()); m != nil {
				started <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.id, p.logText())
		}
	})
	p.startedCh = started
}

func awaitNode(ctx context.Context, t testing.TB, p *clusterProc) {
	t.Helper()
	select {
	case addr := <-p.startedCh:
		p.admin = &admin.Client{Addr: addr}
	case <-p.exited:
		t.Fatalf("%s exited before serving", p.id)
	case <-ctx.Done():
		t.Fatalf("%s did not start", p.id)
	}
}

// loadReport is the part of `phasm load --json` the cluster tests read.
type loadReport struct {
	OpsOK       int64   `json:"ops_ok"`
	OpsRejected int64   `json:"ops_rejected"`
	OpsFailed   int64   `json:"ops_failed"`
	Throughput  float64 `json:"throughput_ops_per_s"`
	Check       struct {
		Passed     bool     `json:"passed"`
		Violations []string `json:"violations"`
	} `json:"check"`
	Probe *struct {
		Windows []struct {
			Shard      int   `json:"shard"`
			FromUnixMS int64 `json:"from_unix_ms"`
			ToUnixMS   int64 `json:"to_unix_ms"`
			Open       bool  `json:"open"`
		} `json:"windows"`
	} `json:"probe"`
}

// readLoadReport reads a --json report, returning it and its bytes.
func readLoadReport(t testing.TB, path string) (loadReport, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v: %s", err, b)
	}
	return rep, b
}
