package actor

import (
	"context"
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/actor/wire"
	"github.com/phasm-go/phasm/machine"
)

// Errors of routing between processes. Both are retryable: Ask and Query
// retry them with the same request ID until their context ends, reading
// the (possibly newer) view again on every attempt.
var (
	// ErrMoved: the node asked does not own the entity's shard (the
	// sender's view is stale, or the receiver's is). Retry after the view
	// changes.
	ErrMoved = errors.New("actor: shard moved")
	// ErrNoOwner: the view names no reachable owner for the entity's shard
	// (no view yet, the shard unowned, its owner down or without a remote
	// address). Requests fail fast instead of waiting on a dead node.
	ErrNoOwner = errors.New("actor: shard has no reachable owner")
	// ErrBadEnvelope: an envelope that cannot be served (undecodable
	// payload, unknown operation, missing entity).
	ErrBadEnvelope = errors.New("actor: malformed envelope")
)

// RemoteError is a runtime error answered by another process. It keeps the
// outcome class (Status), a stable Code and the message; errors.Is matches
// the runtime sentinel that Code names (ErrOverloaded, ErrUnknownKind,
// context.DeadlineExceeded, machine.ErrPanic, ...). A machine's rejection
// never arrives as a RemoteError: it arrives as a *machine.Error.
type RemoteError struct {
	Status  wire.Envelope_Status
	Code    string
	Message string
	cause   error
}

// Error implements the error interface.
func (e *RemoteError) Error() string { return "actor: remote: " + e.Message }

// Unwrap returns the sentinel named by Code, or nil.
func (e *RemoteError) Unwrap() error { return e.cause }

// wireCodes names the runtime errors that keep their identity across the
// wire. The first match wins, so wrappers come before what they wrap.
var wireCodes = [...]struct {
	code string
	err  error
}{
	{"actor.moved", ErrMoved},
	{"actor.no_owner", ErrNoOwner},
	{"actor.overloaded", ErrOverloaded},
	{"actor.unavailable", ErrUnavailable},
	{"actor.entity_failed", ErrEntityFailed},
	{"actor.stopped", ErrStopped},
	{"actor.not_started", ErrNotStarted},
	{"actor.unknown_kind", ErrUnknownKind},
	{"actor.bad_input", ErrBadInput},
	{"actor.bad_envelope", ErrBadEnvelope},
	{"context.deadline_exceeded", context.DeadlineExceeded},
	{"context.canceled", context.Canceled},
	{"machine.panic", machine.ErrPanic},
	{"machine.too_many_actions", machine.ErrTooManyActions},
	{"machine.too_many_outstanding", machine.ErrTooManyOutstanding},
	{"machine.duplicate_action", machine.ErrDuplicateAction},
	{"machine.too_large", machine.ErrTooLarge},
	{"machine.nondeterminism", machine.ErrNondeterminism},
	{"machine.corrupt", machine.ErrCorrupt},
}

// codeOf returns the wire code of a runtime error: the code of the first
// sentinel it matches, else its machine.ErrorCode ("" when none).
func codeOf(err error) string {
	for _, w := range wireCodes {
		if errors.Is(err, w.err) {
			return w.code
		}
	}
	return machine.ErrorCode(err)
}

// sentinelOf returns the runtime sentinel a wire code names, or nil.
func sentinelOf(code string) error {
	for _, w := range wireCodes {
		if w.code == code {
			return w.err
		}
	}
	return nil
}

// kindCodecs is the type-erased wire vocabulary of a kind: what a node or
// a client needs to send its inputs, results and states between
// processes, with the kind's own machine codecs.
type kindCodecs interface {
	name() string
	accepts(input any) bool
	encodeInput(in any) ([]byte, error)
	decodeInput(b []byte) (any, error)
	encodeResult(r any) ([]byte, error)
	decodeResult(b []byte) (any, error)
	encodeState(s any) ([]byte, error)
	decodeState(b []byte) (any, error)
}

// kindCodec implements kindCodecs for a kind with state S, input I and
// result R.
type kindCodec[S, I, R any] struct {
	kind   string
	state  machine.Codec[S]
	input  machine.Codec[I]
	result machine.Codec[R]
}

func newKindCodec[S, I, A, R, U any](k *machine.Kind[S, I, A, R, U]) kindCodec[S, I, R] {
	return kindCodec[S, I, R]{kind: k.Name(), state: k.StateCodec(), input: k.InputCodec(), result: k.ResultCodec()}
}

func (k kindCodec[S, I, R]) name() string { return k.kind }

func (k kindCodec[S, I, R]) accepts(input any) bool {
	_, ok := input.(I)
	return ok
}

func encodeAs[T any](c machine.Codec[T], kind, what string, v any) ([]byte, error) {
	t, ok := v.(T)
	if !ok {
		return nil, fmt.Errorf("%w: %s of kind %q is %T, want %T", ErrBadInput, what, kind, v, t)
	}
	b, err := c.Append(nil, &t)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the %s of kind %q: %w", ErrBadInput, what, kind, err)
	}
	return b, nil
}

func decodeAs[T any](c machine.Codec[T], kind, what string, b []byte) (any, error) {
	var t T
	if err := c.Decode(b, &t); err != nil {
		return nil, fmt.Errorf("%w: decoding the %s of kind %q: %w", ErrBadEnvelope, what, kind, err)
	}
	return t, nil
}

func (k kindCodec[S, I, R]) encodeInput(v any) ([]byte, error) {
	return encodeAs(k.input, k.kind, "input", v)
}

func (k kindCodec[S, I, R]) decodeInput(b []byte) (any, error) {
	return decodeAs(k.input, k.kind, "input", b)
}

func (k kindCodec[S, I, R]) encodeResult(v any) ([]byte, error) {
	return encodeAs(k.result, k.kind, "result", v)
}

func (k kindCodec[S, I, R]) decodeResult(b []byte) (any, error) {
	return decodeAs(k.result, k.kind, "result", b)
}

func (k kindCodec[S, I, R]) encodeState(v any) ([]byte, error) {
	return encodeAs(k.state, k.kind, "state", v)
}

func (k kindCodec[S, I, R]) decodeState(b []byte) (any, error) {
	return decodeAs(k.state, k.kind, "state", b)
}

// encodeOutcome writes a local answer into a reply envelope: resp is the
// entity's answer, err a failure to admit or route the request (it wins).
// A query's state is encoded with k (nil only for failures).
func encodeOutcome(out *wire.Envelope, k kindCodecs, query bool, resp response, err error) {
	if err == nil {
		err = resp.err
	}
	switch {
	case err == nil:
		out.Status = wire.Envelope_STATUS_OK
		if query && k != nil {
			b, eerr := k.encodeState(resp.state)
			if eerr != nil {
				encodeOutcome(out, nil, false, response{}, eerr)
				return
			}
			out.Payload = b
		}
		return
	case resp.rejected && err == resp.err:
		out.Status = wire.Envelope_STATUS_REJECTED
		out.ErrorCode = machine.ErrorCode(err)
	case resp.permanent && err == resp.err:
		out.Status = wire.Envelope_STATUS_PERMANENT
		out.ErrorCode = codeOf(err)
	case errors.Is(err, ErrMoved):
		out.Status = wire.Envelope_STATUS_MOVED
		out.ErrorCode = codeOf(err)
	case retryable(err) || errors.Is(err, ErrStopped):
		// The answering host is stopping: for the caller that is an
		// unavailable owner, not a stopped host of its own.
		out.Status = wire.Envelope_STATUS_RETRYABLE
		out.ErrorCode = codeOf(err)
	default:
		out.Status = wire.Envelope_STATUS_FAILED
		out.ErrorCode = codeOf(err)
	}
	out.ErrorMessage = err.Error()
}

// decodeOutcome reads a reply envelope back into a response. The second
// result is a failure that the caller must treat like a local admission
// error (FAILED: unknown kind, bad input, a bad envelope, ...).
func decodeOutcome(env *wire.Envelope, k kindCodecs, query bool) (response, error) {
	code, msg := env.GetErrorCode(), env.GetErrorMessage()
	remote := func(cause error) *RemoteError {
		return &RemoteError{Status: env.GetStatus(), Code: code, Message: msg, cause: cause}
	}
	switch env.GetStatus() {
	case wire.Envelope_STATUS_OK:
		if !query {
			return response{}, nil
		}
		s, err := k.decodeState(env.GetPayload())
		if err != nil {
			return response{}, err
		}
		return response{state: s}, nil
	case wire.Envelope_STATUS_REJECTED:
		// A *machine.Error: errors.Is matches the machine's sentinel by
		// code, exactly as after machine.DecodeError.
		return response{err: &machine.Error{Code: code, Message: msg}, rejected: true}, nil
	case wire.Envelope_STATUS_PERMANENT:
		return response{err: remote(sentinelOf(code)), permanent: true}, nil
	case wire.Envelope_STATUS_RETRYABLE:
		cause := sentinelOf(code)
		if cause != ErrOverloaded {
			cause = ErrUnavailable
		}
		return response{err: remote(cause)}, nil
	case wire.Envelope_STATUS_MOVED:
		return response{err: remote(ErrMoved)}, nil
	default:
		return response{}, remote(sentinelOf(code))
	}
}
