package kv

import (
	"bytes"
	"errors"
	"fmt"
)

// Limits of the view. Keys and values larger than these, or more writes
// than the transition's limit, are refused with a typed error before
// anything is written.
const (
	// MaxKeyBytes bounds one key.
	MaxKeyBytes = 1024
	// MaxValueBytes bounds one value.
	MaxValueBytes = 64 << 10
	// DefaultMaxWrites bounds the distinct keys one transition may write
	// when the kind does not configure a limit.
	DefaultMaxWrites = 1024
	// MaxScanLimit bounds the pairs one Scan may return.
	MaxScanLimit = 10_000
)

// Sentinel errors. Check them with errors.Is.
var (
	// ErrRead: a read of the keyspace failed (see *ReadError).
	ErrRead = errors.New("kv: read failed")
	// ErrTooLarge: a key or value exceeds its limit.
	ErrTooLarge = errors.New("kv: too large")
	// ErrTooManyWrites: a transition wrote more distinct keys than its limit.
	ErrTooManyWrites = errors.New("kv: too many writes")
	// ErrInvalid: an empty key, an empty or inverted scan range, or a scan
	// limit outside 1..MaxScanLimit.
	ErrInvalid = errors.New("kv: invalid argument")
	// ErrCorrupt: an encoded write set is malformed.
	ErrCorrupt = errors.New("kv: corrupt data")
	// ErrUnbound: the view was used outside a transition (no source bound).
	ErrUnbound = errors.New("kv: view not bound to a source")
)

// ReadError reports a failed read of the keyspace. It matches [ErrRead]
// and the source's own error.
type ReadError struct {
	// Op is "get" or "scan".
	Op string
	// Key is the key read, or the scan's start.
	Key []byte
	Err error
}

// Error implements the error interface.
func (e *ReadError) Error() string {
	return fmt.Sprintf("kv: %s %q failed: %v", e.Op, e.Key, e.Err)
}

// Unwrap returns [ErrRead] and the source's error.
func (e *ReadError) Unwrap() []error { return []error{ErrRead, e.Err} }

// Write is one change to a keyspace: set Key to Value, or delete Key.
type Write struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// Pair is a key and its value, as a scan returns them.
type Pair struct {
	Key   []byte
	Value []byte
}

// Source is a readable keyspace: one entity's committed keys. Reads may
// fail. Returned slices belong to the source and must not be modified;
// they stay valid (sources never reuse them).
type Source interface {
	// Get returns the value of key and whether it exists.
	Get(key []byte) (value []byte, found bool, err error)
	// Scan returns the pairs with start <= key < end in ascending key
	// order (a nil end means no upper bound), at most limit of them
	// (limit >= 1). more reports that keys in the range may follow the
	// last one returned; when more is true at least one pair is returned.
	Scan(start, end []byte, limit int) (pairs []Pair, more bool, err error)
}

// Committer is implemented by sources that take the writes of committed
// transitions, so that later reads see them: the runtime's cache (until the
// store has them) and the in-memory keyspace. The driver calls Commit after
// each accepted step with the entity's new sequence number; ws is sorted by
// key, has one write per key, and is handed over (the caller does not keep
// it).
type Committer interface {
	Commit(seq uint64, ws []Write)
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(key), MaxKeyBytes)
	}
	return nil
}

func checkValue(v []byte) error {
	if len(v) > MaxValueBytes {
		return fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, len(v), MaxValueBytes)
	}
	return nil
}

// CheckScan validates scan arguments as every source and the view do.
func CheckScan(start, end []byte, limit int) error {
	if limit < 1 || limit > MaxScanLimit {
		return fmt.Errorf("%w: scan limit %d outside 1..%d", ErrInvalid, limit, MaxScanLimit)
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return fmt.Errorf("%w: empty scan range [%q, %q)", ErrInvalid, start, end)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key with the
// given prefix, or nil when there is none (the prefix is all 0xff): the
// end of a scan over a prefix.
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// next returns the smallest key greater than k.
func next(k []byte) []byte {
	out := make([]byte, len(k)+1)
	copy(out, k)
	return out
}
