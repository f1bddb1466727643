package persistence

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// Sentinel errors. Check them with errors.Is; the typed errors below wrap
// them.
var (
	// ErrConflict: an append's expected sequence number did not match the
	// entity's last one; nothing was written. See *ConflictError.
	ErrConflict = errors.New("persistence: conflict")
	// ErrCorrupt: stored data failed its checksum, did not decode, or a
	// journal has a gap. See *CorruptionError.
	ErrCorrupt = errors.New("persistence: corrupt data")
	// ErrTooLarge: a record, snapshot or request exceeds a size limit.
	ErrTooLarge = errors.New("persistence: too large")
	// ErrOverloaded: the store's bounded queue of in-flight appends is full.
	ErrOverloaded = errors.New("persistence: overloaded")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("persistence: store closed")
	// ErrInvalidRequest: an append request is malformed (empty kind or ID,
	// non-consecutive sequence numbers, a snapshot beyond the last record,
	// nothing to write).
	ErrInvalidRequest = errors.New("persistence: invalid request")
	// ErrInvalidOptions: a backend's Options failed validation.
	ErrInvalidOptions = errors.New("persistence: invalid options")
)

// ConflictError reports a failed compare-and-set.
type ConflictError struct {
	Entity machine.Entity
	// ExpectedSeq is what the request expected.
	ExpectedSeq uint64
	// ActualSeq is the entity's last sequence number when the conflict was
	// detected, if Known.
	ActualSeq uint64
	Known     bool
	// Fenced, when set, says the request's Epoch (RequestEpoch) was below
	// StoredEpoch, the epoch of the entity's last append: the writer is a
	// stale owner (see AppendRequest.Epoch).
	Fenced                    bool
	RequestEpoch, StoredEpoch uint64
}

// Error implements the error interface.
func (e *ConflictError) Error() string {
	if e.Fenced {
		return fmt.Sprintf("persistence: conflict: entity %s: epoch %d is below the epoch %d of its last append: a stale owner", e.Entity, e.RequestEpoch, e.StoredEpoch)
	}
	if e.Known {
		return fmt.Sprintf("persistence: conflict: entity %s: expected seq %d, store has %d", e.Entity, e.ExpectedSeq, e.ActualSeq)
	}
	return fmt.Sprintf("persistence: conflict: entity %s: expected seq %d no longer matches", e.Entity, e.ExpectedSeq)
}

// Unwrap returns [ErrConflict].
func (e *ConflictError) Unwrap() error { return ErrConflict }

// CorruptionError reports stored data that cannot be trusted. It matches
// [ErrCorrupt] and, when decoding failed, also machine.ErrCorrupt (through
// Err).
type CorruptionError struct {
	Entity machine.Entity
	// Seq is the sequence number of the record or snapshot concerned, taken
	// from where it is stored (not from the damaged bytes); 0 if unknown.
	Seq uint64
	// Where names the part: "record", "snapshot", "journal" or "meta".
	Where  string
	Reason string
	// Err is the underlying decoding error, if any.
	Err error
}

// Error implements the error interface.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("persistence: corrupt %s of entity %s at seq %d: %s", e.Where, e.Entity, e.Seq, e.Reason)
}

// Unwrap returns [ErrCorrupt] and the underlying error.
func (e *CorruptionError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorrupt, e.Err}
	}
	return []error{ErrCorrupt}
}

// TooLargeError reports a size limit exceeded by a request.
type TooLargeError struct {
	Entity machine.Entity
	// Seq is the record concerned, or 0 for the request as a whole.
	Seq uint64
	// What names the limit: "record", "snapshot", "batch records" or
	// "batch bytes".
	What  string
	Size  int
	Limit int
}

// Error implements the error interface.
func (e *TooLargeError) Error() string {
	unit := "bytes"
	if e.What == "batch records" {
		unit = "records"
	}
	if e.Seq != 0 {
		return fmt.Sprintf("persistence: too large: entity %s seq %d: %s is %d %s, limit %d", e.Entity, e.Seq, e.What, e.Size, unit, e.Limit)
	}
	return fmt.Sprintf("persistence: too large: entity %s: %s is %d %s, limit %d", e.Entity, e.What, e.Size, unit, e.Limit)
}

// Unwrap returns [ErrTooLarge].
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

func invalid(e machine.Entity, format string, args ...any) error {
	return fmt.Errorf("%w: entity %s: %s", ErrInvalidRequest, e, fmt.Sprintf(format, args...))
}
