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
temporary directory unless --data is given) or a running cluster (--target);
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

Against a cluster, --target lists members' cluster RPC addresses (as given
to 'phasm node --cluster-rpc'; the first that answers reports the
membership) and --admin-target every member's admin API address (the shard
map is read from GET /v1/cluster/view, and the check waits until every
member's /v1/status shows no pending request and no queued action). The
client routes each operation straight to the entity's owner and receives
replies at --listen. --data DIR then keeps only the client's ledger, for a
later 'phasm load --verify --target ... --data DIR'. Each run against a
cluster uses entities of its own (IDs start with a random --id-prefix,
kept in the ledger with --data), so a check never trips over what an
earlier run left in the cluster's shared store. The dentist check
cannot compare with the payment gateways' holds (they live in the nodes).

Exit status: 0 check passed, 3 check failed, 1 failure, 2 usage error.`,
		Example: `  phasm load
  phasm load --workload dentist --ops 20000 --seed 42 --json result.json
  phasm load --data ./d && phasm load --verify --data ./d
  phasm load --target 10.0.0.1:7401,10.0.0.2:7401 --admin-target 10.0.0.1:7480,10.0.0.2:7480 --listen 10.0.0.9:0`,
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
	f.StringSliceVar(&cfg.Targets, "target", nil, "run against a cluster: members' cluster RPC addresses host:port,...")
	f.StringSliceVar(&cfg.AdminTargets, "admin-target", nil, "with --target: every member's admin API address host:port,... (shard map, quiescence)")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "with --target: bearer token of the members' admin API (env PHASM_ADMIN_TOKEN)")
	f.StringVar(&cfg.Listen, "listen", "", "with --target: where the client receives replies, reachable by the nodes (default "+load.DefaultListen+")")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "with --target: client certificate (PEM) for a cluster on mutual TLS")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "with --target: client private key (PEM)")
	f.StringVar(&cfg.TLSCA, "tls-ca", "", "with --target: cluster CA certificate (PEM)")
	f.StringVar(&cfg.IDPrefix, "id-prefix", "", "prefix of every entity ID (default: none on an embedded node; against a cluster the one in --data's ledger, else a fresh random one per run)")
	f.StringVar(&cfg.DataDir, "data", "", "keep the embedded node's data (and the client's ledger) in DIR, reusing it; with --target only the ledger")
	f.StringVar(&cfg.JSONPath, "json", "", "write the report as JSON to FILE")
	f.StringVar(&cfg.TimelinePath, "timeline", "", "write the operations counted so far every 250ms, one JSON object a line, to FILE")
	f.BoolVar(&cfg.Verify, "verify", false, "run only the correctness check against --data DIR (with --target: the cluster, checked against the ledger in --data DIR)")
	f.DurationVar(&cfg.OpTimeout, "op-timeout", 0, "timeout of one operation (0: 10s)")
	f.DurationVar(&cfg.ProbeEvery, "probe-every", 0, "also query one entity of every shard at this interval and report unavailability windows (0: off)")
	f.Float64Var(&cfg.PaymentDeclineRatio, "payment-decline-ratio", 0, "dentist: share of payments the simulated gateway declines (0: 0.1; negative: none)")
	return cmd
}
