package actor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phasm-go/phasm/persistence"
)

// Defaults for Config fields left at zero.
const (
	DefaultShards               = 256
	DefaultMaxActiveEntities    = 2_000_000
	DefaultIdleTimeout          = 5 * time.Minute
	DefaultMailboxLimit         = 1024
	DefaultMaxBatchInputs       = 256
	DefaultMaxPendingRequests   = 200_000
	DefaultSnapshotEveryRecords = 1000
	DefaultMaxActionsInFlight   = 1024
	DefaultMaxActionsQueued     = 100_000
	DefaultActionAttemptTimeout = 10 * time.Second
	DefaultActionMaxAttempts    = 8
	DefaultActionInitialBackoff = 50 * time.Millisecond
	DefaultActionMaxBackoff     = 5 * time.Second
	DefaultShutdownTimeout      = 30 * time.Second
	DefaultAskRetryBackoff      = 5 * time.Millisecond
)

// Config configures a Host. Zero fields take the documented defaults;
// Validate reports every problem at once.
type Config struct {
	// Store keeps journals and snapshots. Required.
	Store persistence.Store
	// Shards is the number of shards entities are hashed into (default
	// DefaultShards). Changing it re-homes every entity.
	Shards int
	// Clock stamps inputs with their acceptance time (default time.Now).
	Clock func() time.Time
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger

	// MaxActiveEntities caps the entities kept in memory; the least
	// recently used are passivated first (default DefaultMaxActiveEntities).
	MaxActiveEntities int
	// IdleTimeout passivates an entity unused for this long (default
	// DefaultIdleTimeout; negative: never). Entities with outstanding tracked
	// actions stay active. Shards check every IdleTimeout/4 (between 10 ms
	// and 1 s) and learn of direct use at their checks, so an entity may
	// stay up to two check periods longer.
	IdleTimeout time.Duration
	// MailboxLimit bounds the inputs waiting at one entity; past it new
	// inputs get ErrOverloaded (default DefaultMailboxLimit).
	MailboxLimit int
	// MaxBatchInputs bounds the inputs one entity persists in one append
	// (default DefaultMaxBatchInputs).
	MaxBatchInputs int
	// MaxPendingRequests bounds the requests admitted host-wide and not yet
	// answered; past it calls fail with ErrOverloaded (default
	// DefaultMaxPendingRequests).
	MaxPendingRequests int
	// SnapshotEveryRecords writes an entity snapshot (and truncates its
	// journal) after this many records (default DefaultSnapshotEveryRecords;
	// negative: never).
	SnapshotEveryRecords int

	// Actions configures the execution of tracked actions.
	Actions ActionConfig

	// ShutdownTimeout bounds Stop's drain of in-flight work (default
	// DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// ShardEpoch is the fencing epoch this host owns its shards under; a
	// single node uses 1 (the default). A host that follows a watched
	// cluster view (ClusterConfig.Watch) uses each shard's epoch from the
	// view instead.
	ShardEpoch uint64

	// Metrics, when set, receives the host's Prometheus metrics (inputs by
	// kind and outcome, transition and persist latency, batch sizes,
	// activations, active entities, tracked actions, retries, failures,
	// overload).
	Metrics prometheus.Registerer

	// Cluster, when set, runs the host as a node of a cluster: it listens
	// on protoactor remote, serves the shards the view assigns it, and
	// routes requests for every other shard to its owner. Nil: a single
	// node that serves every shard and opens no socket.
	Cluster *ClusterConfig
}

// ActionConfig configures tracked-action execution: bounded concurrency,
// per-attempt timeouts, retries with exponential backoff and jitter, and a
// terminal failure result after the last attempt.
type ActionConfig struct {
	// MaxInFlight is the number of workers executing actions (default
	// DefaultMaxActionsInFlight).
	MaxInFlight int
	// MaxQueued is the admission bound on actions waiting or executing:
	// past it the host refuses new inputs with ErrOverloaded until the
	// queue drains (default DefaultMaxActionsQueued). Actions that are
	// already durable (re-emitted by Restore at activation, or retried) are
	// never refused, so the queue can briefly exceed it; they then run on
	// goroutines of their own rather than be dropped.
	MaxQueued int
	// AttemptTimeout bounds one attempt (default DefaultActionAttemptTimeout).
	AttemptTimeout time.Duration
	// MaxAttempts is the retry budget of external actions (default
	// DefaultActionMaxAttempts). Entity-to-entity deliveries retry until
	// they get a reply: giving up on them would break sagas.
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the exponential backoff between
	// attempts (defaults DefaultActionInitialBackoff, DefaultActionMaxBackoff);
	// each wait is drawn uniformly from [backoff/2, backoff].
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// ErrInvalidConfig wraps every configuration problem.
var ErrInvalidConfig = errors.New("actor: invalid config")

// Validate reports every problem in c at once.
func (c *Config) Validate() error {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	if c.Store == nil {
		bad("Store is required")
	}
	if c.Shards < 0 || c.Shards > 1<<16 {
		bad("Shards is %d, must be within [1, 65536]", c.Shards)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxActiveEntities", c.MaxActiveEntities}, {"MailboxLimit", c.MailboxLimit},
		{"MaxBatchInputs", c.MaxBatchInputs}, {"MaxPendingRequests", c.MaxPendingRequests},
		{"Actions.MaxInFlight", c.Actions.MaxInFlight}, {"Actions.MaxQueued", c.Actions.MaxQueued},
		{"Actions.MaxAttempts", c.Actions.MaxAttempts},
	} {
		if f.v < 0 {
			bad("%s is %d, must not be negative", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"Actions.AttemptTimeout", c.Actions.AttemptTimeout}, {"Actions.InitialBackoff", c.Actions.InitialBackoff},
		{"Actions.MaxBackoff", c.Actions.MaxBackoff}, {"ShutdownTimeout", c.ShutdownTimeout},
	} {
		if f.v < 0 {
			bad("%s is %s, must not be negative", f.name, f.v)
		}
	}
	if c.Actions.MaxBackoff > 0 && c.Actions.InitialBackoff > c.Actions.MaxBackoff {
		bad("Actions.InitialBackoff %s exceeds Actions.MaxBackoff %s", c.Actions.InitialBackoff, c.Actions.MaxBackoff)
	}
	if c.Actions.MaxQueued > 0 && c.Actions.MaxInFlight > c.Actions.MaxQueued {
		bad("Actions.MaxInFlight %d exceeds Actions.MaxQueued %d", c.Actions.MaxInFlight, c.Actions.MaxQueued)
	}
	if c.Cluster != nil {
		c.Cluster.validate(false, bad)
	}
	return errors.Join(problems...)
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Shards, DefaultShards)
	def(&c.MaxActiveEntities, DefaultMaxActiveEntities)
	def(&c.MailboxLimit, DefaultMailboxLimit)
	def(&c.MaxBatchInputs, DefaultMaxBatchInputs)
	def(&c.MaxPendingRequests, DefaultMaxPendingRequests)
	def(&c.SnapshotEveryRecords, DefaultSnapshotEveryRecords)
	def(&c.Actions.MaxInFlight, DefaultMaxActionsInFlight)
	def(&c.Actions.MaxQueued, max(DefaultMaxActionsQueued, c.Actions.MaxInFlight))
	def(&c.Actions.MaxAttempts, DefaultActionMaxAttempts)
	defD(&c.IdleTimeout, DefaultIdleTimeout)
	defD(&c.Actions.AttemptTimeout, DefaultActionAttemptTimeout)
	defD(&c.Actions.InitialBackoff, DefaultActionInitialBackoff)
	defD(&c.Actions.MaxBackoff, max(DefaultActionMaxBackoff, c.Actions.InitialBackoff))
	defD(&c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ShardEpoch == 0 {
		c.ShardEpoch = 1
	}
	return c
}
