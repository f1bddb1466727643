package cli

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
)

// seedValue is a uint64 flag that remembers whether it was set (from any
// source), so an omitted seed is drawn at random.
type seedValue struct {
	v   *uint64
	set bool
}

// String, Set and Type implement pflag.Value.
func (s *seedValue) String() string {
	if !s.set {
		return "random"
	}
	return strconv.FormatUint(*s.v, 10)
}

func (s *seedValue) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("want a non-negative integer")
	}
	*s.v, s.set = n, true
	return nil
}

func (*seedValue) Type() string { return "uint" }

func (a *App) loadCmd() *cobra.Command {
	var cfg load.Config
	cfg.Workload = load.Bank
	seed := &seedValue{v: &cfg.Seed}
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Run the bundled load driver and check correctness",
		Long: `Run a seeded workload against an embedded single node (Pebble, fsync on, in a
temporary directory unless --data is given) or, later, a cluster (--target);
print live progress, HDR latency percentiles of acknowledged operations, the
counts of accepted, rejected and failed operations, throughput, and the result
of a correctness check that reads every entity back once the node is quiet:

  bank     money conserved, no negative balance, every acknowledged transfer
           applied exactly once
  dentist  no double booking, every confirmed booking paid
  counter  every counter equals its acknowledged increments

The seed and every parameter are printed first; the same seed replays the
same choices. With --data the data and the client's ledger are kept, so
'phasm load --verify --data DIR' can check them later.

Exit status: 0 check passed, 3 check failed, 1 failure, 2 usage error.`,
		Example: `  phasm load
  phasm load --workload dentist --ops 20000 --seed 42 --json result.json
  phasm load --data ./d && phasm load --verify --data ./d`,
		Args: cobra.NoArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			if !seed.set {
				cfg.Seed = rand.Uint64() >> 11 // exact in JSON numbers
			}
			if err := a.validate(cfg.Validate()); err != nil {
				return err
			}
			log, err := a.logger(slog.LevelWarn)
			if err != nil {
				return usage(err)
			}
			_, err = load.Run(cmd.Context(), cfg, load.Env{Out: a.io.Out, Terminal: a.io.OutIsTerminal, Logger: log.With("component", "node")})
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Workload, "workload", cfg.Workload, "workload: bank, dentist or counter")
	f.IntVar(&cfg.Entities, "entities", 0, "entities the workload spreads over (0: 1000 for bank and counter, 200 for dentist)")
	f.IntVar(&cfg.Concurrency, "concurrency", 0, fmt.Sprintf("concurrent clients (0: %d)", load.DefaultConcurrency))
	f.DurationVar(&cfg.Duration, "duration", 0, "length of the measured phase (default 10s unless --ops is given)")
	f.Int64Var(&cfg.Ops, "ops", 0, "number of operations to issue instead of a duration")
	f.Var(seed, "seed", "seed of every random choice (random when omitted; always printed)")
	f.StringSliceVar(&cfg.Targets, "target", nil, "cluster members host:port,... (not available yet: needs the cluster client)")
	f.StringVar(&cfg.DataDir, "data", "", "keep the embedded node's data (and the client's ledger) in DIR, reusing it")
	f.StringVar(&cfg.JSONPath, "json", "", "write the report as JSON to FILE")
	f.BoolVar(&cfg.Verify, "verify", false, "run only the correctness check against --data DIR (or a cluster)")
	f.DurationVar(&cfg.OpTimeout, "op-timeout", 0, "timeout of one operation (0: 10s)")
	f.Float64Var(&cfg.PaymentDeclineRatio, "payment-decline-ratio", 0, "dentist: share of payments the simulated gateway declines (0: 0.1; negative: none)")
	return cmd
}
