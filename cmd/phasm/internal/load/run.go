package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/pebblestore"
)

// Report is the result of a run; its JSON form is the machine-readable
// output of `phasm load --json`.
type Report struct {
	Workload    string  `json:"workload"`             // the workload run
	Seed        uint64  `json:"seed"`                 // the seed of every random choice
	DurationS   float64 `json:"duration_s"`           // length of the measured phase, seconds
	OpsOK       int64   `json:"ops_ok"`               // operations accepted by the machine and durable
	OpsRejected int64   `json:"ops_rejected"`         // operations the machine rejected
	OpsFailed   int64   `json:"ops_failed"`           // runtime errors and timeouts (maybe applied)
	Throughput  float64 `json:"throughput_ops_per_s"` // acknowledged operations per second
	LatencyMS   Latency `json:"latency_ms"`           // percentiles of acknowledged operations
	Check       Check   `json:"check"`                // the correctness check
	Probe       *Probe  `json:"probe,omitempty"`      // availability probes (--probe-every)
}

// Latency holds percentiles of acknowledged operations, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`  // median
	P90  float64 `json:"p90"`  // 90th percentile
	P99  float64 `json:"p99"`  // 99th percentile
	P999 float64 `json:"p999"` // 99.9th percentile
	Max  float64 `json:"max"`  // slowest
}

// Check is the outcome of the correctness check.
type Check struct {
	Passed     bool     `json:"passed"`     // no violation found
	Violations []string `json:"violations"` // what was wrong, at most MaxViolations (never null)
	// Lost counts the entity quantities (a balance's deposits, a
	// calendar's requests, ...) found below what acknowledged operations
	// add up to: each is at least one acknowledged operation lost. Each
	// is also a violation.
	Lost int64 `json:"lost"`
}

// MaxViolations bounds the violations a report lists.
const MaxViolations = 100

// Env is what a run writes to.
type Env struct {
	// Out receives the parameters, the progress and the report.
	Out io.Writer
	// Terminal redraws one progress line with \r; otherwise plain lines
	// are printed every ProgressEvery.
	Terminal bool
	// ProgressEvery is the interval of plain progress lines (default 1s;
	// a terminal redraws four times a second).
	ProgressEvery time.Duration
	// Logger receives the node's logs (default: discard).
	Logger *slog.Logger
}

type outcome int

const (
	ok outcome = iota
	rejected
	failed
)

// classify tells an operation's outcome from its error.
func classify(err error) outcome {
	var merr *machine.Error
	switch {
	case err == nil:
		return ok
	case errors.As(err, &merr):
		return rejected
	default:
		return failed
	}
}

// Shards is the shard count of the embedded node: the actor default, so a
// data directory written by `phasm node` with default flags is readable.
const Shards = actor.DefaultShards

// Run runs the configured workload (or, with Verify, only the check) and
// returns the report. A failed check returns the report and an error
// wrapping ErrCheckFailed. The report is written to cfg.JSONPath when set.
func Run(ctx context.Context, cfg Config, env Env) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	entitiesGiven := cfg.Entities != 0
	cfg = cfg.withDefaults()
	// A data directory's ledger fixes the entity count (unless given).
	var m manifest
	var found bool
	if cfg.DataDir != "" {
		var err error
		if m, found, err = readManifest(cfg.DataDir, cfg.Workload); err != nil {
			return Report{}, err
		}
		if found && !entitiesGiven {
			cfg.Entities = m.Entities
		}
	}
	switch {
	case found && cfg.IDPrefix != "" && cfg.IDPrefix != m.IDPrefix:
		return Report{}, fmt.Errorf("%w: --id-prefix %q, but the ledger in %s is of entities with prefix %q", ErrInvalidConfig, cfg.IDPrefix, cfg.DataDir, m.IDPrefix)
	case found:
		cfg.IDPrefix = m.IDPrefix
	case cfg.IDPrefix == "" && len(cfg.Targets) > 0:
		cfg.IDPrefix = fmt.Sprintf("r%06x-", rand.Uint32()&0xffffff)
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.ProgressEvery <= 0 {
		env.ProgressEvery = time.Second
	}
	printParams(env.Out, cfg)

	var b *backend
	var err error
	if len(cfg.Targets) > 0 {
		b, err = openCluster(ctx, cfg, env)
	} else {
		b, err = openEmbedded(ctx, cfg, env)
	}
	if err != nil {
		return Report{}, err
	}
	defer b.close()
	dir := b.ledgerDir

	r := &runner{cfg: cfg, set: b.set, nonce: runNonce(cfg.Seed, len(m.Seeds)), routeErr: b.routeErr, shards: b.shards}
	if cfg.TimelinePath != "" && !cfg.Verify {
		f, err := os.Create(cfg.TimelinePath)
		if err != nil {
			return Report{}, fmt.Errorf("load: --timeline: %w", err)
		}
		defer f.Close()
		r.timeline = f
	}
	r.accountID = prefixed(cfg.IDPrefix, AccountID)
	r.clinicID = prefixed(cfg.IDPrefix, ClinicID)
	r.counterID = prefixed(cfg.IDPrefix, CounterID)
	r.wl = newWorkload(cfg.Workload, r)
	r.led = newLedger(cfg.Entities, r.wl.quantities()...)
	seeds := []uint64{cfg.Seed}
	if found {
		if err := r.led.load(m); err != nil {
			return Report{}, err
		}
		seeds = append(m.Seeds, cfg.Seed)
	} else if cfg.Verify {
		return Report{}, fmt.Errorf("%w: %s has no %s (run `phasm load --workload %s --data %s` first)", ErrNoManifest, dir,
			manifestPath(dir, cfg.Workload)[len(dir)+1:], cfg.Workload, dir)
	}

	rep := Report{Workload: cfg.Workload, Seed: cfg.Seed, Check: Check{Violations: []string{}}}
	if !cfg.Verify {
		r.measure(ctx, env, &rep)
		if cfg.DataDir != "" {
			if err := r.led.save(dir, cfg.Workload, b.shards, seeds, cfg.IDPrefix); err != nil {
				return rep, fmt.Errorf("load: saving the ledger: %w", err)
			}
		}
	}

	// An interrupted run (SIGINT) still checks what it did: the wait and
	// the check are bounded by their own timeouts, not by ctx.
	interrupted := ctx.Err() != nil
	if interrupted {
		fmt.Fprintf(env.Out, "interrupted: checking what was done\n")
	}
	cctx := context.WithoutCancel(ctx)
	qctx, cancel := context.WithTimeout(cctx, cfg.QuiesceTimeout)
	defer cancel()
	var violations []string
	if err := b.quiesce(qctx); err != nil {
		violations = append(violations, fmt.Sprintf("%s did not become quiet within %s: %v", b.what, cfg.QuiesceTimeout, err))
	} else {
		violations = r.wl.check(cctx, !cfg.Verify)
	}
	if len(violations) > MaxViolations {
		n := len(violations)
		violations = append(violations[:MaxViolations:MaxViolations], fmt.Sprintf("... and %d more", n-MaxViolations))
	}
	rep.Check = Check{Passed: len(violations) == 0, Violations: append([]string{}, violations...), Lost: r.led.lost.Load()}
	stopErr := b.close()
	printReport(env.Out, cfg, rep, r.wl.summary())
	if cfg.JSONPath != "" {
		if err := writeJSON(cfg.JSONPath, rep); err != nil {
			return rep, err
		}
	}
	if r.timelineErr != nil {
		return rep, fmt.Errorf("load: --timeline: %w", r.timelineErr)
	}
	if !rep.Check.Passed {
		return rep, fmt.Errorf("%w: %d violations", ErrCheckFailed, len(rep.Check.Violations))
	}
	if stopErr != nil {
		return rep, stopErr
	}
	return rep, nil
}

// backend is what a run drives: an embedded node or a cluster client.
type backend struct {
	set       *kinds.Set
	what      string // "the node", "the cluster": for the quiescence violation
	shards    int    // the shard count recorded in the ledger
	ledgerDir string // where the ledger is kept (cfg.DataDir, or the temporary data)
	// quiesce waits until nothing is pending or queued anywhere.
	quiesce func(ctx context.Context) error
	// routeErr, when set, is told about an operation that failed with a
	// routing error (ErrMoved, ErrNoOwner).
	routeErr func(err error)
	// closers run in reverse order by close, once.
	closers  []func() error
	closed   bool
	closeErr error
}

func (b *backend) onClose(f func() error) { b.closers = append(b.closers, f) }

// close releases the backend (idempotent); it returns the first error.
func (b *backend) close() error {
	if b.closed {
		return b.closeErr
	}
	b.closed = true
	for i := len(b.closers) - 1; i >= 0; i-- {
		if err := b.closers[i](); err != nil && b.closeErr == nil {
			b.closeErr = err
		}
	}
	return b.closeErr
}

// openEmbedded starts an embedded node on Pebble in cfg.DataDir (or a
// temporary directory) with the kinds registered.
func openEmbedded(ctx context.Context, cfg Config, env Env) (_ *backend, err error) {
	b := &backend{what: "the node", shards: Shards}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	dir := cfg.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "phasm-load-")
		if err != nil {
			return nil, fmt.Errorf("load: temporary data directory: %w", err)
		}
		b.onClose(func() error { os.RemoveAll(tmp); return nil })
		dir = tmp
	}
	b.ledgerDir = dir
	store, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		return nil, err
	}
	b.onClose(func() error { store.Close(); return nil })
	host, err := actor.New(actor.Config{Store: store, Shards: Shards, Logger: env.Logger})
	if err != nil {
		return nil, err
	}
	ratio := cfg.PaymentDeclineRatio
	set, err := kinds.Register(host, kinds.Options{Payment: kinds.GatewayOptions{Seed: cfg.Seed, DeclineRatio: ratio}})
	if err != nil {
		return nil, err
	}
	if err := host.Start(ctx); err != nil {
		return nil, err
	}
	b.onClose(func() error {
		sctx, cancel := context.WithTimeout(context.Background(), actor.DefaultShutdownTimeout)
		defer cancel()
		return host.Stop(sctx)
	})
	b.set = set
	b.quiesce = func(ctx context.Context) error { return Quiesce(ctx, host, store, Shards) }
	return b, nil
}

func writeJSON(path string, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("load: --json: %w", err)
	}
	return nil
}

func printParams(w io.Writer, c Config) {
	target := "embedded node (pebble, fsync on"
	switch {
	case len(c.Targets) > 0:
		target = "cluster " + strings.Join(c.Targets, ",")
	case c.DataDir != "":
		target += ", data " + c.DataDir + ")"
	default:
		target += ", temporary data)"
	}
	mode := "run"
	if c.Verify {
		mode = "verify"
	}
	limit := "duration=" + c.Duration.String()
	if c.Ops > 0 {
		limit = fmt.Sprintf("ops=%d", c.Ops)
	}
	if c.Verify {
		limit = "no operations"
	}
	ids := ""
	if c.IDPrefix != "" {
		ids = fmt.Sprintf(" id-prefix=%s", c.IDPrefix)
	}
	fmt.Fprintf(w, "seed=%d workload=%s mode=%s entities=%d concurrency=%d %s target=%s op-timeout=%s%s\n",
		c.Seed, c.Workload, mode, c.Entities, c.Concurrency, limit, target, c.OpTimeout, ids)
}

func printReport(w io.Writer, c Config, rep Report, summary string) {
	if !c.Verify {
		fmt.Fprintf(w, "operations  ok %d, rejected %d (the machine said no), failed %d (runtime errors, timeouts)\n", rep.OpsOK, rep.OpsRejected, rep.OpsFailed)
		fmt.Fprintf(w, "throughput  %.0f acknowledged ops/s over %.2f s\n", rep.Throughput, rep.DurationS)
		l := rep.LatencyMS
		fmt.Fprintf(w, "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
		if rep.Probe != nil {
			printProbe(w, rep.Probe)
		}
	}
	if rep.Check.Passed {
		fmt.Fprintf(w, "check       PASSED: %s\n", summary)
		return
	}
	fmt.Fprintf(w, "check       FAILED: %d violations\n", len(rep.Check.Violations))
	for _, v := range rep.Check.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

// runner is one run's shared state.
type runner struct {
	cfg   Config
	set   *kinds.Set
	wl    workload
	led   *ledger
	nonce uint64 // tags this run's references (24 bits)
	// routeErr, when set, hears of operations that failed with a routing
	// error (the cluster client refreshes its view).
	routeErr func(error)
	shards   int // for the availability probes

	// Entity IDs of the workloads, with Config.IDPrefix.
	accountID, clinicID, counterID func(int) string

	issued           atomic.Int64
	nOK, nRej, nFail atomic.Int64
	workers          []*worker
	// timeline, when set, receives a TimelinePoint every TimelineEvery.
	timeline    io.Writer
	timelineErr error
}

// worker is one concurrent client.
type worker struct {
	id   int
	r    *rand.Rand
	seq  uint64
	hist *hdr.Histogram
	run  *runner
	// workload-specific client records
	sent  map[uint64]sentTransfer
	owned []ownedBooking
}

// ref returns a reference unique in this run: the run's nonce, the
// worker and a sequence number.
func (w *worker) ref() uint64 {
	w.seq++
	return w.run.nonce<<40 | uint64(w.id)<<28 | (w.seq & (1<<28 - 1))
}

// ask performs one operation and counts it.
func (w *worker) ask(do func(ctx context.Context) error) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), w.run.cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	err := do(ctx)
	o := classify(err)
	if err != nil && w.run.routeErr != nil && (errors.Is(err, actor.ErrMoved) || errors.Is(err, actor.ErrNoOwner)) {
		w.run.routeErr(err)
	}
	switch o {
	case ok:
		w.run.nOK.Add(1)
	case rejected:
		w.run.nRej.Add(1)
	default:
		w.run.nFail.Add(1)
	}
	if o != failed {
		_ = w.hist.RecordValue(max(time.Since(start).Microseconds(), 1))
	} else if time.Since(start) < failFastBackoff {
		// A fast failure (no owner in the view while a shard moves, a
		// refused connection) would otherwise loop: every failed
		// operation widens the ledger's bounds and weakens the check.
		time.Sleep(failFastBackoff)
	}
	return o
}

// failFastBackoff is how long a worker pauses after an operation that
// failed in less than that.
const failFastBackoff = 20 * time.Millisecond

func (r *runner) measure(ctx context.Context, env Env, rep *Report) {
	cfg := r.cfg
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var stopProbes func() *Probe
	if cfg.ProbeEvery > 0 {
		stopProbes = r.startProbes(r.shards, start)
	}
	var wg sync.WaitGroup
	for i := 0; i < cfg.Concurrency; i++ {
		w := &worker{id: i, run: r, r: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)), hist: hdr.New(1, 120_000_000, 3)}
		r.workers = append(r.workers, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if cfg.Ops > 0 && r.issued.Add(1) > cfg.Ops {
					return
				}
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				r.wl.op(w)
			}
		}()
	}
	done := make(chan struct{})
	var pw sync.WaitGroup
	pw.Add(1)
	go func() {
		defer pw.Done()
		r.progress(env, start, done)
	}()
	if r.timeline != nil {
		pw.Add(1)
		go func() {
			defer pw.Done()
			r.writeTimeline(done)
		}()
	}
	wg.Wait()
	close(done)
	pw.Wait()
	elapsed := time.Since(start)
	if stopProbes != nil {
		rep.Probe = stopProbes()
	}

	h := hdr.New(1, 120_000_000, 3)
	for _, w := range r.workers {
		h.Merge(w.hist)
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	rep.DurationS = elapsed.Seconds()
	rep.OpsOK, rep.OpsRejected, rep.OpsFailed = r.nOK.Load(), r.nRej.Load(), r.nFail.Load()
	if rep.DurationS > 0 {
		rep.Throughput = float64(rep.OpsOK+rep.OpsRejected) / rep.DurationS
	}
	if h.TotalCount() > 0 {
		rep.LatencyMS = Latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
			P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
	}
}

// TimelineEvery is the interval of the points written to
// Config.TimelinePath.
const TimelineEvery = 250 * time.Millisecond

// TimelinePoint is one line of the timeline (Config.TimelinePath): the
// wall clock and the operations counted so far, by outcome.
type TimelinePoint struct {
	UnixMS   int64 `json:"unix_ms"`  // wall clock, milliseconds since the Unix epoch
	OK       int64 `json:"ok"`       // acknowledged and accepted so far
	Rejected int64 `json:"rejected"` // acknowledged and rejected so far
	Failed   int64 `json:"failed"`   // failed (outcome unknown) so far
}

// writeTimeline writes a point every TimelineEvery and a last one when
// done closes; the first write error stops it and is kept.
func (r *runner) writeTimeline(done <-chan struct{}) {
	t := time.NewTicker(TimelineEvery)
	defer t.Stop()
	enc := json.NewEncoder(r.timeline)
	point := func() bool {
		p := TimelinePoint{UnixMS: time.Now().UnixMilli(), OK: r.nOK.Load(), Rejected: r.nRej.Load(), Failed: r.nFail.Load()}
		if err := enc.Encode(p); err != nil {
			r.timelineErr = err
			return false
		}
		return true
	}
	if !point() {
		return
	}
	for {
		select {
		case <-done:
			point()
			return
		case <-t.C:
			if !point() {
				return
			}
		}
	}
}

func (r *runner) progress(env Env, start time.Time, done <-chan struct{}) {
	every := env.ProgressEvery
	if env.Terminal {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastOps int64
	last := start
	line := func(final bool) {
		now := time.Now()
		okN, rej, fail := r.nOK.Load(), r.nRej.Load(), r.nFail.Load()
		ops := okN + rej
		rate := float64(ops-lastOps) / max(now.Sub(last).Seconds(), 1e-9)
		lastOps, last = ops, now
		s := fmt.Sprintf("%6.1fs  ok %d  rejected %d  failed %d  %.0f ops/s", now.Sub(start).Seconds(), okN, rej, fail, rate)
		switch {
		case env.Terminal && final:
			fmt.Fprintf(env.Out, "\r%-78s\n", s)
		case env.Terminal:
			fmt.Fprintf(env.Out, "\r%-78s", s)
		case !final:
			fmt.Fprintln(env.Out, s)
		}
	}
	for {
		select {
		case <-done:
			line(true)
			return
		case <-t.C:
			line(false)
		}
	}
}

// Quiesce waits, within ctx, until the host has no request pending and
// no tracked action queued and the store lists no entity with outstanding
// actions in any of its shards. It polls; it never sleeps blindly.
func Quiesce(ctx context.Context, h *actor.Host, store persistence.Store, shards int) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		st := h.Stats()
		if st.Pending == 0 && st.ActionsQueued == 0 {
			busy := 0
			for s := 0; s < shards; s++ {
				ents, err := store.Pending(ctx, uint32(s))
				if err != nil {
					return err
				}
				busy += len(ents)
			}
			if busy == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			st := h.Stats()
			return fmt.Errorf("%d requests pending, %d actions queued: %w", st.Pending, st.ActionsQueued, ctx.Err())
		case <-t.C:
		}
	}
}

// readAll queries every entity of the workload with bounded concurrency
// and returns the states by index, and a violation per entity that could
// not be read.
func readAll[S any](ctx context.Context, n int, id func(int) string, query func(context.Context, string) (S, error)) ([]S, []bool, []string) {
	states := make([]S, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(32, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				states[i], errs[i] = query(qctx, id(i))
				cancel()
			}
		}()
	}
	wg.Wait()
	var v []string
	readable := make([]bool, n)
	for i, err := range errs {
		readable[i] = err == nil
		if err != nil {
			v = append(v, fmt.Sprintf("%s: cannot be read back: %v", id(i), err))
		}
	}
	return states, readable, v
}

// prefixed returns id with prefix in front of every ID.
func prefixed(prefix string, id func(int) string) func(int) string {
	if prefix == "" {
		return id
	}
	return func(i int) string { return prefix + id(i) }
}

// runNonce tags the references of run number `earlier` (the runs already
// in the ledger) with seed: the seed itself for a first run, and a
// different value for each later run on the same data, so that rerunning
// a seed never reuses the references the earlier run left in the
// entities (the check would count them twice).
func runNonce(seed uint64, earlier int) uint64 {
	return (seed + uint64(earlier)*0x9e3779b97f4a7c15) & (1<<24 - 1)
}
