package pebblestore

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble"

	"github.com/phasm-go/phasm/machine"
)

// staging collects one group's writes before they go into a batch, so
// that they can be added in key order. Keys live in one reused buffer;
// values are the appends' encoded bytes, which outlive the commit.
type staging struct {
	keys    []byte
	entries []stagedWrite
	ranges  []stagedWrite // range deletions: added after every point write
	sorted  bool          // entries are in key order

	// Journal records and the cuts of in-memory tails (a truncating
	// snapshot): records go to the log and the tail, not to the batch.
	recs   []stagedRecord
	truncs []truncation
}

type stagedRecord struct {
	e   machine.Entity
	seq uint64
	val []byte
}

// truncation drops e's records below end.
type truncation struct {
	e   machine.Entity
	end uint64
}

type stagedWrite struct {
	start, end int // the key is keys[start:end]
	value      []byte
	del        bool
	rangeEnd   []byte // range deletions only
}

func (st *staging) reset() {
	st.keys = st.keys[:0]
	clear(st.entries) // drop references to the last group's values
	st.entries = st.entries[:0]
	st.ranges = st.ranges[:0]
	st.recs = nil // handed over to the group's apply step
	st.truncs = nil
	st.sorted = false
}

// empty reports whether there is nothing for the Pebble batch.
func (st *staging) empty() bool { return len(st.entries) == 0 && len(st.ranges) == 0 }

type stagingMark struct{ keys, entries, ranges, recs, truncs int }

func (st *staging) mark() stagingMark {
	return stagingMark{len(st.keys), len(st.entries), len(st.ranges), len(st.recs), len(st.truncs)}
}

// undo drops what was staged after m (an append that failed its checks).
func (st *staging) undo(m stagingMark) {
	st.keys = st.keys[:m.keys]
	st.entries = st.entries[:m.entries]
	st.ranges = st.ranges[:m.ranges]
	st.recs = st.recs[:m.recs]
	st.truncs = st.truncs[:m.truncs]
}

func (st *staging) record(e machine.Entity, seq uint64, val []byte) {
	st.recs = append(st.recs, stagedRecord{e, seq, val})
}

func (st *staging) truncate(e machine.Entity, end uint64) {
	st.deleteRange(journalKey(e, 0), journalKey(e, end))
	st.truncs = append(st.truncs, truncation{e, end})
}

// key returns the key buffer with prefix appended: a write's key is
// built by appending to it and handed to set or delete, which keep the
// grown buffer (the key is what was appended).
func (st *staging) key(prefix byte) []byte { return append(st.keys, prefix) }

func (st *staging) add(grown []byte, value []byte, del bool) {
	start := len(st.keys)
	st.keys = grown
	st.entries = append(st.entries, stagedWrite{start: start, end: len(grown), value: value, del: del})
	st.sorted = false
}

func (st *staging) set(k, value []byte) { st.add(k, value, false) }
func (st *staging) delete(k []byte)     { st.add(k, nil, true) }

func (st *staging) deleteRange(start, end []byte) {
	st.ranges = append(st.ranges, stagedWrite{value: start, rangeEnd: end})
}

// writeTo adds the staged writes to b: point writes sorted by key (a
// stable sort, so two writes of one key keep their order), then range
// deletions, which only ever cover records of earlier appends.
func (st *staging) writeTo(b *pebble.Batch) error {
	st.sort()
	keys := st.keys
	for _, w := range st.entries {
		k := keys[w.start:w.end]
		var err error
		if w.del {
			err = b.Delete(k, nil)
		} else {
			err = b.Set(k, w.value, nil)
		}
		if err != nil {
			return err
		}
	}
	for _, r := range st.ranges {
		if err := b.DeleteRange(r.value, r.rangeEnd, nil); err != nil {
			return err
		}
	}
	return nil
}

func (st *staging) sort() {
	if st.sorted {
		return
	}
	keys := st.keys
	slices.SortStableFunc(st.entries, func(x, y stagedWrite) int {
		return bytes.Compare(keys[x.start:x.end], keys[y.start:y.end])
	})
	st.sorted = true
}

// appendFrame appends the group's log frame, unsealed (segLog.append
// seals it), to dst: the journal records
// (as journal key sets), the point writes in key order, then the range
// deletions: replayed into one batch, it has the effect of the group.
func (st *staging) appendFrame(dst []byte) []byte {
	st.sort()
	dst = append(dst, make([]byte, frameHeaderLen)...)
	var key []byte
	for _, r := range st.recs {
		key = binary.BigEndian.AppendUint64(appendEntity(append(key[:0], prefixJournal), r.e), r.seq)
		dst = appendFrameOp(dst, opSet, key, r.val)
	}
	for _, w := range st.entries {
		k := st.keys[w.start:w.end]
		if w.del {
			dst = appendFrameOp(dst, opDelete, k, nil)
		} else {
			dst = appendFrameOp(dst, opSet, k, w.value)
		}
	}
	for _, r := range st.ranges {
		dst = appendFrameOp(dst, opDeleteRange, r.value, r.rangeEnd)
	}
	return dst
}
