package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterLoad starts n nodes on PostgreSQL (a fresh schema), runs the bank
// load against them through the cluster client for d with the given
// concurrency, requires the check to pass, and returns the report.
func clusterLoad(b testing.TB, n int, d time.Duration, concurrency int) loadReport {
	b.Helper()
	ctx, bin, dsn := clusterTestSetup(b)
	procs := startClusterNodes(ctx, b, bin, dsn, n, faultShards)
	waitOwned(ctx, b, procs[0], n, faultShards)
	report := filepath.Join(b.TempDir(), "report.json")
	args := append(append([]string{"load"}, targetArgs(procs)...), "--workload", "bank", "--entities", "10000", "--duration", d.String(), "--concurrency", strconv.Itoa(concurrency),
		"--seed", "5", "--json", report)
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("phasm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	rep, raw := readLoadReport(b, report)
	if !rep.Check.Passed {
		b.Fatalf("check failed: %s", raw)
	}
	b.Logf("%d node(s): %.0f acknowledged ops/s (%d ok, %d rejected, %d failed)", n, rep.Throughput, rep.OpsOK, rep.OpsRejected, rep.OpsFailed)
	for _, p := range procs { // stop before the next cluster starts: they share the machine
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	return rep
}

// BenchmarkBankOneVersusThreeNodes runs the bank load (10,000 accounts,
// PHASM_BENCH_CLIENTS or 128 concurrent clients, 20 s) against one node and
// then against three nodes sharing the same PostgreSQL, in one run, each
// iteration, and reports both throughputs and their ratio. Everything
// (PostgreSQL, the nodes, the load client) shares this machine's cores.
//
//	bash -c 'source scripts/services.d/postgres.sh; go test -run "^$" -bench OneVersusThree -benchtime 1x ./cmd/phasm/'
func BenchmarkBankOneVersusThreeNodes(b *testing.B) {
	clients := 128
	if v, err := strconv.Atoi(os.Getenv("PHASM_BENCH_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	for i := 0; i < b.N; i++ {
		one := clusterLoad(b, 1, 20*time.Second, clients)
		three := clusterLoad(b, 3, 20*time.Second, clients)
		b.ReportMetric(one.Throughput, "one-node-ops/s")
		b.ReportMetric(three.Throughput, "three-node-ops/s")
		b.ReportMetric(three.Throughput/one.Throughput, "ratio")
		b.ReportMetric(0, "ns/op")
	}
}
