package kv

import (
	"bytes"
	"fmt"
)

// View is a machine's transactional handle on its entity's keyspace. A
// state embeds a *View (in a field the state codec skips, tagged
// `phasm:"-"`) and implements the driver's binding interface; the driver
// binds the view to the entity's committed keyspace before each call and
// collects its writes after a successful transition.
//
// Inside Transition the view is a transaction: Get and Scan see the
// transaction's own writes over the committed keyspace; Set and Delete
// change nothing visible outside it until the runtime commits. Reads may
// fail with a *[ReadError]; the machine should return it. A View is not
// safe for concurrent use (one entity, one caller).
//
// Reset, Writes and ReadErr are for the runtime, not for machine code.
type View struct {
	src       Source
	es        entries
	maxWrites int
	readErr   error
}

// NewView returns an unbound view that accepts at most maxWrites distinct
// keys written per transaction (maxWrites <= 0 means [DefaultMaxWrites]).
func NewView(maxWrites int) *View {
	if maxWrites <= 0 {
		maxWrites = DefaultMaxWrites
	}
	return &View{maxWrites: maxWrites}
}

// Reset starts a new transaction over src: the write set is emptied (its
// memory is not reused: a previous Writes result stays valid) and the read
// error forgotten. A nil src unbinds the view.
func (v *View) Reset(src Source) {
	v.src = src
	v.es = nil
	v.readErr = nil
}

// Writes returns the transaction's write set, sorted by key, one write per
// key (the last one made). The slices belong to the caller after Reset.
func (v *View) Writes() []Write {
	if len(v.es) == 0 {
		return nil
	}
	out := make([]Write, len(v.es))
	for i, e := range v.es {
		out[i] = Write{Key: e.key, Value: e.value, Delete: e.del}
	}
	return out
}

// Len returns the number of distinct keys written in the transaction.
func (v *View) Len() int { return len(v.es) }

// ReadErr returns the first read failure of the transaction, or nil.
func (v *View) ReadErr() error { return v.readErr }

func (v *View) failed(op string, key []byte, err error) error {
	re := &ReadError{Op: op, Key: bytes.Clone(key), Err: err}
	if v.readErr == nil {
		v.readErr = re
	}
	return re
}

// Get returns the value of key as the transaction sees it: its own write
// if it made one, otherwise the committed value. The returned slice must
// not be modified.
func (v *View) Get(key []byte) (value []byte, found bool, err error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if val, found, known := v.es.get(key); known {
		return val, found, nil
	}
	if v.src == nil {
		return nil, false, v.failed("get", key, ErrUnbound)
	}
	val, found, err := v.src.Get(key)
	if err != nil {
		return nil, false, v.failed("get", key, err)
	}
	return val, found, nil
}

// Scan returns the pairs with start <= key < end (nil end: no upper bound)
// in ascending key order as the transaction sees them, at most limit
// (1..MaxScanLimit). more reports that keys in the range may follow. The
// returned slices must not be modified.
func (v *View) Scan(start, end []byte, limit int) (pairs []Pair, more bool, err error) {
	if err := CheckScan(start, end, limit); err != nil {
		return nil, false, err
	}
	if v.src == nil {
		return nil, false, v.failed("scan", start, ErrUnbound)
	}
	pairs, more, err = mergeScan(v.src, v.es, start, end, limit)
	if err != nil {
		return nil, false, v.failed("scan", start, err)
	}
	return pairs, more, nil
}

// Set writes key = value in the transaction. The view copies both.
func (v *View) Set(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := checkValue(value); err != nil {
		return err
	}
	return v.put(entry{key: bytes.Clone(key), value: append(make([]byte, 0, len(value)), value...)})
}

// Delete removes key in the transaction (deleting an absent key is a
// write too: it is journaled, and harmless).
func (v *View) Delete(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return v.put(entry{key: bytes.Clone(key), del: true})
}

func (v *View) put(e entry) error {
	if _, ok := v.es.find(e.key); !ok && len(v.es) >= v.maxWrites {
		return fmt.Errorf("%w: limit %d keys per transition", ErrTooManyWrites, v.maxWrites)
	}
	v.es.put(e)
	return nil
}
