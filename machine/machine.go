package machine

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Machine is the contract a machine author implements: a pure State Transition
// Function and a pure Restore over a state of type S.
//
// The type parameters are the machine's vocabulary:
//   - S, the state one entity owns;
//   - I, a normal input (a request, a tick, external data);
//   - A, a tracked action: its outcome matters and comes back as a completion;
//   - R, the result of a tracked action, delivered in a completion;
//   - U, an untracked action: fire-and-forget, executed at most once.
//
// Use [None] for a parameter the machine does not need.
//
// Both methods must be deterministic and perform no I/O; the rules are in the
// package documentation and the simulator (package sim) checks every one.
type Machine[S, I, A, R, U any] interface {
	// Transition validates in against state, mutates state and appends
	// action descriptions to out. Returning an error rejects the input: the
	// caller receives the error unchanged, and the runtime puts the state
	// back as it was before the call (mutating before returning an error is
	// a bug the simulator reports, because the rollback costs a reload).
	//
	// Only completions of outstanding actions reach Transition. Rejecting a
	// completion leaves its action outstanding (the machine did not take the
	// result), so a machine should accept every completion and record it:
	// recognising a result as stale means changing state to say so.
	Transition(state *S, in Input[I, R], out *Actions[A, U]) error

	// Restore reads state, never writes it, and re-emits every tracked action
	// that is still outstanding, each under its original ID. It may emit a
	// different action for an ID (a status check instead of a second charge).
	// It must not emit untracked actions: those are never re-driven, so the
	// driver drops them and reports it (RestoreReport.UntrackedIgnored).
	Restore(state *S, out *Actions[A, U]) error
}

// Initializer is implemented by machines whose fresh entities do not start
// from the zero value of S. Init is called once for an entity that has no
// durable history; it must be deterministic.
type Initializer[S any] interface {
	Init(state *S)
}

// None is the type to use for a type parameter a machine does not need, for
// example a machine without untracked actions uses None for U.
type None struct{}

// ActionID identifies a tracked action within one entity for the entity's
// whole life. Machines derive IDs from a counter kept in their state.
type ActionID uint64

// Tracked is a tracked action description: the ID under which its result
// will come back, and the action itself.
type Tracked[A any] struct {
	ID     ActionID
	Action A
}

// Completion is the result of a tracked action, delivered back to the
// entity that emitted it.
type Completion[R any] struct {
	ActionID ActionID
	Result   R
}

// Input is what Transition receives: either a normal input (Completion is
// nil and Value holds the input) or a completion of a tracked action
// (Completion is non-nil and Value is the zero value).
//
// Time and RequestID are stamped by the runtime when it accepts the input and
// are persisted with it, so a replay sees exactly what the first run saw.
// Machines read time only from here.
type Input[I, R any] struct {
	// Time is when the runtime accepted the input, in UTC, without a
	// monotonic clock reading.
	Time time.Time
	// RequestID is the caller's idempotency key, or empty.
	RequestID string
	// Value is the normal input; the zero value for a completion.
	Value I
	// Completion is non-nil when this input is the result of a tracked action.
	Completion *Completion[R]
}

// IsCompletion reports whether in is a completion rather than a normal input.
func (in Input[I, R]) IsCompletion() bool { return in.Completion != nil }

// Entity names one entity: its kind (the machine type) and its ID within the
// kind. It appears in errors and journal keys.
type Entity struct {
	Kind string
	ID   string
}

// String returns "kind/id".
func (e Entity) String() string { return e.Kind + "/" + e.ID }

// Compare orders entities by kind, then ID, as bytes: -1, 0 or +1. Stores
// list entities in this order.
func (e Entity) Compare(o Entity) int {
	if c := strings.Compare(e.Kind, o.Kind); c != 0 {
		return c
	}
	return strings.Compare(e.ID, o.ID)
}

// NormalizeTime returns t as the runtime stamps it: UTC, with no monotonic
// clock reading, and with the precision that survives persistence (Unix
// nanoseconds). The zero time stays the zero time.
func NormalizeTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

func timeToNanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroTimeNanos
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == zeroTimeNanos {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// zeroTimeNanos stands for the zero time.Time in records; it is a value
// UnixNano never produces for a time in range.
const zeroTimeNanos = -1 << 63

// DefaultMaxActions is the number of actions (tracked plus untracked) one
// transition may emit when a limit is not configured.
const DefaultMaxActions = 1024

// Actions collects the action descriptions a transition (or Restore) emits.
// It is bounded: emitting past its limit returns [ErrTooManyActions], and
// the runtime then fails the transition even if the machine ignored that
// error. The zero value is ready to use with [DefaultMaxActions].
type Actions[A, U any] struct {
	tracked   []Tracked[A]
	untracked []U
	limit     int
	overflow  bool
}

// NewActions returns an empty container that accepts at most limit actions
// (limit <= 0 means [DefaultMaxActions]). Machine tests use it to call
// Transition and Restore directly.
func NewActions[A, U any](limit int) *Actions[A, U] {
	return &Actions[A, U]{limit: limit}
}

func (a *Actions[A, U]) max() int {
	if a.limit <= 0 {
		return DefaultMaxActions
	}
	return a.limit
}

// Track appends a tracked action under id. It returns [ErrTooManyActions]
// when the container is full.
func (a *Actions[A, U]) Track(id ActionID, action A) error {
	if len(a.tracked)+len(a.untracked) >= a.max() {
		a.overflow = true
		return fmt.Errorf("%w (limit %d)", ErrTooManyActions, a.max())
	}
	a.tracked = append(a.tracked, Tracked[A]{ID: id, Action: action})
	return nil
}

// Emit appends an untracked (fire-and-forget) action. It returns
// [ErrTooManyActions] when the container is full.
func (a *Actions[A, U]) Emit(action U) error {
	if len(a.tracked)+len(a.untracked) >= a.max() {
		a.overflow = true
		return fmt.Errorf("%w (limit %d)", ErrTooManyActions, a.max())
	}
	a.untracked = append(a.untracked, action)
	return nil
}

// Tracked returns the tracked actions emitted so far. The slice is owned by
// the container and valid until the next Reset.
func (a *Actions[A, U]) Tracked() []Tracked[A] { return a.tracked }

// Untracked returns the untracked actions emitted so far. The slice is owned
// by the container and valid until the next Reset.
func (a *Actions[A, U]) Untracked() []U { return a.untracked }

// Len returns the number of actions emitted so far.
func (a *Actions[A, U]) Len() int { return len(a.tracked) + len(a.untracked) }

// Overflowed reports whether an emission was refused since the last Reset.
func (a *Actions[A, U]) Overflowed() bool { return a.overflow }

// Reset empties the container, keeping its memory and limit.
func (a *Actions[A, U]) Reset() {
	clear(a.tracked)
	clear(a.untracked)
	a.tracked = a.tracked[:0]
	a.untracked = a.untracked[:0]
	a.overflow = false
}

// IdempotencyKey returns the key the runtime gives the executor of tracked
// action id of entity e: "kind/id/actionID". It is unique for the entity's
// whole life, so an external system can deduplicate retries with it, and it
// is the request ID of an entity-to-entity delivery.
func IdempotencyKey(e Entity, id ActionID) string {
	return e.Kind + "/" + e.ID + "/" + strconv.FormatUint(uint64(id), 10)
}
