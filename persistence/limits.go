package persistence

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// Default limits, used for zero fields of [Limits].
const (
	DefaultMaxRecordBytes   = 1 << 20  // 1 MiB
	DefaultMaxSnapshotBytes = 64 << 20 // 64 MiB
	DefaultMaxBatchRecords  = 4096
	DefaultMaxBatchBytes    = 64 << 20 // 64 MiB
)

// Limits bound the size of what one append may write. Every backend's
// Options embeds them. A zero field takes its default; a negative one is
// invalid.
type Limits struct {
	// MaxRecordBytes bounds one encoded record (DefaultMaxRecordBytes).
	MaxRecordBytes int
	// MaxSnapshotBytes bounds one encoded snapshot (DefaultMaxSnapshotBytes).
	MaxSnapshotBytes int
	// MaxBatchRecords bounds the records of one request (DefaultMaxBatchRecords).
	MaxBatchRecords int
	// MaxBatchBytes bounds the encoded records plus snapshot of one request
	// (DefaultMaxBatchBytes).
	MaxBatchBytes int
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxRecordBytes, DefaultMaxRecordBytes)
	def(&l.MaxSnapshotBytes, DefaultMaxSnapshotBytes)
	def(&l.MaxBatchRecords, DefaultMaxBatchRecords)
	def(&l.MaxBatchBytes, DefaultMaxBatchBytes)
	return l
}

// Validate reports every negative field at once (errors.Join), each
// wrapping ErrInvalidOptions.
func (l Limits) Validate() error {
	var errs []error
	check := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s is %d, must be >= 0 (0 means the default)", ErrInvalidOptions, name, v))
		}
	}
	check("MaxRecordBytes", l.MaxRecordBytes)
	check("MaxSnapshotBytes", l.MaxSnapshotBytes)
	check("MaxBatchRecords", l.MaxBatchRecords)
	check("MaxBatchBytes", l.MaxBatchBytes)
	return errors.Join(errs...)
}

// Encoded is a validated request in its stored form. Backends get it from
// [Encode] on the caller's goroutine, so encoding is spread over callers
// rather than done by the committer.
type Encoded struct {
	// Records[i] is req.Records[i].AppendBinary(nil).
	Records [][]byte
	// Snapshot is req.Snapshot.AppendBinary(nil), or nil.
	Snapshot []byte
	// Bytes is the total encoded size.
	Bytes int
	// Writes are the net writes to the entity's keyspace: the write sets of
	// the records (machine.Record.Writes) folded in order, one per key,
	// sorted by key. The backend applies them atomically with the records.
	Writes []kv.Write
}

// Encode validates req against l (whose zero fields take their defaults)
// and encodes its records and snapshot. It fails with ErrInvalidRequest
// for a malformed request and with a *TooLargeError for an oversized one.
func Encode(req *AppendRequest, l Limits) (Encoded, error) {
	l = l.WithDefaults()
	e := req.Entity
	if e.Kind == "" || e.ID == "" {
		return Encoded{}, invalid(e, "empty kind or ID")
	}
	if len(req.Records) == 0 && req.Snapshot == nil {
		return Encoded{}, invalid(e, "no records and no snapshot")
	}
	if len(req.Records) > l.MaxBatchRecords {
		return Encoded{}, &TooLargeError{Entity: e, What: "batch records", Size: len(req.Records), Limit: l.MaxBatchRecords}
	}
	if req.ExpectedSeq > ^uint64(0)-uint64(len(req.Records)) {
		return Encoded{}, invalid(e, "sequence numbers overflow")
	}
	out := Encoded{Records: make([][]byte, len(req.Records))}
	for i := range req.Records {
		r := &req.Records[i]
		if want := req.ExpectedSeq + 1 + uint64(i); r.Seq != want {
			return Encoded{}, invalid(e, "record %d has seq %d, want %d (records must be consecutive after expected seq %d)", i, r.Seq, want, req.ExpectedSeq)
		}
		// Sized once: fields, varints and the checksum fit in 40 bytes.
		b := r.AppendBinary(make([]byte, 0, 40+len(r.RequestID)+len(r.Payload)+len(r.Err)))
		if len(b) > l.MaxRecordBytes {
			return Encoded{}, &TooLargeError{Entity: e, Seq: r.Seq, What: "record", Size: len(b), Limit: l.MaxRecordBytes}
		}
		out.Records[i] = b
		out.Bytes += len(b)
	}
	if s := req.Snapshot; s != nil {
		if s.Seq == 0 || s.Seq > req.LastSeq() {
			return Encoded{}, invalid(e, "snapshot seq %d outside 1..%d (the last seq after this append)", s.Seq, req.LastSeq())
		}
		out.Snapshot = s.AppendBinary(make([]byte, 0, 40+len(s.State)+len(s.Requests)+len(s.Outstanding)))
		if len(out.Snapshot) > l.MaxSnapshotBytes {
			return Encoded{}, &TooLargeError{Entity: e, Seq: s.Seq, What: "snapshot", Size: len(out.Snapshot), Limit: l.MaxSnapshotBytes}
		}
		out.Bytes += len(out.Snapshot)
	}
	ws, err := netWrites(req)
	if err != nil {
		return Encoded{}, err
	}
	out.Writes = ws
	if out.Bytes > l.MaxBatchBytes {
		return Encoded{}, &TooLargeError{Entity: e, What: "batch bytes", Size: out.Bytes, Limit: l.MaxBatchBytes}
	}
	return out, nil
}

// DecodeRecord decodes a stored record of entity e that its key says has
// sequence number seq. Any damage, including a record whose own seq
// disagrees with the key, is a *CorruptionError. The record aliases b.
func DecodeRecord(e machine.Entity, seq uint64, b []byte) (machine.Record, error) {
	r, err := machine.DecodeRecord(b)
	if err != nil {
		reason := err.Error()
		var ce *machine.CorruptError
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
		return machine.Record{}, &CorruptionError{Entity: e, Seq: seq, Where: "record", Reason: reason, Err: err}
	}
	if r.Seq != seq {
		return machine.Record{}, &CorruptionError{Entity: e, Seq: seq, Where: "record", Reason: fmt.Sprintf("record stored at seq %d carries seq %d", seq, r.Seq)}
	}
	return r, nil
}

// DecodeSnapshot decodes a stored snapshot of entity e that its key (or
// the entity's metadata) says is at seq. Damage is a *CorruptionError.
// The snapshot aliases b.
func DecodeSnapshot(e machine.Entity, seq uint64, b []byte) (*machine.Snapshot, error) {
	s, err := machine.DecodeSnapshot(b)
	if err != nil {
		reason := err.Error()
		var ce *machine.CorruptError
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
		return nil, &CorruptionError{Entity: e, Seq: seq, Where: "snapshot", Reason: reason, Err: err}
	}
	if s.Seq != seq {
		return nil, &CorruptionError{Entity: e, Seq: seq, Where: "snapshot", Reason: fmt.Sprintf("snapshot stored at seq %d carries seq %d", seq, s.Seq)}
	}
	return &s, nil
}

// CheckJournal verifies that records (decoded from storage) run without a
// gap from after to last, and reports the first missing sequence number as
// a *CorruptionError. Backends call it at the end of Load.
func CheckJournal(e machine.Entity, after, last uint64, records []machine.Record) error {
	want := after + 1
	for _, r := range records {
		if r.Seq != want {
			return &CorruptionError{Entity: e, Seq: want, Where: "journal", Reason: fmt.Sprintf("record %d is missing (next stored is %d)", want, r.Seq)}
		}
		want++
	}
	if want != last+1 {
		return &CorruptionError{Entity: e, Seq: want, Where: "journal", Reason: fmt.Sprintf("journal ends at seq %d but the entity's last seq is %d", want-1, last)}
	}
	return nil
}

// SnapshotPolicy is the runtime's rule for when to write a snapshot with
// an append.
type SnapshotPolicy struct {
	// EveryRecords takes a snapshot once at least this many records were
	// journaled since the last one; 0 or less never takes one.
	EveryRecords int
}

// Due reports whether an entity whose last snapshot is at lastSnapshotSeq
// (0 for none) and whose journal now ends at seq should be snapshotted.
func (p SnapshotPolicy) Due(lastSnapshotSeq, seq uint64) bool {
	return p.EveryRecords > 0 && seq > lastSnapshotSeq && seq-lastSnapshotSeq >= uint64(p.EveryRecords)
}
