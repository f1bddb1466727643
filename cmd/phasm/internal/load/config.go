package load

import (
	"errors"
	"fmt"
	"os"
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
	// Targets are cluster members (host:port); empty means an embedded
	// node. Not available yet: needs the cluster client.
	Targets []string
	// DataDir keeps the embedded node's data (reused when it exists);
	// empty means a temporary directory removed afterwards.
	DataDir string
	// JSONPath, when set, receives the report as JSON.
	JSONPath string
	// Verify runs only the correctness check against existing data.
	Verify bool
	// OpTimeout bounds one operation (DefaultOpTimeout).
	OpTimeout time.Duration
	// QuiesceTimeout bounds the wait for the node to become quiet before
	// the check (DefaultQuiesceTimeout).
	QuiesceTimeout time.Duration
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
	if c.PaymentDeclineRatio > 1 {
		bad("--payment-decline-ratio is %g, must be within [0, 1]", c.PaymentDeclineRatio)
	}
	for _, t := range c.Targets {
		if err := remote.CheckAddress(t); err != nil {
			bad("--target: %v", err)
		}
	}
	if len(c.Targets) > 0 && c.DataDir != "" {
		bad("--target and --data are exclusive: a cluster keeps its own data")
	}
	if c.Verify {
		if c.DataDir == "" && len(c.Targets) == 0 {
			bad("--verify needs --data DIR (the data of an earlier run) or --target")
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
	return c
}
