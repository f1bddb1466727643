package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

const (
	prefixJournal  = 'j'
	prefixSnapshot = 's'
	prefixMeta     = 'm'
	prefixPending  = 'p'
	prefixKeyspace = 'k' // 'k' entity userkey: database-backed state
	prefixMarker   = 'c' // the checkpoint marker: the log position it covers
)

// appendEntity appends the length-prefixed kind and ID.
func appendEntity(dst []byte, e machine.Entity) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(e.Kind)))
	dst = append(dst, e.Kind...)
	dst = binary.AppendUvarint(dst, uint64(len(e.ID)))
	return append(dst, e.ID...)
}

var errBadKey = errors.New("malformed entity key")

// parseEntity reads what appendEntity wrote and returns the rest.
func parseEntity(b []byte) (machine.Entity, []byte, error) {
	var e machine.Entity
	for _, f := range []*string{&e.Kind, &e.ID} {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return machine.Entity{}, nil, errBadKey
		}
		*f = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return e, b, nil
}

func entityKey(prefix byte, e machine.Entity) []byte {
	return appendEntity([]byte{prefix}, e)
}

func journalKey(e machine.Entity, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(entityKey(prefixJournal, e), seq)
}

// keyspaceKey returns the stored key of an entity's user key; the
// length-prefixed entity makes each entity's keys one contiguous range,
// ordered like the user keys.
func keyspaceKey(dst []byte, e machine.Entity, key []byte) []byte {
	dst = appendEntity(append(dst, prefixKeyspace), e)
	return append(dst, key...)
}

func pendingPrefix(shard uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{prefixPending}, shard)
}

func pendingKey(shard uint32, e machine.Entity) []byte {
	return appendEntity(pendingPrefix(shard), e)
}

// meta is an entity's bookkeeping. Only snapSeq and shard are stored
// (under the meta key, written when they change); last is derived from
// the journal: the newest journal key, or snapSeq if that is newer (a
// journal truncated by a snapshot at its end is empty); pending is the
// presence of the entity's key in the pending index under the stored
// shard. An entity whose pending flag flips with every other input (one
// tracked action at a time) then writes only its pending key, not its
// meta key too. The stored value keeps a pending byte (it was the flag
// before, always written with the key): it is checked but not used.
type meta struct {
	last    uint64
	snapSeq uint64
	shard   uint32
	pending bool
	stored  bool // a meta key exists
}

const metaLen = 8 + 4 + 1 + 4

// sameStored reports whether m and o need the same stored meta value.
func (m meta) sameStored(o meta) bool {
	return m.stored == o.stored && m.snapSeq == o.snapSeq && m.shard == o.shard
}

func (m meta) encode() []byte {
	b := make([]byte, 0, metaLen)
	b = binary.BigEndian.AppendUint64(b, m.snapSeq)
	b = binary.BigEndian.AppendUint32(b, m.shard)
	if m.pending {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return binary.LittleEndian.AppendUint32(b, machine.Checksum(b))
}

func decodeMeta(e machine.Entity, b []byte) (meta, error) {
	fail := func(reason string) (meta, error) {
		return meta{}, &persistence.CorruptionError{Entity: e, Where: "meta", Reason: reason, Err: &machine.CorruptError{Entity: e, Where: "meta", Reason: reason}}
	}
	if len(b) != metaLen {
		return fail(fmt.Sprintf("meta is %d bytes, want %d", len(b), metaLen))
	}
	if machine.Checksum(b[:metaLen-4]) != binary.LittleEndian.Uint32(b[metaLen-4:]) {
		return fail("checksum mismatch")
	}
	if b[12] > 1 {
		return fail("bad pending flag")
	}
	return meta{
		snapSeq: binary.BigEndian.Uint64(b),
		shard:   binary.BigEndian.Uint32(b[8:]),
		stored:  true,
	}, nil
}

func markerKey() []byte { return []byte{prefixMarker} }

const markerLen = 8 + 8 + 4

func encodeMarker(p logPos) []byte {
	b := make([]byte, 0, markerLen)
	b = binary.BigEndian.AppendUint64(b, p.seg)
	b = binary.BigEndian.AppendUint64(b, uint64(p.off))
	return binary.LittleEndian.AppendUint32(b, machine.Checksum(b))
}

// readMarker returns the log position the last checkpoint covers (the
// start of the log if there was none).
func readMarker(db *pebble.DB) (logPos, error) {
	v, closer, err := db.Get(markerKey())
	if errors.Is(err, pebble.ErrNotFound) {
		return logPos{}, nil
	}
	if err != nil {
		return logPos{}, fmt.Errorf("pebblestore: reading the checkpoint marker: %w", err)
	}
	defer closer.Close()
	if len(v) != markerLen || machine.Checksum(v[:16]) != binary.LittleEndian.Uint32(v[16:]) {
		return logPos{}, &persistence.CorruptionError{Where: "checkpoint marker", Reason: "damaged checkpoint marker"}
	}
	p := logPos{seg: binary.BigEndian.Uint64(v), off: int64(binary.BigEndian.Uint64(v[8:]))}
	if p.off < 0 {
		return logPos{}, &persistence.CorruptionError{Where: "checkpoint marker", Reason: "bad offset"}
	}
	return p, nil
}
