package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Change is a journaled write: the write and the key's value before it
// (PrevFound false when the key did not exist). Before-images let replay
// rebuild the keyspace as of any journaled sequence number (see
// [Overlay.Undo]).
type Change struct {
	Write
	Prev      []byte
	PrevFound bool
}

// Changes computes the journaled form of a write set: each write with the
// value its key has in src (the committed keyspace before the writes). A
// failed read is a *ReadError.
func Changes(src Source, ws []Write) ([]Change, error) {
	out := make([]Change, len(ws))
	for i, w := range ws {
		prev, found, err := src.Get(w.Key)
		if err != nil {
			return nil, &ReadError{Op: "get", Key: bytes.Clone(w.Key), Err: err}
		}
		out[i] = Change{Write: w, Prev: prev, PrevFound: found}
	}
	return out, nil
}

const (
	flagDelete    = 1
	flagPrevFound = 2
)

// AppendChanges appends the canonical encoding of cs (sorted by key, one
// per key, as [Changes] returns them) to dst.
func AppendChanges(dst []byte, cs []Change) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(cs)))
	for _, c := range cs {
		dst = binary.AppendUvarint(dst, uint64(len(c.Key)))
		dst = append(dst, c.Key...)
		var f byte
		if c.Delete {
			f |= flagDelete
		}
		if c.PrevFound {
			f |= flagPrevFound
		}
		dst = append(dst, f)
		if !c.Delete {
			dst = binary.AppendUvarint(dst, uint64(len(c.Value)))
			dst = append(dst, c.Value...)
		}
		if c.PrevFound {
			dst = binary.AppendUvarint(dst, uint64(len(c.Prev)))
			dst = append(dst, c.Prev...)
		}
	}
	return dst
}

// DecodeChanges decodes what AppendChanges wrote, checking every limit and
// the key order. The slices alias src. Malformed input wraps [ErrCorrupt].
func DecodeChanges(src []byte) ([]Change, error) {
	if len(src) == 0 {
		return nil, nil
	}
	fail := func(reason string) ([]Change, error) {
		return nil, fmt.Errorf("%w: write set: %s", ErrCorrupt, reason)
	}
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return fail("bad count")
	}
	src = src[k:]
	if n > uint64(len(src))/3 {
		return fail("count exceeds data")
	}
	readBytes := func(max int) ([]byte, error) {
		l, k := binary.Uvarint(src)
		if k <= 0 || l > uint64(len(src)-k) {
			return nil, errors.New("truncated")
		}
		if l > uint64(max) {
			return nil, fmt.Errorf("%d bytes exceed the limit %d", l, max)
		}
		b := src[k : k+int(l) : k+int(l)]
		src = src[k+int(l):]
		return b, nil
	}
	out := make([]Change, n)
	for i := range out {
		c := &out[i]
		var err error
		if c.Key, err = readBytes(MaxKeyBytes); err != nil || len(c.Key) == 0 {
			if err == nil {
				err = errors.New("empty key")
			}
			return fail(fmt.Sprintf("key %d: %v", i, err))
		}
		if i > 0 && bytes.Compare(out[i-1].Key, c.Key) >= 0 {
			return fail(fmt.Sprintf("key %d out of order", i))
		}
		if len(src) == 0 || src[0] > flagDelete|flagPrevFound {
			return fail(fmt.Sprintf("key %d: bad flags", i))
		}
		f := src[0]
		src = src[1:]
		c.Delete, c.PrevFound = f&flagDelete != 0, f&flagPrevFound != 0
		if !c.Delete {
			if c.Value, err = readBytes(MaxValueBytes); err != nil {
				return fail(fmt.Sprintf("value %d: %v", i, err))
			}
		}
		if c.PrevFound {
			if c.Prev, err = readBytes(MaxValueBytes); err != nil {
				return fail(fmt.Sprintf("before-image %d: %v", i, err))
			}
		}
	}
	if len(src) != 0 {
		return fail("trailing bytes")
	}
	return out, nil
}

// WritesOf returns the writes of cs, without their before-images.
func WritesOf(cs []Change) []Write {
	out := make([]Write, len(cs))
	for i, c := range cs {
		out[i] = c.Write
	}
	return out
}

// Net folds write sets, oldest first, into the net writes to apply to a
// keyspace: one per key (the last), sorted by key.
func Net(sets ...[]Write) []Write {
	var es entries
	for _, ws := range sets {
		for _, w := range ws {
			es.put(entry{key: w.Key, value: w.Value, del: w.Delete})
		}
	}
	out := make([]Write, len(es))
	for i, e := range es {
		out[i] = Write{Key: e.key, Value: e.value, Delete: e.del}
	}
	return out
}
