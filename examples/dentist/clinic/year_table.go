package clinic

import (
	"encoding/binary"
	"errors"

	"github.com/phasm-go/phasm/machine/kv"
)

// Table is an ordered key-value table held in a plain state value: the
// plain-value year calendar's bookings. It encodes canonically (pairs in
// key order) and is copied whole by Clone. The zero value is empty.
type Table struct {
	m *kv.Mem
}

func (t *Table) mem() *kv.Mem {
	if t.m == nil {
		t.m = kv.NewMem()
	}
	return t.m
}

// Len returns the number of keys.
func (t *Table) Len() int {
	if t.m == nil {
		return 0
	}
	return t.m.Len()
}

// Get returns the value of key.
func (t *Table) Get(key []byte) ([]byte, bool, error) { return t.mem().Get(key) }

// Set sets key to a copy of value.
func (t *Table) Set(key, value []byte) error { t.mem().Set(key, value); return nil }

// Delete removes key.
func (t *Table) Delete(key []byte) error { t.mem().Delete(key); return nil }

// Scan returns the pairs in [start, end), at most limit, as kv.Source.
func (t *Table) Scan(start, end []byte, limit int) ([]kv.Pair, bool, error) {
	return t.mem().Scan(start, end, limit)
}

// Clone returns an independent copy.
func (t *Table) Clone() Table {
	if t.m == nil {
		return Table{}
	}
	return Table{m: t.m.Clone()}
}

// AppendCanonical encodes the pairs in key order.
func (t *Table) AppendCanonical(dst []byte) ([]byte, error) {
	if t.m == nil {
		return binary.AppendUvarint(dst, 0), nil
	}
	all := t.m.All()
	dst = binary.AppendUvarint(dst, uint64(len(all)))
	for _, p := range all {
		dst = binary.AppendUvarint(dst, uint64(len(p.Key)))
		dst = append(dst, p.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(p.Value)))
		dst = append(dst, p.Value...)
	}
	return dst, nil
}

var errTable = errors.New("clinic: malformed table")

// UnmarshalCanonical decodes what AppendCanonical wrote, replacing the
// table.
func (t *Table) UnmarshalCanonical(src []byte) error {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return errTable
	}
	src = src[k:]
	m := kv.NewMem()
	read := func() ([]byte, error) {
		l, k := binary.Uvarint(src)
		if k <= 0 || l > uint64(len(src)-k) {
			return nil, errTable
		}
		b := src[k : k+int(l)]
		src = src[k+int(l):]
		return b, nil
	}
	for range n {
		key, err := read()
		if err != nil {
			return err
		}
		val, err := read()
		if err != nil {
			return err
		}
		m.Set(key, val)
	}
	if len(src) != 0 || m.Len() != int(n) {
		return errTable
	}
	t.m = m
	return nil
}
