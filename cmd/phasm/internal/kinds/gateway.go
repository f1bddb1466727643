package kinds

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/dentist/clinic"
)

// Defaults for GatewayOptions.
const (
	DefaultDeclineRatio  = 0.1
	DefaultMaxLatency    = 2 * time.Millisecond
	DefaultMaxRemembered = 1 << 20
)

// GatewayOptions configure the simulated payment gateway.
type GatewayOptions struct {
	// Seed makes the gateway's decisions reproducible: whether a
	// pre-authorisation is declined and how long a call takes are drawn
	// from a hash of the seed and the call's idempotency key, so they do
	// not depend on the order calls arrive in.
	Seed uint64
	// DeclineRatio is the share of pre-authorisations declined, in [0, 1]
	// (a negative value means 0; 0 takes DefaultDeclineRatio unless
	// NoDefaults is set).
	DeclineRatio float64
	// MaxLatency bounds the simulated latency of one call; each call takes
	// a duration drawn from [0, MaxLatency] (0 takes DefaultMaxLatency
	// unless NoDefaults is set; negative: none).
	MaxLatency time.Duration
	// NoDefaults keeps zero DeclineRatio and MaxLatency as zero.
	NoDefaults bool
	// MaxRemembered bounds the idempotency keys the gateway remembers
	// (DefaultMaxRemembered); the oldest are forgotten first.
	MaxRemembered int
}

// Validate reports every problem at once.
func (o GatewayOptions) Validate() error {
	var errs []error
	if o.DeclineRatio > 1 {
		errs = append(errs, fmt.Errorf("%w: payment decline ratio %g must be within [0, 1]", ErrInvalidOptions, o.DeclineRatio))
	}
	if o.MaxRemembered < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxRemembered %d must not be negative", ErrInvalidOptions, o.MaxRemembered))
	}
	return errors.Join(errs...)
}

// ErrInvalidOptions wraps every problem in GatewayOptions or Options.
var ErrInvalidOptions = errors.New("kinds: invalid options")

// Gateway is a simulated payment provider for the clinic kind. It honours
// idempotency keys (a repeated pre-authorisation or status check gets the
// first answer), keeps the holds it granted per clinic and booking
// reference, and releases them. It is safe for concurrent use.
type Gateway struct {
	opts GatewayOptions

	mu      sync.Mutex
	answers map[string]clinic.Result // idempotency key -> answer
	order   []string                 // keys in arrival order, for eviction
	next    int
	holds   map[Hold]int64
	stats   GatewayStats
}

// Hold names a pre-authorisation the gateway granted: the clinic's entity
// ID and the booking reference.
type Hold struct {
	Clinic string // the clinic's entity ID
	Ref    uint64 // the booking reference
}

// GatewayStats count the gateway's calls.
type GatewayStats struct {
	PreAuthorised, Declined, StatusChecks, Released uint64
}

// NewGateway returns a gateway; it panics on nothing and validates opts.
func NewGateway(opts GatewayOptions) (*Gateway, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if !opts.NoDefaults {
		if opts.DeclineRatio == 0 {
			opts.DeclineRatio = DefaultDeclineRatio
		}
		if opts.MaxLatency == 0 {
			opts.MaxLatency = DefaultMaxLatency
		}
	}
	if opts.MaxRemembered == 0 {
		opts.MaxRemembered = DefaultMaxRemembered
	}
	return &Gateway{opts: opts, answers: map[string]clinic.Result{}, holds: map[Hold]int64{}}, nil
}

// draw returns a number in [0, 1) determined by the seed, the key and a
// salt.
func (g *Gateway) draw(key string, salt uint64) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	x := h.Sum64() ^ g.opts.Seed ^ (salt * 0x9e3779b97f4a7c15)
	// splitmix64 finaliser
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// Execute is the clinic kind's executor (actor.Executor).
func (g *Gateway) Execute(ctx context.Context, c actor.Call[clinic.Action]) (clinic.Result, error) {
	if g.opts.MaxLatency > 0 {
		d := time.Duration(g.draw(c.IdempotencyKey, uint64(c.Attempt)+1) * float64(g.opts.MaxLatency))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return clinic.Result{}, ctx.Err()
		case <-t.C:
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	hold := Hold{Clinic: c.Entity.ID, Ref: c.Action.Ref}
	switch c.Action.Kind {
	case clinic.PreAuthorise, clinic.CheckStatus:
		if r, ok := g.answers[c.IdempotencyKey]; ok {
			return r, nil
		}
		r := clinic.Result{OK: true}
		if c.Action.Kind == clinic.CheckStatus || g.draw(c.IdempotencyKey, 0) < g.opts.DeclineRatio {
			// A status check for a pre-authorisation never seen: it did
			// not happen, so it is not authorised.
			r = clinic.Result{OK: false, Reason: clinic.Declined}
		}
		if c.Action.Kind == clinic.CheckStatus {
			g.stats.StatusChecks++
		}
		if r.OK {
			g.holds[hold] = c.Action.AmountCents
			g.stats.PreAuthorised++
		} else {
			g.stats.Declined++
		}
		g.remember(c.IdempotencyKey, r)
		return r, nil
	case clinic.Release:
		if _, ok := g.answers[c.IdempotencyKey]; !ok {
			delete(g.holds, hold)
			g.stats.Released++
			g.remember(c.IdempotencyKey, clinic.Result{OK: true})
		}
		return clinic.Result{OK: true}, nil
	default:
		return clinic.Result{}, fmt.Errorf("kinds: gateway: unknown action %v", c.Action.Kind)
	}
}

func (g *Gateway) remember(key string, r clinic.Result) {
	if len(g.order) < g.opts.MaxRemembered {
		g.order = append(g.order, key)
	} else {
		delete(g.answers, g.order[g.next])
		g.order[g.next] = key
		g.next = (g.next + 1) % len(g.order)
	}
	g.answers[key] = r
}

// Holds returns a copy of the holds the gateway currently keeps.
func (g *Gateway) Holds() map[Hold]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[Hold]int64, len(g.holds))
	for k, v := range g.holds {
		out[k] = v
	}
	return out
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() GatewayStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// failure is the clinic's terminal failure result: the runtime gave up.
func failure(clinic.Action, error) clinic.Result {
	return clinic.Result{OK: false, Reason: clinic.Unavailable}
}
