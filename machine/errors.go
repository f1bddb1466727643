package machine

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Check them with errors.Is; the typed errors below wrap them.
var (
	// ErrTooManyActions: a transition or Restore emitted more actions than
	// its container's limit.
	ErrTooManyActions = errors.New("machine: too many actions")
	// ErrDuplicateAction: a tracked action was emitted under an ID that is
	// already outstanding or was emitted twice in one call.
	ErrDuplicateAction = errors.New("machine: duplicate action ID")
	// ErrTooManyOutstanding: accepting a transition would leave more tracked
	// actions outstanding than the configured limit.
	ErrTooManyOutstanding = errors.New("machine: too many outstanding actions")
	// ErrNondeterminism: replaying a journal gave a different result than
	// the one recorded.
	ErrNondeterminism = errors.New("machine: nondeterminism detected")
	// ErrCorrupt: encoded data (a record, a snapshot, a value) is malformed.
	ErrCorrupt = errors.New("machine: corrupt data")
	// ErrUnsupportedType: the default codec cannot encode a type.
	ErrUnsupportedType = errors.New("machine: unsupported type")
	// ErrPanic: user code panicked; the step was rolled back.
	ErrPanic = errors.New("machine: panic in machine code")
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("machine: invalid config")
	// ErrSequence: a replayed record does not follow the entity's sequence.
	ErrSequence = errors.New("machine: record out of sequence")
	// ErrTooLarge: a value exceeds a configured size limit.
	ErrTooLarge = errors.New("machine: too large")
)

// DuplicateActionError reports a tracked action ID emitted while already
// outstanding, or twice by one call.
type DuplicateActionError struct {
	Entity Entity
	ID     ActionID
}

// Error implements the error interface.
func (e *DuplicateActionError) Error() string {
	return fmt.Sprintf("machine: entity %s: duplicate action ID %d", e.Entity, e.ID)
}

// Unwrap returns [ErrDuplicateAction].
func (e *DuplicateActionError) Unwrap() error { return ErrDuplicateAction }

// NondeterminismError reports a replayed step that disagrees with what was
// recorded when the step first ran. It names the entity, the sequence
// number, and what differed.
type NondeterminismError struct {
	Entity Entity
	Seq    uint64
	// What names the difference: "outcome", "error", "digest",
	// "completion", or "restore".
	What string
	// Recorded and Replayed describe the two sides in words.
	Recorded string
	Replayed string
}

// Error implements the error interface.
func (e *NondeterminismError) Error() string {
	return fmt.Sprintf("machine: nondeterminism in entity %s at seq %d: %s differs: recorded %s, replayed %s",
		e.Entity, e.Seq, e.What, e.Recorded, e.Replayed)
}

// Unwrap returns [ErrNondeterminism].
func (e *NondeterminismError) Unwrap() error { return ErrNondeterminism }

// CorruptError reports malformed encoded data. Entity and Seq name where it
// was found when known.
type CorruptError struct {
	Entity Entity
	Seq    uint64
	// Where names the part: "record", "snapshot", "state", "input", ...
	Where  string
	Reason string
}

// Error implements the error interface.
func (e *CorruptError) Error() string {
	var b strings.Builder
	b.WriteString("machine: corrupt ")
	b.WriteString(e.Where)
	if e.Entity != (Entity{}) {
		fmt.Fprintf(&b, " of entity %s", e.Entity)
	}
	if e.Seq != 0 {
		fmt.Fprintf(&b, " at seq %d", e.Seq)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns [ErrCorrupt].
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// PanicError is returned for a step whose machine code panicked. The step
// was rolled back; the entity stays usable.
type PanicError struct {
	Entity Entity
	Value  any
	Stack  string
}

// Error implements the error interface.
func (e *PanicError) Error() string {
	return fmt.Sprintf("machine: entity %s: panic in machine code: %v", e.Entity, e.Value)
}

// Unwrap returns [ErrPanic].
func (e *PanicError) Unwrap() error { return ErrPanic }

// Error is a machine error that survives encoding: a stable code and a
// message. Machines may declare their rejections with [NewError]; when any
// error crosses a process boundary or comes back from a snapshot it is
// decoded as an *Error, and errors.Is still matches the declared sentinel
// because it compares codes.
type Error struct {
	Code    string
	Message string
}

// NewError returns a machine error with a stable code (for example
// "bank.insufficient_funds") and a human message.
func NewError(code, message string) *Error { return &Error{Code: code, Message: message} }

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// ErrorCode returns the stable code.
func (e *Error) ErrorCode() string { return e.Code }

// Is reports whether target carries the same non-empty code.
func (e *Error) Is(target error) bool {
	c, ok := target.(interface{ ErrorCode() string })
	return ok && e.Code != "" && c.ErrorCode() == e.Code
}

// ErrorCode returns err's stable code: that of the first error in its chain
// with an ErrorCode method, or "" when there is none.
func ErrorCode(err error) string {
	switch e := err.(type) {
	case nil:
		return ""
	case *Error:
		return e.Code
	}
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return ""
}

// AppendError appends the canonical encoding of err (its code and message)
// to dst. A nil error encodes as a single zero byte.
func AppendError(dst []byte, err error) []byte {
	if err == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = appendString(dst, ErrorCode(err))
	return appendString(dst, err.Error())
}

// DecodeError decodes what [AppendError] wrote: nil, or an *Error.
func DecodeError(src []byte) (error, error) {
	r := reader{b: src}
	err, derr := r.error()
	if derr == nil && len(r.b) != 0 {
		derr = errTrailing
	}
	if derr != nil {
		return nil, &CorruptError{Where: "error", Reason: derr.Error()}
	}
	return err, nil
}

// SameError reports whether a and b encode identically (both nil, or equal
// codes and messages). The simulator and replay compare errors this way.
func SameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return ErrorCode(a) == ErrorCode(b) && a.Error() == b.Error()
}
