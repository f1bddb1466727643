package kv

import (
	"bytes"
	"fmt"
	"slices"
)

// entry is a key changed over a base: a new value, or a tombstone.
type entry struct {
	key   []byte
	value []byte
	del   bool
}

// entries is a set of changes sorted by key, one per key.
type entries []entry

func (es entries) find(key []byte) (int, bool) {
	return slices.BinarySearchFunc(es, key, func(e entry, k []byte) int { return bytes.Compare(e.key, k) })
}

// put records a change, replacing an earlier one for the same key. It
// reports whether the key is new to the set.
func (es *entries) put(e entry) bool {
	i, ok := es.find(e.key)
	if ok {
		(*es)[i] = e
		return false
	}
	*es = slices.Insert(*es, i, e)
	return true
}

// get looks key up in the changes: (value, found, known).
func (es entries) get(key []byte) ([]byte, bool, bool) {
	i, ok := es.find(key)
	if !ok {
		return nil, false, false
	}
	if es[i].del {
		return nil, false, true
	}
	return es[i].value, true, true
}

// mergeScan scans base in [start, end) with the changes es laid over it:
// changed keys take their new value, tombstones hide keys. It asks the base
// for pages until it has limit pairs or the range is exhausted.
func mergeScan(base Source, es entries, start, end []byte, limit int) ([]Pair, bool, error) {
	var out []Pair
	i, _ := es.find(start)
	inRange := func(k []byte) bool { return end == nil || bytes.Compare(k, end) < 0 }
	cursor := start
	for {
		page, more, err := base.Scan(cursor, end, limit)
		if err != nil {
			return nil, false, err
		}
		if more && len(page) == 0 {
			return nil, false, fmt.Errorf("%w: source reported more keys but returned none", ErrCorrupt)
		}
		// The page covers [cursor, last key] when more, else [cursor, end).
		var cover []byte
		if more {
			cover = page[len(page)-1].Key
		}
		covered := func(k []byte) bool {
			if cover != nil {
				return bytes.Compare(k, cover) <= 0
			}
			return inRange(k)
		}
		j := 0
		for {
			takeEntry := i < len(es) && covered(es[i].key) && (j >= len(page) || bytes.Compare(es[i].key, page[j].Key) <= 0)
			var p Pair
			switch {
			case takeEntry:
				e := es[i]
				if j < len(page) && bytes.Equal(e.key, page[j].Key) {
					j++ // shadowed
				}
				i++
				if e.del {
					continue
				}
				p = Pair{Key: e.key, Value: e.value}
			case j < len(page):
				p = page[j]
				j++
			default:
				goto pageDone
			}
			out = append(out, p)
			if len(out) == limit {
				rest := j < len(page) || more || (i < len(es) && inRange(es[i].key))
				return out, rest, nil
			}
		}
	pageDone:
		if !more {
			return out, false, nil
		}
		cursor = next(cover)
	}
}

// Overlay is a [Source] made of changes laid over a base source: reads see
// the changes first. The driver uses one to replay a journal tail over a
// keyspace that already holds the tail's writes (the undo layer, see
// [Overlay.Undo]); it is also how a cache holds committed writes the store
// has not yet made durable. It is not safe for concurrent use.
type Overlay struct {
	base Source
	es   entries
}

// NewOverlay returns an empty overlay over base.
func NewOverlay(base Source) *Overlay { return &Overlay{base: base} }

// Base returns the source under the overlay.
func (o *Overlay) Base() Source { return o.base }

// Len returns the number of keys the overlay changes.
func (o *Overlay) Len() int { return len(o.es) }

// Get implements [Source].
func (o *Overlay) Get(key []byte) ([]byte, bool, error) {
	if v, found, known := o.es.get(key); known {
		return v, found, nil
	}
	return o.base.Get(key)
}

// Scan implements [Source].
func (o *Overlay) Scan(start, end []byte, limit int) ([]Pair, bool, error) {
	if err := CheckScan(start, end, limit); err != nil {
		return nil, false, err
	}
	return mergeScan(o.base, o.es, start, end, limit)
}

// Apply lays the writes over the base.
func (o *Overlay) Apply(ws []Write) {
	for _, w := range ws {
		o.es.put(entry{key: w.Key, value: w.Value, del: w.Delete})
	}
}

// Commit implements [Committer]: the writes are applied to the overlay
// only, never to the base.
func (o *Overlay) Commit(_ uint64, ws []Write) { o.Apply(ws) }

// Undo lays the before-images of journaled changes over the base, so the
// overlay shows the keyspace as it was before them. changes must be given
// newest first (the last journal record's changes first), so that a key
// written several times ends with its oldest before-image.
func (o *Overlay) Undo(changes []Change) {
	for _, c := range changes {
		o.es.put(entry{key: c.Key, value: c.Prev, del: !c.PrevFound})
	}
}
