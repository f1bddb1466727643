package pebblestore

import (
	"bytes"
	"slices"

	"github.com/cockroachdb/pebble"
)

// staging collects one group's writes before they go into a batch, so
// that they can be added in key order. Keys live in one reused buffer;
// values are the appends' encoded bytes, which outlive the commit.
type staging struct {
	keys    []byte
	entries []stagedWrite
	ranges  []stagedWrite // range deletions: added after every point write
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
}

func (st *staging) empty() bool { return len(st.entries) == 0 && len(st.ranges) == 0 }

type stagingMark struct{ keys, entries, ranges int }

func (st *staging) mark() stagingMark {
	return stagingMark{len(st.keys), len(st.entries), len(st.ranges)}
}

// undo drops what was staged after m (an append that failed its checks).
func (st *staging) undo(m stagingMark) {
	st.keys = st.keys[:m.keys]
	st.entries = st.entries[:m.entries]
	st.ranges = st.ranges[:m.ranges]
}

// key returns the key buffer with prefix appended: a write's key is
// built by appending to it and handed to set or delete, which keep the
// grown buffer (the key is what was appended).
func (st *staging) key(prefix byte) []byte { return append(st.keys, prefix) }

func (st *staging) add(grown []byte, value []byte, del bool) {
	start := len(st.keys)
	st.keys = grown
	st.entries = append(st.entries, stagedWrite{start: start, end: len(grown), value: value, del: del})
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
	keys := st.keys
	slices.SortStableFunc(st.entries, func(x, y stagedWrite) int {
		return bytes.Compare(keys[x.start:x.end], keys[y.start:y.end])
	})
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
