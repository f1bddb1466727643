package machine

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// RecordKind says what a journal record holds.
type RecordKind uint8

const (
	// RecordInput is an accepted normal input.
	RecordInput RecordKind = 1
	// RecordCompletion is an accepted completion of a tracked action.
	RecordCompletion RecordKind = 2
	// RecordRejected is a rejected normal input that carried a request ID:
	// it changes no state but is journaled so a retry gets the same reply.
	RecordRejected RecordKind = 3
)

// String returns the name.
func (k RecordKind) String() string {
	switch k {
	case RecordInput:
		return "input"
	case RecordCompletion:
		return "completion"
	case RecordRejected:
		return "rejected"
	default:
		return fmt.Sprintf("RecordKind(%d)", uint8(k))
	}
}

// Record is one journal entry: an input the entity accepted (or rejected
// with a request ID), as the driver produced it and the store keeps it.
type Record struct {
	// Seq is the entity's sequence number after this record; the first
	// record of an entity has Seq 1.
	Seq  uint64
	Kind RecordKind
	// Time is the acceptance time in Unix nanoseconds.
	Time int64
	// RequestID is the caller's idempotency key, or empty.
	RequestID string
	// ActionID is the completed action (RecordCompletion only).
	ActionID ActionID
	// Payload is the encoded input value, or the encoded result for a
	// completion.
	Payload []byte
	// Err is the encoded rejection (RecordRejected only), see AppendError.
	Err []byte
	// Digest is a checksum of the encoded state after the step when HasDigest
	// is set; replay compares it.
	Digest    uint32
	HasDigest bool
	// Writes is the encoded write set of a database-backed state's
	// transition (kv.AppendChanges: each write with the key's value before
	// it), empty for plain state. The store applies the writes to the
	// entity's keyspace atomically with the record.
	Writes []byte
}

// InputTime returns the acceptance time as a time.Time.
func (r *Record) InputTime() time.Time { return nanosToTime(r.Time) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of p; the format's checksums and state
// digests use it.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

const (
	// recordVersion is the format of records without writes; records with
	// writes use recordVersionWrites, which adds the write set at the end.
	recordVersion       = 1
	recordVersionWrites = 2
	snapshotVersion     = 1
)

// AppendBinary appends the record's self-checking binary form to dst: the
// fields followed by a CRC-32C of everything before it.
func (r *Record) AppendBinary(dst []byte) []byte {
	start := len(dst)
	version := byte(recordVersion)
	if len(r.Writes) > 0 {
		version = recordVersionWrites
	}
	dst = append(dst, version, byte(r.Kind))
	dst = appendUvarint(dst, r.Seq)
	dst = appendVarint(dst, r.Time)
	dst = appendString(dst, r.RequestID)
	dst = appendUvarint(dst, uint64(r.ActionID))
	if r.HasDigest {
		dst = append(dst, 1)
		dst = binary.LittleEndian.AppendUint32(dst, r.Digest)
	} else {
		dst = append(dst, 0)
	}
	dst = appendBytes(dst, r.Payload)
	dst = appendBytes(dst, r.Err)
	if version == recordVersionWrites {
		dst = appendBytes(dst, r.Writes)
	}
	return binary.LittleEndian.AppendUint32(dst, Checksum(dst[start:]))
}

// DecodeRecord decodes what AppendBinary wrote. Payload and Err alias src.
// Malformed or corrupted input gives a *CorruptError.
func DecodeRecord(src []byte) (Record, error) {
	var rec Record
	fail := func(reason string) (Record, error) {
		return Record{}, &CorruptError{Where: "record", Seq: rec.Seq, Reason: reason}
	}
	if len(src) < 6 {
		return fail("truncated")
	}
	body := src[:len(src)-4]
	if want := binary.LittleEndian.Uint32(src[len(src)-4:]); Checksum(body) != want {
		return fail("checksum mismatch")
	}
	r := reader{b: body}
	version, _ := r.byte()
	if version != recordVersion && version != recordVersionWrites {
		return fail(fmt.Sprintf("unknown record version %d", version))
	}
	k, _ := r.byte()
	rec.Kind = RecordKind(k)
	if rec.Kind < RecordInput || rec.Kind > RecordRejected {
		return fail(fmt.Sprintf("unknown record kind %d", k))
	}
	var err error
	if rec.Seq, err = r.uvarint(); err != nil {
		return fail("seq: " + err.Error())
	}
	if rec.Time, err = r.varint(); err != nil {
		return fail("time: " + err.Error())
	}
	if rec.RequestID, err = r.string(); err != nil {
		return fail("request ID: " + err.Error())
	}
	id, err := r.uvarint()
	if err != nil {
		return fail("action ID: " + err.Error())
	}
	rec.ActionID = ActionID(id)
	flag, err := r.byte()
	if err != nil || flag > 1 {
		return fail("digest flag")
	}
	if flag == 1 {
		d, err := r.fixed32()
		if err != nil {
			return fail("digest: " + err.Error())
		}
		rec.Digest, rec.HasDigest = d, true
	}
	if rec.Payload, err = r.bytes(); err != nil {
		return fail("payload: " + err.Error())
	}
	if rec.Err, err = r.bytes(); err != nil {
		return fail("error: " + err.Error())
	}
	if version == recordVersionWrites {
		if rec.Writes, err = r.bytes(); err != nil || len(rec.Writes) == 0 {
			return fail("writes: missing")
		}
	}
	if len(r.b) != 0 {
		return fail(errTrailing.Error())
	}
	if rec.Seq == 0 {
		return fail("zero sequence number")
	}
	return rec, nil
}

// Snapshot is an entity's durable state at a sequence number: the encoded
// state, the request-ID window, and the outstanding tracked actions. Load a
// snapshot, then replay the journal records after Seq.
type Snapshot struct {
	Seq         uint64
	State       []byte
	Requests    []byte
	Outstanding []byte
}

// AppendBinary appends the snapshot's self-checking binary form to dst.
func (s *Snapshot) AppendBinary(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, snapshotVersion)
	dst = appendUvarint(dst, s.Seq)
	dst = appendBytes(dst, s.State)
	dst = appendBytes(dst, s.Requests)
	dst = appendBytes(dst, s.Outstanding)
	return binary.LittleEndian.AppendUint32(dst, Checksum(dst[start:]))
}

// DecodeSnapshot decodes what Snapshot.AppendBinary wrote; the byte fields
// alias src. Malformed input gives a *CorruptError.
func DecodeSnapshot(src []byte) (Snapshot, error) {
	var s Snapshot
	fail := func(reason string) (Snapshot, error) {
		return Snapshot{}, &CorruptError{Where: "snapshot", Seq: s.Seq, Reason: reason}
	}
	if len(src) < 5 {
		return fail("truncated")
	}
	body := src[:len(src)-4]
	if want := binary.LittleEndian.Uint32(src[len(src)-4:]); Checksum(body) != want {
		return fail("checksum mismatch")
	}
	r := reader{b: body}
	if v, _ := r.byte(); v != snapshotVersion {
		return fail(fmt.Sprintf("unknown snapshot version %d", v))
	}
	var err error
	if s.Seq, err = r.uvarint(); err != nil {
		return fail("seq: " + err.Error())
	}
	if s.State, err = r.bytes(); err != nil {
		return fail("state: " + err.Error())
	}
	if s.Requests, err = r.bytes(); err != nil {
		return fail("requests: " + err.Error())
	}
	if s.Outstanding, err = r.bytes(); err != nil {
		return fail("outstanding: " + err.Error())
	}
	if len(r.b) != 0 {
		return fail(errTrailing.Error())
	}
	return s, nil
}
