package pebblestore

import (
	"bytes"
	"slices"

	"github.com/phasm-go/phasm/machine"
)

// tail holds the journal records written since a checkpoint, per entity,
// in memory: they are durable in the group log and reach Pebble at the
// next checkpoint. The store has an active tail (taking new appends) and,
// while a checkpoint runs, a frozen one being written to Pebble.
//
// An entity's records are in seq order. They are only appended to, or
// cut (a truncating snapshot) by replacing the slice with a new one, so a
// reader may keep a copy of the slice header taken under the store's
// view lock and read it afterwards without the lock.
//
// The records' bytes are copied into large chunks, written once and never
// moved, and the per-record entries hold no pointers: a tail of millions
// of records is a few objects for the garbage collector to mark.
type tail struct {
	ents   map[machine.Entity]*entityTail
	chunks []chunk // the last one is being filled
	fill   int     // bytes used in the last chunk
	bytes  int64   // bytes added (not reduced by cuts)
}

// chunk holds records' bytes; its slice header never changes, and bytes
// once written never change either.
type chunk []byte

const tailChunkBytes = 1 << 20

type entityTail struct {
	recs []tailRec
}

// tailRec is a record in a tail: its bytes (machine.Record.AppendBinary)
// are chunks[chunk][off:off+n] of the tail.
type tailRec struct {
	seq   uint64
	chunk uint32
	off   uint32
	n     uint32
}

// tailView is an entity's records in one tail, readable without locks.
type tailView struct {
	recs   []tailRec
	chunks []chunk
}

func (v tailView) val(r tailRec) []byte {
	return v.chunks[r.chunk][r.off : r.off+r.n : r.off+r.n]
}

// tailRecOverhead is what a record costs in a tail beyond its bytes.
const tailRecOverhead = 48

func newTail() *tail { return &tail{ents: make(map[machine.Entity]*entityTail)} }

func (t *tail) add(e machine.Entity, seq uint64, val []byte) {
	et := t.ents[e]
	if et == nil {
		et = &entityTail{}
		t.ents[e] = et
	}
	if len(t.chunks) == 0 || len(t.chunks[len(t.chunks)-1])-t.fill < len(val) {
		t.chunks = append(t.chunks, make(chunk, max(tailChunkBytes, len(val))))
		t.fill = 0
	}
	c := len(t.chunks) - 1
	copy(t.chunks[c][t.fill:], val)
	et.recs = append(et.recs, tailRec{seq: seq, chunk: uint32(c), off: uint32(t.fill), n: uint32(len(val))})
	t.fill += len(val)
}

// cut drops e's records below end.
func (t *tail) cut(e machine.Entity, end uint64) {
	et := t.ents[e]
	if et == nil {
		return
	}
	i, _ := slices.BinarySearchFunc(et.recs, end, func(r tailRec, seq uint64) int {
		switch {
		case r.seq < seq:
			return -1
		case r.seq > seq:
			return 1
		}
		return 0
	})
	if i == 0 {
		return
	}
	if i == len(et.recs) {
		delete(t.ents, e)
		return
	}
	et.recs = slices.Clone(et.recs[i:]) // readers may hold the old slice
}

// records returns e's records (shared, read-only).
func (t *tail) records(e machine.Entity) tailView {
	if t == nil {
		return tailView{}
	}
	if et := t.ents[e]; et != nil {
		return tailView{recs: et.recs, chunks: t.chunks}
	}
	return tailView{}
}

// sortedEntities returns the tail's entities in journal key order.
func (t *tail) sortedEntities() ([]machine.Entity, [][]byte) {
	es := make([]machine.Entity, 0, len(t.ents))
	for e := range t.ents {
		es = append(es, e)
	}
	keys := make([][]byte, len(es))
	for i, e := range es {
		keys[i] = entityKey(prefixJournal, e)
	}
	idx := make([]int, len(es))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	outE := make([]machine.Entity, len(es))
	outK := make([][]byte, len(es))
	for i, j := range idx {
		outE[i], outK[i] = es[j], keys[j]
	}
	return outE, outK
}
