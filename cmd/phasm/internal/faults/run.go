package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// Config configures a run. Zero fields take the documented defaults.
type Config struct {
	// Seed draws the schedule, the network and the workloads.
	Seed uint64
	// MinFaults is the number of faults planned; the run injects at least
	// these (default 10).
	MinFaults int
	// MinDuration, when set, keeps the nemesis injecting (drawing further
	// faults from the seed) until this long after the first fault.
	MinDuration time.Duration
	// Repo is the repository root (the Dockerfile and ./cmd/phasm).
	Repo string
	// WorkDir holds everything the run creates (PostgreSQL's data, the
	// nodes' data, certificates, logs); required.
	WorkDir string
	// ReportDir receives report.md and throughput.svg; required.
	ReportDir string
	// Shards is the cluster's shard count (default 32).
	Shards int
	// Converge bounds the wait for the cluster to converge after each
	// fault (default 90s); overrunning it is a liveness violation.
	Converge time.Duration
	// Quiet is the quiet period after the last heal before the check
	// (default 10s).
	Quiet time.Duration
	// BankAccounts, Clinics: the workloads' entities (defaults 400, 40).
	BankAccounts, Clinics int
	// Log receives the progress (the schedule first); required.
	Log io.Writer
}

func (c Config) withDefaults() Config {
	if c.MinFaults == 0 {
		c.MinFaults = 10
	}
	if c.Shards == 0 {
		c.Shards = 32
	}
	if c.Converge == 0 {
		c.Converge = 90 * time.Second
	}
	if c.Quiet == 0 {
		c.Quiet = 10 * time.Second
	}
	if c.BankAccounts == 0 {
		c.BankAccounts = 400
	}
	if c.Clinics == 0 {
		c.Clinics = 40
	}
	return c
}

// ErrInvalidConfig wraps every problem Validate reports.
var ErrInvalidConfig = errors.New("faults: invalid config")

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	if c.MinFaults < 0 || c.MinDuration < 0 || c.Shards < 0 || c.Converge < 0 || c.Quiet < 0 || c.BankAccounts < 0 || c.Clinics < 0 {
		bad("counts and durations must not be negative")
	}
	if c.BankAccounts == 1 {
		bad("BankAccounts is 1: transfers need two accounts")
	}
	if c.Repo == "" {
		bad("Repo is required")
	} else if _, err := os.Stat(filepath.Join(c.Repo, "Dockerfile")); err != nil {
		bad("Repo %s: no Dockerfile: %v", c.Repo, err)
	}
	if c.WorkDir == "" {
		bad("WorkDir is required")
	}
	if c.ReportDir == "" {
		bad("ReportDir is required")
	}
	if c.Log == nil {
		bad("Log is required")
	}
	return errors.Join(errs...)
}

// Injected is one fault as it ran.
type Injected struct {
	Fault
	// Target names what was hit (a node ID, "postgres", "n1,n2,n3").
	Target string
	// Start is when the fault began, Healed when it was undone.
	Start, Healed time.Time
	// Converged is how long after Healed the cluster converged; ConvergeErr
	// says it did not within the bound.
	Converged   time.Duration
	ConvergeErr error
	// Unavailable is the longest stretch from Start until the next fault
	// in which acknowledged operations fell below a tenth of the rate
	// before the fault (computed after the run; -1 when there was no
	// rate to compare with).
	Unavailable time.Duration
	// Err is a failure to inject or heal (the harness's, not the
	// cluster's).
	Err error
	// Repaired names the nodes the harness restarted after the cluster
	// failed to converge (a liveness violation, recorded as such).
	Repaired string
}

// Result is a run's outcome.
type Result struct {
	Seed       uint64
	Start, End time.Time
	Shards     int
	Faults     []Injected
	// Loads are the load drivers' reports by workload.
	Loads map[string]load.Report
	// Timelines are the load drivers' timelines by workload.
	Timelines map[string][]load.TimelinePoint
	// Lost sums the loads' lost acknowledged quantities.
	Lost int64
	// Violations lists every invariant the checker found broken (the
	// loads' checks, the store's pending index, the shard map, the
	// journals, liveness).
	Violations []string
	// JournalRows is how many journal records the audit read.
	JournalRows int
}

// Run runs the suite: it sets up PostgreSQL, the network and three nodes,
// runs the workloads under the planned faults, heals, checks, and always
// tears down what it created. The error is the harness's own failure
// (Docker, PostgreSQL, a load driver that could not run); what the
// checker found is in Result.Violations and Result.Lost.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s faults: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	plan, err := Plan(cfg.Seed, cfg.MinFaults, 3, Kinds())
	if err != nil {
		return nil, err
	}
	PrintPlan(cfg.Log, cfg.Seed, plan)
	if cfg.MinDuration > 0 {
		fmt.Fprintf(cfg.Log, "  ... then faults drawn from the seed until %s after the first one\n", cfg.MinDuration)
	}
	if err := DockerUsable(ctx); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.WorkDir, cfg.ReportDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The data directories are reached by the postgres OS user and by
	// uid 65532 inside the containers.
	if err := os.Chmod(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	res = &Result{Seed: cfg.Seed, Start: time.Now(), Shards: cfg.Shards, Loads: map[string]load.Report{}, Timelines: map[string][]load.TimelinePoint{}}
	// Teardown runs whatever happened, bounded, with a context of its own.
	var cleanups []func(context.Context)
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i](tctx)
		}
	}()

	tag := fmt.Sprintf("phasm-faults-%d-%d", cfg.Seed, os.Getpid())
	image := tag + ":latest"
	logf("building the image %s (static binary, FROM scratch)", image)
	bin, err := buildImage(ctx, cfg.Repo, cfg.WorkDir, image)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func(c context.Context) { _, _ = dockerCmd(c, time.Minute, "rmi", "-f", image) })

	netRand := rand.New(rand.NewPCG(cfg.Seed, uint64(os.Getpid())))
	nw, err := createNetwork(ctx, tag, func() (int, int) { return 100 + netRand.IntN(150), netRand.IntN(256) })
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func(c context.Context) { _, _ = dockerCmd(c, time.Minute, "network", "rm", nw.name) })
	logf("network %s on %s, gateway %s", nw.name, nw.subnet, nw.gateway)

	pg, err := startPostgres(ctx, filepath.Join(cfg.WorkDir, "postgres"), nw.gateway)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func(c context.Context) { _ = pg.stop(c) })
	logf("PostgreSQL on %s", pg.dsn())

	schema := "phasm_faults"
	cl, err := newTestCluster(cfg.WorkDir, tag, image, nw, 3, cfg.Shards, pg.dsn(), schema, logf)
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(cfg.WorkDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func(c context.Context) { cl.remove(c, logDir) })
	if err := cl.create(ctx); err != nil {
		return nil, err
	}
	took, err := cl.waitConverged(ctx, 2*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("faults: the new cluster: %w\n%s", err, cl.logTails(ctx, 20))
	}
	logf("three nodes up, mutual TLS, every shard owned (%.1f s)", took.Seconds())

	loads := map[string]*loadProc{}
	for _, w := range []struct {
		name        string
		entities, c int
	}{{load.Bank, cfg.BankAccounts, 24}, {load.Dentist, cfg.Clinics, 12}} {
		p, err := startLoad(ctx, bin, cfg.WorkDir, cl, w.name, cfg.Seed, w.entities, w.c)
		if err != nil {
			return nil, err
		}
		loads[w.name] = p
		cleanups = append(cleanups, func(context.Context) {
			if !p.exited() {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		})
	}
	// A baseline before the first fault.
	if err := sleepCtx(ctx, 8*time.Second); err != nil {
		return res, err
	}
	for name, p := range loads {
		if p.exited() {
			return res, fmt.Errorf("faults: phasm load %s exited at the start (%v):\n%s", name, p.err, p.tail())
		}
	}

	nem := &nemesis{cl: cl, pg: pg, cfg: cfg, logf: logf}
	first := time.Now()
	extra := rand.New(rand.NewPCG(cfg.Seed, 0x65787472)) // "extr": faults past the plan
	for i := 0; ; i++ {
		var f Fault
		switch {
		case i < len(plan):
			f = plan[i]
		case cfg.MinDuration > 0 && time.Since(first) < cfg.MinDuration:
			more, _ := Plan(extra.Uint64(), 1, 3, Kinds())
			f = more[0]
			f.N = i + 1
			logf("drawn: %s", f)
		default:
			f.N = 0
		}
		if f.N == 0 {
			break
		}
		inj := nem.inject(ctx, f)
		if inj.ConvergeErr != nil {
			// A liveness violation. An operator would restart what is
			// stuck: the harness does the same (recorded with the fault),
			// so that the run goes on checking safety; if that does not
			// help either, the nemesis stops.
			res.Violations = append(res.Violations, fmt.Sprintf("liveness: after fault %s: %v", f, inj.ConvergeErr))
			var repaired []string
			for _, n := range cl.laggards(ctx) {
				repaired = append(repaired, n.id)
				_ = cl.unpause(ctx, n)
				_ = cl.partition(ctx, n, false)
				_ = cl.kill(ctx, n)
				if err := cl.start(ctx, n); err != nil {
					return res, err
				}
			}
			inj.Repaired = strings.Join(repaired, ",")
			logf("fault %s: did not converge; restarted %q as an operator would", f, inj.Repaired)
			if _, err := cl.waitConverged(ctx, cfg.Converge); err != nil {
				// Still stuck: an operator's next step is to give the node
				// a fresh Raft log (its data is in PostgreSQL) and let it
				// rejoin.
				res.Violations = append(res.Violations, fmt.Sprintf("liveness: after fault %s and a restart of %s: %v", f, inj.Repaired, err))
				var wiped []string
				for _, n := range cl.laggards(ctx) {
					wiped = append(wiped, n.id)
					_ = cl.kill(ctx, n)
					if err := os.RemoveAll(filepath.Join(n.dir, "raft")); err != nil {
						return res, err
					}
					if err := cl.start(ctx, n); err != nil {
						return res, err
					}
				}
				inj.Repaired += "; then wiped the Raft log of " + strings.Join(wiped, ",") + " and restarted it"
				logf("fault %s: still stuck; wiped the Raft log of %v and restarted", f, wiped)
				if _, err := cl.waitConverged(ctx, cfg.Converge); err != nil {
					res.Violations = append(res.Violations, fmt.Sprintf("liveness: after fault %s and a fresh Raft log for %v: %v; the nemesis stops", f, wiped, err))
					res.Faults = append(res.Faults, inj)
					break
				}
			}
		}
		res.Faults = append(res.Faults, inj)
		if inj.Err != nil {
			return res, fmt.Errorf("faults: fault %s: %w", f, inj.Err)
		}
		for name, p := range loads {
			if p.exited() {
				return res, fmt.Errorf("faults: phasm load %s exited during the run (%v):\n%s", name, p.err, p.tail())
			}
		}
		if err := sleepCtx(ctx, f.Gap); err != nil {
			return res, err
		}
	}

	// Heal everything (nothing should be left), converge, quiet period.
	logf("healing: every node running and reconnected; waiting for convergence and a quiet period of %s", cfg.Quiet)
	for _, n := range cl.nodes {
		_ = cl.partition(ctx, n, false) // no rules left is the normal case: errors ignored
		if !cl.running(ctx, n) {
			_ = cl.unpause(ctx, n)
			_ = cl.start(ctx, n)
		}
	}
	if _, err := cl.waitConverged(ctx, cfg.Converge); err != nil {
		res.Violations = append(res.Violations, fmt.Sprintf("liveness: after the last heal: %v", err))
	}
	if err := sleepCtx(ctx, cfg.Quiet); err != nil {
		return res, err
	}

	// The checker.
	logf("stopping the workloads; their checks run")
	// Both stop issuing at once: each waits for the whole cluster to be
	// quiet, which it never is while the other still runs.
	for _, p := range loads {
		p.interrupt()
	}
	for _, name := range []string{load.Bank, load.Dentist} {
		p := loads[name]
		rep, err := p.stop(3 * time.Minute)
		if err != nil {
			return res, err
		}
		res.Loads[name] = rep
		res.Lost += rep.Check.Lost
		for _, v := range rep.Check.Violations {
			res.Violations = append(res.Violations, fmt.Sprintf("%s: %s", name, v))
		}
		if !rep.Check.Passed && len(rep.Check.Violations) == 0 {
			res.Violations = append(res.Violations, fmt.Sprintf("%s: the check failed without naming a violation", name))
		}
		if rep.OpsOK == 0 {
			res.Violations = append(res.Violations, fmt.Sprintf("%s: no operation was acknowledged in the whole run", name))
		}
		pts, err := readTimeline(p.timeline)
		if err != nil {
			return res, err
		}
		res.Timelines[name] = pts
	}
	running := map[string]bool{}
	for _, n := range cl.nodes {
		running[n.id] = cl.running(ctx, n)
	}
	if problem := cl.convergence(ctx, running); problem != "" {
		res.Violations = append(res.Violations, "shard map not converged at the end: "+problem)
	}
	jv, rows, err := auditStore(ctx, pg.dsn(), schema)
	if err != nil {
		return res, err
	}
	res.JournalRows = rows
	res.Violations = append(res.Violations, jv...)
	res.End = time.Now()
	computeUnavailability(res)
	logf("done: %d faults, %d violations, %d lost", len(res.Faults), len(res.Violations), res.Lost)
	return res, nil
}

// auditStore reads the pending index and the journals' provenance.
func auditStore(ctx context.Context, dsn, schema string) ([]string, int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: connecting for the audit: %w", ErrPostgres, err)
	}
	defer conn.Close(ctx)
	q := pgx.Identifier{schema}.Sanitize()
	var v []string
	prows, err := conn.Query(ctx, `SELECT kind, id, shard FROM `+q+`.phasm_entities WHERE pending ORDER BY kind, id LIMIT 20`)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrPostgres, err)
	}
	for prows.Next() {
		var kind, id string
		var sh int64
		if err := prows.Scan(&kind, &id, &sh); err != nil {
			return nil, 0, err
		}
		v = append(v, fmt.Sprintf("%s/%s (shard %d) still has outstanding tracked actions after the quiet period", kind, id, sh))
	}
	if err := prows.Err(); err != nil {
		return nil, 0, err
	}
	rows, err := conn.Query(ctx, `SELECT j.kind, j.id, j.seq, e.shard, j.writer, j.epoch, j.data
		FROM `+q+`.phasm_journal j JOIN `+q+`.phasm_entities e ON e.kind = j.kind AND e.id = j.id
		ORDER BY j.kind, j.id, j.seq`)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrPostgres, err)
	}
	var jr []JournalRow
	for rows.Next() {
		var r JournalRow
		var seq, sh, epoch int64
		var data []byte
		if err := rows.Scan(&r.Kind, &r.ID, &seq, &sh, &r.Writer, &epoch, &data); err != nil {
			return nil, 0, err
		}
		r.Seq, r.Shard, r.Epoch = uint64(seq), uint32(sh), uint64(epoch)
		rec, err := persistence.DecodeRecord(machine.Entity{Kind: r.Kind, ID: r.ID}, r.Seq, data)
		if err != nil {
			v = append(v, fmt.Sprintf("%s/%s seq %d: %v", r.Kind, r.ID, r.Seq, err))
			continue
		}
		r.Completion, r.ActionID = rec.Kind == machine.RecordCompletion, uint64(rec.ActionID)
		jr = append(jr, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if len(jr) == 0 {
		v = append(v, "the journals are empty: nothing to audit")
	}
	return append(v, AuditJournal(jr, 50)...), len(jr), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// joinIDs names nodes.
func joinIDs(ns []*node) string {
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.id)
	}
	return strings.Join(ids, ",")
}
