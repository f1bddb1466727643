package load

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/phasm-go/phasm/cmd/phasm/internal/remote"
)

// The workloads.
const (
	Bank    = "bank"
	Dentist = "dentist"
	Counter = "counter"
)

// Workloads returns the workload names.
func Workloads() []string { return []string{Bank, Dentist, Counter} }

// Defaults for zero Config fields.
const (
	DefaultDuration       = 10 * time.Second
	DefaultConcurrency    = 64
	DefaultOpTimeout      = 10 * time.Second
	DefaultQuiesceTimeout = 30 * time.Second
	// DefaultListen is where a cluster client receives replies.
	DefaultListen = "127.0.0.1:0"
	// MaxConcurrency bounds workers (their index is part of a transfer's
	// reference).
	MaxConcurrency = 4096
)

// DefaultEntities returns the default entity count of a workload.
func DefaultEntities(workload string) int {
	switch workload {
	case Dentist:
		return 200
	default:
		return 1000
	}
}

// ErrInvalidConfig wraps every problem Validate reports.
var ErrInvalidConfig = errors.New("load: invalid config")

// ErrCheckFailed is returned (wrapped) when the correctness check found
// violations; the report lists them.
var ErrCheckFailed = errors.New("load: correctness check failed")

// Config configures a run. Zero fields take the documented defaults.
type Config struct {
	// Workload is bank, dentist or counter.
	Workload string
	// Entities is the number of entities the workload spreads over
	// (DefaultEntities).
	Entities int
	// Concurrency is the number of concurrent clients (DefaultConcurrency).
	Concurrency int
	// Duration bounds the measured phase (DefaultDuration unless Ops is
	// set).
	Duration time.Duration
	// Ops, when positive, is the number of operations to issue.
	Ops int64
	// Seed seeds every random choice of the run.
	Seed uint64
	// Targets are cluster members' cluster RPC addresses (host:port, as
	// given to `phasm node --cluster-rpc`); empty means an embedded node.
	// The first that answers reports the membership.
	Targets []string
	// AdminTargets are the members' admin API addresses (host:port or
	// URL, as given to `phasm node --admin`), required with Targets: the
	// client reads the shard map from them (GET /v1/cluster/view) and
	// waits on their /v1/status for quiescence. Every member needs one.
	AdminTargets []string
	// AdminToken is the admin API's bearer token, when the nodes have one.
	AdminToken string
	// Listen is where the cluster client receives replies (default
	// DefaultListen); the nodes must be able to reach it.
	Listen string
	// TLSCert, TLSKey and TLSCA are the client's mutual TLS files for a
	// cluster on TLS (all three or none).
	TLSCert, TLSKey, TLSCA string
	// IDPrefix is prepended to every entity ID the workload uses. Empty
	// means: none for an embedded node; against a cluster, the prefix kept
	// in --data's ledger, or else a fresh random one ("r" and 6 hex
	// digits, then "-"), so that a run never reads entities an earlier
	// run changed (the check would fail on them).
	IDPrefix string
	// DataDir keeps the embedded node's data (reused when it exists);
	// empty means a temporary directory removed afterwards. With Targets
	// it keeps only the client's ledger (the cluster keeps its own data).
	DataDir string
	// JSONPath, when set, receives the report as JSON.
	JSONPath string
	// TimelinePath, when set, receives one JSON TimelinePoint per line
	// every TimelineEvery of the measured phase: throughput over time.
	TimelinePath string
	// Verify runs only the correctness check against existing data.
	Verify bool
	// OpTimeout bounds one operation (DefaultOpTimeout).
	OpTimeout time.Duration
	// QuiesceTimeout bounds the wait for the node to become quiet before
	// the check (DefaultQuiesceTimeout).
	QuiesceTimeout time.Duration
	// ProbeEvery, when positive, probes every shard's availability at
	// this interval during the run (Report.Probe).
	ProbeEvery time.Duration
	// PaymentDeclineRatio is the share of the dentist's pre-authorisations
	// the simulated gateway declines (negative: none; 0: the gateway's
	// default).
	PaymentDeclineRatio float64
}

// Validate reports every problem at once, each wrapping ErrInvalidConfig.
// Names are the command-line flags'.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	known := false
	for _, w := range Workloads() {
		known = known || c.Workload == w
	}
	if !known {
		bad("--workload %q is unknown (want bank, dentist or counter)", c.Workload)
	}
	if c.Entities < 0 {
		bad("--entities is %d, must be positive (0 means the workload's default)", c.Entities)
	}
	if c.Workload == Bank && c.Entities == 1 {
		bad("--entities is 1: the bank workload needs at least 2 accounts")
	}
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		bad("--concurrency is %d, must be within [1, %d] (0 means %d)", c.Concurrency, MaxConcurrency, DefaultConcurrency)
	}
	if c.Duration < 0 {
		bad("--duration is %s, must not be negative", c.Duration)
	}
	if c.Ops < 0 {
		bad("--ops is %d, must not be negative", c.Ops)
	}
	if c.Ops > 0 && c.Duration > 0 {
		bad("--ops and --duration are exclusive: give one")
	}
	if c.OpTimeout < 0 || c.QuiesceTimeout < 0 {
		bad("timeouts must not be negative")
	}
	if c.ProbeEvery < 0 {
		bad("--probe-every is %s, must not be negative", c.ProbeEvery)
	} else if c.ProbeEvery > 0 && c.ProbeEvery < time.Millisecond {
		bad("--probe-every is %s, must be at least 1ms", c.ProbeEvery)
	}
	if c.PaymentDeclineRatio > 1 {
		bad("--payment-decline-ratio is %g, must be within [0, 1]", c.PaymentDeclineRatio)
	}
	for _, t := range c.Targets {
		if err := remote.CheckAddress(t); err != nil {
			bad("--target: %v", err)
		}
	}
	for _, a := range c.AdminTargets {
		if !strings.Contains(a, "://") {
			if err := remote.CheckAddress(a); err != nil {
				bad("--admin-target: %v", err)
			}
		}
	}
	if c.Listen != "" && len(c.Targets) > 0 {
		if err := remote.CheckAddress(c.Listen); err != nil {
			bad("--listen: %v", err)
		}
	}
	nTLS := 0
	for _, f := range []string{c.TLSCert, c.TLSKey, c.TLSCA} {
		if f != "" {
			nTLS++
		}
	}
	if nTLS != 0 && nTLS != 3 && len(c.Targets) > 0 {
		bad("--tls-cert, --tls-key and --tls-ca go together: give all three or none")
	}
	// --admin-token, --listen and --tls-* are ignored without --target:
	// they may come from the environment or a config file shared with
	// `phasm node` and `phasm status`.
	if len(c.Targets) == 0 && len(c.AdminTargets) > 0 {
		bad("--admin-target applies to a cluster: give --target too")
	}
	if len(c.Targets) > 0 && len(c.AdminTargets) == 0 {
		bad("--target needs --admin-target: every member's admin API address (the shard map and quiescence are read there)")
	}
	if len(c.IDPrefix) > MaxIDPrefix {
		bad("--id-prefix is %d bytes, at most %d", len(c.IDPrefix), MaxIDPrefix)
	}
	if strings.IndexFunc(c.IDPrefix, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		bad("--id-prefix %q: only letters, digits, '-', '_' and '.'", c.IDPrefix)
	}
	if c.Verify {
		switch {
		case c.DataDir == "" && len(c.Targets) == 0:
			bad("--verify needs --data DIR (the data of an earlier run)")
		case c.DataDir == "":
			bad("--verify --target needs --data DIR holding the client's ledger of an earlier run against the cluster")
		}
		if c.Ops > 0 || c.Duration > 0 {
			bad("--verify runs no operations: --ops and --duration do not apply")
		}
	}
	if c.Verify && c.DataDir != "" {
		if fi, err := os.Stat(c.DataDir); err != nil {
			bad("--data %s: %v", c.DataDir, errors.Unwrap(err))
		} else if !fi.IsDir() {
			bad("--data %s: not a directory", c.DataDir)
		}
	}
	return errors.Join(errs...)
}

// MaxIDPrefix bounds Config.IDPrefix.
const MaxIDPrefix = 32

func (c Config) withDefaults() Config {
	if c.Entities == 0 {
		c.Entities = DefaultEntities(c.Workload)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 && c.Ops == 0 && !c.Verify {
		c.Duration = DefaultDuration
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.QuiesceTimeout == 0 {
		c.QuiesceTimeout = DefaultQuiesceTimeout
	}
	if len(c.Targets) > 0 && c.Listen == "" {
		c.Listen = DefaultListen
	}
	return c
}
