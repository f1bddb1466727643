package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// faultShards is the shard count of the fault tests: each of three nodes
// owns about a third.
const faultShards = 16

// waitOwned waits until the cluster, as procs[ask] sees it, has every
// shard owned by live members and every live member owning some.
func waitOwned(ctx context.Context, t testing.TB, ask *clusterProc, live, shards int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := cluster.FetchStatus(ctx, ask.rpc, nil, 2*time.Second)
		if err == nil && st.Shards == shards {
			sum, alive := 0, 0
			for _, m := range st.Members {
				if m.Status == shard.Alive && m.OwnedShards > 0 && m.Addrs.Remote != "" {
					alive++
					sum += m.OwnedShards
				}
			}
			if alive == live && sum == shards {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d live owners of %d shards; last status %+v, err %v", live, shards, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaderOf returns the process the cluster reports as its Raft leader.
func leaderOf(ctx context.Context, t testing.TB, procs []*clusterProc) *clusterProc {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			st, err := cluster.FetchStatus(ctx, p.rpc, nil, 2*time.Second)
			if err != nil || st.Leader == "" {
				continue
			}
			if i := slices.IndexFunc(procs, func(q *clusterProc) bool { return q.id == string(st.Leader) }); i >= 0 {
				return procs[i]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no leader reported")
	return nil
}

// follower returns a process that is not the leader.
func follower(ctx context.Context, t testing.TB, procs []*clusterProc) *clusterProc {
	l := leaderOf(ctx, t, procs)
	for i := len(procs) - 1; i >= 0; i-- {
		if procs[i] != l {
			return procs[i]
		}
	}
	t.Fatal("no follower")
	return nil
}

// faultRun starts three nodes on PostgreSQL, runs the bank load against
// them with availability probes, calls fault in the middle of it (fault
// returns when the fault struck), and requires the load's end-of-run
// check to pass: money conserved, no negative balance, every acknowledged
// transfer applied exactly once. It returns the report and the moment the
// fault struck.
func faultRun(t testing.TB, loadFor time.Duration, fault func(ctx context.Context, bin string, procs []*clusterProc) time.Time) (loadReport, time.Time) {
	t.Helper()
	ctx, bin, dsn := clusterTestSetup(t)
	procs := startClusterNodes(ctx, t, bin, dsn, 3, faultShards)
	waitOwned(ctx, t, procs[0], 3, faultShards)

	report := filepath.Join(t.TempDir(), "report.json")
	args := append(append([]string{"load"}, targetArgs(procs)...), "--workload", "bank", "--duration", loadFor.String(), "--seed", "11", "--op-timeout", "30s",
		"--probe-every", "20ms", "--json", report)
	load := exec.CommandContext(ctx, bin, args...)
	var out strings.Builder
	load.Stdout, load.Stderr = &out, &out
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(loadFor / 4) // a moment in the middle of the run, not a wait for a condition
	at := fault(ctx, bin, procs)

	err := load.Wait()
	t.Logf("phasm %s:\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("phasm load across the fault: %v", err)
	}
	rep, b := readLoadReport(t, report)
	if !rep.Check.Passed || rep.OpsOK == 0 {
		t.Fatalf("the check failed after the fault: %s", b)
	}
	if rep.Probe == nil {
		t.Fatalf("the report has no probes: %s", b)
	}
	for _, w := range rep.Probe.Windows {
		if w.Open {
			t.Fatalf("shard %d was still unavailable when the load ended: %s", w.Shard, b)
		}
	}
	t.Logf("%d transfers acknowledged, %d failed (timed out across the fault, outcome unknown), check passed", rep.OpsOK, rep.OpsFailed)
	return rep, at
}

// targetArgs are the arguments that point phasm load or status at procs.
func targetArgs(procs []*clusterProc) []string {
	var rpcs, admins []string
	for _, p := range procs {
		rpcs = append(rpcs, p.rpc)
		admins = append(admins, p.admin.Addr)
	}
	return []string{"--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ",")}
}

// servedAgainAfter is how long after at the last shard that was
// unavailable at that moment (or became so after it) answered again; 0
// when no probe window ends after at.
func servedAgainAfter(rep loadReport, at time.Time) time.Duration {
	var last time.Duration
	for _, w := range rep.Probe.Windows {
		if end := time.UnixMilli(w.ToUnixMS).Sub(at); end > last {
			last = end
		}
	}
	return last
}

// sigkill kills p and returns when it is gone.
func sigkill(t testing.TB, p *clusterProc) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	_ = p.cmd.Wait()
	return at
}

// killDuringLoad runs faultRun with a SIGKILL of the process pick
// chooses, waits until the survivors own every shard, and logs how long
// until every shard was served again.
func killDuringLoad(t *testing.T, what string, pick func(ctx context.Context, t testing.TB, procs []*clusterProc) *clusterProc) {
	rep, at := faultRun(t, 8*time.Second, func(ctx context.Context, _ string, procs []*clusterProc) time.Time {
		victim := pick(ctx, t, procs)
		at := sigkill(t, victim)
		live := slices.DeleteFunc(slices.Clone(procs), func(p *clusterProc) bool { return p == victim })
		waitOwned(ctx, t, live[0], 2, faultShards)
		t.Logf("every shard owned by the two survivors %.2f s after the SIGKILL of %s %s", time.Since(at).Seconds(), what, victim.id)
		return at
	})
	t.Logf("every shard served again %.2f s after the SIGKILL of %s", servedAgainAfter(rep, at).Seconds(), what)
}

// TestLoadSurvivesSIGKILLOfANode kills a follower (a node owning about a
// third of the shards) with SIGKILL in the middle of the bank load. The
// others take its shards over (eager re-activation re-drives the transfers
// it had in flight) and the load's operations retry through the failover.
func TestLoadSurvivesSIGKILLOfANode(t *testing.T) { killDuringLoad(t, "the follower", follower) }

// TestLoadSurvivesSIGKILLOfTheLeader kills the Raft leader: a new leader
// is elected, notices the dead node and moves its shards.
func TestLoadSurvivesSIGKILLOfTheLeader(t *testing.T) { killDuringLoad(t, "the leader", leaderOf) }

// TestLoadSurvivesALeaveAndRejoin stops a follower with SIGTERM (it leaves
// gracefully: its shards are handed off before it exits), then starts it
// again with a fresh Raft directory and --join: it rejoins and receives
// shards again, all while the load runs.
func TestLoadSurvivesALeaveAndRejoin(t *testing.T) {
	faultRun(t, 12*time.Second, func(ctx context.Context, bin string, procs []*clusterProc) time.Time {
		victim := follower(ctx, t, procs)
		live := slices.DeleteFunc(slices.Clone(procs), func(p *clusterProc) bool { return p == victim })
		if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		if err := victim.cmd.Wait(); err != nil {
			t.Fatalf("%s did not leave cleanly: %v\n%s", victim.id, err, victim.logText())
		}
		waitOwned(ctx, t, live[0], 2, faultShards)
		t.Logf("%s left; its shards handed off within %.2f s", victim.id, time.Since(at).Seconds())
		launchNode(ctx, t, bin, victim, "--raft-dir", t.TempDir(), "--join", live[0].rpc+","+live[1].rpc)
		awaitNode(ctx, t, victim)
		waitOwned(ctx, t, live[0], 3, faultShards)
		t.Logf("%s rejoined and owns shards again %.2f s after it was stopped", victim.id, time.Since(at).Seconds())
		return at
	})
}

// BenchmarkFailover measures, per iteration, a fresh three-node cluster
// under the bank load, a SIGKILL of one node (a follower, or the leader),
// and the time until every shard answers again (the availability probes
// of `phasm load --probe-every`). Run it with PostgreSQL started:
//
//	bash -c 'source scripts/services.d/postgres.sh; go test -run "^$" -bench Failover -benchtime 5x -v ./cmd/phasm/'
func BenchmarkFailover(b *testing.B) {
	for _, victim := range []string{"follower", "leader"} {
		b.Run("victim="+victim, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				rep, at := faultRun(b, 10*time.Second, func(ctx context.Context, _ string, procs []*clusterProc) time.Time {
					v := follower(ctx, b, procs)
					if victim == "leader" {
						v = leaderOf(ctx, b, procs)
					}
					return sigkill(b, v)
				})
				ds = append(ds, servedAgainAfter(rep, at))
			}
			slices.Sort(ds)
			var text []string
			for _, d := range ds {
				text = append(text, fmt.Sprintf("%.2f", d.Seconds()))
			}
			b.Logf("every shard served again after the SIGKILL (s, sorted): %s", strings.Join(text, " "))
			b.ReportMetric(ds[0].Seconds(), "min-failover-s")
			b.ReportMetric(ds[len(ds)/2].Seconds(), "median-failover-s")
			b.ReportMetric(ds[len(ds)-1].Seconds(), "max-failover-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
