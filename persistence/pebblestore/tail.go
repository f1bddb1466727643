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
type tail struct {
	ents  map[machine.Entity]*entityTail
	bytes int64 // bytes added (not reduced by cuts)
}

type entityTail struct {
	recs []tailRec
}

type tailRec struct {
	seq uint64
	val []byte // the encoded record (machine.Record.AppendBinary)
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
	et.recs = append(et.recs, tailRec{seq, val})
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

// records returns e's records (a shared, read-only slice).
func (t *tail) records(e machine.Entity) []tailRec {
	if t == nil {
		return nil
	}
	if et := t.ents[e]; et != nil {
		return et.recs
	}
	return nil
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
