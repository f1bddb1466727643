package actor

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// Runtime errors. A machine's own rejection is never wrapped in these: it
// reaches the caller unchanged.
var (
	// ErrOverloaded: a bound was reached (pending requests, an entity's
	// mailbox, the action queue). Retryable after a backoff.
	ErrOverloaded = errors.New("actor: overloaded")
	// ErrUnavailable: the entity could not be served right now (its store
	// append failed and it is reloading, or its store could not be read).
	// Retryable.
	ErrUnavailable = errors.New("actor: entity unavailable")
	// ErrStopped: the host is stopping or stopped.
	ErrStopped = errors.New("actor: host stopped")
	// ErrUnknownKind: no kind of that name is registered.
	ErrUnknownKind = errors.New("actor: unknown kind")
	// ErrBadInput: an input of the wrong Go type for its kind.
	ErrBadInput = errors.New("actor: input of the wrong type for its kind")
	// ErrEntityFailed: the entity's durable data could not be loaded
	// (corruption, nondeterminism found on replay); the cause is wrapped.
	ErrEntityFailed = errors.New("actor: entity failed to load")
	// ErrNotStarted: the host was used before Start.
	ErrNotStarted = errors.New("actor: host not started")
)

// retryable reports whether a call may be retried transparently with the
// same request ID: overload, an unavailable entity or owner, a shard that
// moved or has no reachable owner in the current view.
func retryable(err error) bool {
	return errors.Is(err, ErrOverloaded) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, ErrMoved) || errors.Is(err, ErrNoOwner)
}

// Ref is a typed reference to one entity of a kind with state S and input
// I. It is a small value: copy it freely.
type Ref[S, I any] struct {
	h      *Host
	entity machine.Entity
}

// Entity returns the referenced entity.
func (r Ref[S, I]) Entity() machine.Entity { return r.entity }

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	requestID string
	noRetry   bool
}

// WithRequestID sets the request ID (idempotency key) of an input. A retry
// with the same ID gets the original reply instead of a second transition,
// as long as the entity's request window still remembers it. Without it,
// Ask generates one so its own transparent retries are safe.
func WithRequestID(id string) CallOption { return func(o *callOptions) { o.requestID = id } }

// WithoutRetry turns off Ask's transparent retries of retryable errors.
func WithoutRetry() CallOption { return func(o *callOptions) { o.noRetry = true } }

// NewRequestID returns a fresh random request ID: 128 random bits, in 22
// URL-safe characters.
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Ask sends an input and waits, within ctx, until it is durable and
// answered. It returns nil when the machine accepted the input, the
// machine's error unchanged when it rejected it, or a runtime error.
// Retryable runtime errors (ErrOverloaded, ErrUnavailable) are retried
// transparently with the same request ID until ctx ends.
func (r Ref[S, I]) Ask(ctx context.Context, in I, opts ...CallOption) error {
	o := callOptions{}
	for _, f := range opts {
		f(&o)
	}
	if o.requestID == "" {
		o.requestID = NewRequestID()
	}
	backoff := DefaultAskRetryBackoff
	var last error
	for {
		changed := r.h.viewChanged()
		resp, err := r.h.call(ctx, &request{entity: r.entity, requestID: o.requestID, input: in}, true)
		if err == nil {
			err = resp.err
		}
		if o.noRetry || !retryable(err) {
			return withLast(ctx, err, last)
		}
		last = err
		if werr := r.h.retryWait(ctx, jitter(backoff), changed); werr != nil {
			return fmt.Errorf("%w (last error: %w)", werr, err)
		}
		backoff = nextAskBackoff(backoff, err)
	}
}

// Tell sends an input without waiting for its outcome. The error reports
// only admission (ErrOverloaded, ErrStopped, ErrUnknownKind).
func (r Ref[S, I]) Tell(in I, opts ...CallOption) error {
	o := callOptions{}
	for _, f := range opts {
		f(&o)
	}
	_, err := r.h.call(context.Background(), &request{entity: r.entity, requestID: o.requestID, input: in}, false)
	return err
}

// Query returns a copy of the entity's state, read in order with its
// inputs: after every input acknowledged before the query was answered,
// and never showing an input that is not yet durable. It changes nothing
// and is not journaled.
func (r Ref[S, I]) Query(ctx context.Context) (S, error) {
	backoff := DefaultAskRetryBackoff
	var last error
	for {
		changed := r.h.viewChanged()
		resp, err := r.h.call(ctx, &request{entity: r.entity, query: true}, true)
		if err == nil {
			err = resp.err
		}
		if err == nil {
			s, ok := resp.state.(S)
			if !ok {
				var zero S
				return zero, fmt.Errorf("%w: query of %s returned %T", ErrBadInput, r.entity, resp.state)
			}
			return s, nil
		}
		if !retryable(err) {
			var zero S
			return zero, withLast(ctx, err, last)
		}
		last = err
		if werr := r.h.retryWait(ctx, jitter(backoff), changed); werr != nil {
			var zero S
			return zero, fmt.Errorf("%w (last error: %w)", werr, err)
		}
		backoff = nextAskBackoff(backoff, err)
	}
}

// Bounds of the wait between two attempts of Ask and Query (each wait is
// drawn from [backoff/2, backoff], so that callers that failed together do
// not all come back together). Overload backs off to a second: retrying
// sooner only adds to the load. Anything else retryable (an entity that
// is reloading or whose store is unreachable, an owner that is moving or
// lost) is a wait for something to come back, and it backs off to a
// quarter of a second only, so that callers notice promptly when it does
// (a store back after an outage of any length is noticed within that);
// such an attempt is cheap: it fails fast.
const (
	maxAskOverloadBackoff    = time.Second
	maxAskUnavailableBackoff = 250 * time.Millisecond
)

// nextAskBackoff returns the backoff after an attempt that failed with the
// retryable err.
func nextAskBackoff(backoff time.Duration, err error) time.Duration {
	if errors.Is(err, ErrOverloaded) {
		return min(backoff*2, maxAskOverloadBackoff)
	}
	return min(backoff*2, maxAskUnavailableBackoff)
}

// withLast adds the last retryable error to a context error that ended a
// retried call while an attempt was in flight, so the caller still sees
// why it retried.
func withLast(ctx context.Context, err, last error) error {
	if last == nil || err == nil || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (last error: %w)", err, last)
}
