package actor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// Fence is the fencing token given to executors with every action: the
// shard epoch the entity's owner holds and the sequence number at which
// the action was emitted. An external system that remembers the highest
// fence it saw per key can reject a stale owner.
type Fence struct {
	ShardEpoch uint64
	Seq        uint64
}

// Call is one attempt to execute a tracked action.
type Call[A any] struct {
	Entity machine.Entity
	ID     machine.ActionID
	Action A
	// IdempotencyKey is unique for the action over the entity's life: pass
	// it to the external system so retries do not repeat the effect.
	IdempotencyKey string
	Fence          Fence
	// Attempt counts from 1.
	Attempt int
}

// Executor executes external tracked actions. It is called at least once
// per action, possibly concurrently for different actions, with a context
// that ends at the attempt timeout or when the host stops. An error means
// "try again" until the retry budget is spent; then the kind's Failure
// result is delivered instead.
type Executor[A, R any] func(ctx context.Context, c Call[A]) (R, error)

// Delivery is an entity-to-entity action: deliver Input to entity To.
type Delivery struct {
	To    machine.Entity
	Input any
}

// KindOptions say how the runtime executes a kind's actions.
type KindOptions[S, I, A, R, U any] struct {
	// Execute runs external tracked actions (those that are neither
	// deliveries nor timers).
	Execute Executor[A, R]
	// Failure is the terminal failure result delivered when Execute has
	// failed MaxAttempts times. Required with Execute.
	Failure func(a A, err error) R

	// Deliver recognises the built-in entity-to-entity action of entity
	// from: the input is delivered to the target with the action's
	// idempotency key as request ID, retried until the target answers, and
	// the action completes with Reply(a, the target's reply) (nil when it
	// accepted).
	Deliver func(from machine.Entity, t machine.Tracked[A]) (Delivery, bool)
	Reply   func(a A, err error) R

	// Timer recognises the built-in durable timer: the action completes
	// with Fired(a) at the returned time. After a crash, Restore re-emits
	// it and it fires at the same time.
	Timer func(a A) (time.Time, bool)
	Fired func(a A) R

	// Sink receives untracked actions after their transition is durable,
	// at most once, never re-driven.
	Sink func(ctx context.Context, e machine.Entity, u U)

	// Database-backed kinds (the state implements machine.ViewState) read
	// their keyspace from the host's store, which must implement
	// persistence.Keyspace. Each active entity has a bounded read cache
	// (kv.Cache) of at most ViewCacheEntries values and ViewCacheBytes
	// bytes (zero: the kv defaults), dropped when it passivates; each
	// store read gets at most ViewReadTimeout (zero: 5s). A read that
	// fails fails the step (ErrUnavailable, retryable) and changes nothing.
	ViewCacheEntries int
	ViewCacheBytes   int
	ViewReadTimeout  time.Duration
}

// ErrInvalidKind wraps problems found when registering a kind.
var ErrInvalidKind = errors.New("actor: invalid kind")

// ErrNoExecutor is the cause given to KindOptions.Failure for a tracked
// action that is neither a delivery nor a timer, of a kind without Execute.
var ErrNoExecutor = errors.New("actor: no executor for this action")

func (o *KindOptions[S, I, A, R, U]) validate(name string) error {
	var problems []error
	bad := func(msg string) { problems = append(problems, fmt.Errorf("%w %q: %s", ErrInvalidKind, name, msg)) }
	if o.Execute != nil && o.Failure == nil {
		bad("Execute needs Failure (the terminal failure result)")
	}
	if o.Deliver != nil && o.Reply == nil {
		bad("Deliver needs Reply")
	}
	if o.Timer != nil && o.Fired == nil {
		bad("Timer needs Fired")
	}
	if o.ViewCacheEntries < 0 || o.ViewCacheBytes < 0 || o.ViewReadTimeout < 0 {
		bad("negative view cache limit or read timeout")
	}
	return errors.Join(problems...)
}

// KindRef gives typed references to the entities of one registered kind.
type KindRef[S, I any] struct {
	h    *Host
	name string
}

// Ref returns a reference to entity id of the kind.
func (k *KindRef[S, I]) Ref(id string) Ref[S, I] {
	return Ref[S, I]{h: k.h, entity: machine.Entity{Kind: k.name, ID: id}}
}

// Name returns the kind's name.
func (k *KindRef[S, I]) Name() string { return k.name }

// Register adds a kind to the host. Call it before Start.
func Register[S, I, A, R, U any](h *Host, kind *machine.Kind[S, I, A, R, U], opts KindOptions[S, I, A, R, U]) (*KindRef[S, I], error) {
	if kind == nil {
		return nil, fmt.Errorf("%w: nil kind", ErrInvalidKind)
	}
	if h.state.Load() != hostNew {
		return nil, fmt.Errorf("%w %q: register kinds before Start", ErrInvalidKind, kind.Name())
	}
	if _, dup := h.kinds[kind.Name()]; dup {
		return nil, fmt.Errorf("%w %q: already registered", ErrInvalidKind, kind.Name())
	}
	if err := opts.validate(kind.Name()); err != nil {
		return nil, err
	}
	if kind.HasView() {
		if _, ok := h.cfg.Store.(persistence.Keyspace); !ok {
			return nil, fmt.Errorf("%w %q: its state is database-backed but the store (%T) has no keyspaces (persistence.Keyspace)", ErrInvalidKind, kind.Name(), h.cfg.Store)
		}
	}
	rt := &kindRuntime[S, I, A, R, U]{kindCodec: newKindCodec(kind), kind: kind, opts: opts, m: h.metrics.forKind(kind.Name())}
	h.kinds[kind.Name()] = rt
	h.codecs[kind.Name()] = rt
	return &KindRef[S, I]{h: h, name: kind.Name()}, nil
}

// Lookup returns a typed reference to an entity of a registered kind
// whose state and input types are S and I.
func Lookup[S, I any](h *Host, kind, id string) (Ref[S, I], error) {
	k, ok := h.kinds[kind]
	if !ok {
		return Ref[S, I]{}, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	var zero I
	if !k.accepts(zero) {
		return Ref[S, I]{}, fmt.Errorf("%w: kind %q does not take %T", ErrBadInput, kind, zero)
	}
	return Ref[S, I]{h: h, entity: machine.Entity{Kind: kind, ID: id}}, nil
}

type kindRuntime[S, I, A, R, U any] struct {
	kindCodec[S, I, R]
	kind *machine.Kind[S, I, A, R, U]
	opts KindOptions[S, I, A, R, U]
	m    *kindMetrics
	// batches and effects pool the entities' batch objects and the
	// effects buffers of busy entities (entity.go).
	batches, effects sync.Pool
}

func (k *kindRuntime[S, I, A, R, U]) newEntity(h *Host, e machine.Entity, shard uint32) protoactor.Actor {
	return &entity[S, I, A, R, U]{h: h, rt: k, key: e, shard: shard}
}
