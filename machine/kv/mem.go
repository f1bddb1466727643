package kv

import (
	"bytes"
	"hash/crc32"
	"slices"
)

// memBlock is the most pairs one block of a Mem holds; blocks split when
// full, so inserts cost O(memBlock + blocks) and stay cheap at a million
// keys.
const memBlock = 256

// Mem is an in-memory keyspace: a [Source] and [Committer] that applies
// commits immediately. The simulator keeps one per entity as its durable
// keyspace, and a driver without another source uses one. Values are
// copied in; the returned slices are never modified afterwards. It is not
// safe for concurrent use.
type Mem struct {
	blocks  [][]Pair // each sorted and non-empty; blocks in key order
	n       int
	version uint64
}

// NewMem returns an empty keyspace.
func NewMem() *Mem { return &Mem{} }

// Len returns the number of keys.
func (m *Mem) Len() int { return m.n }

// Version counts the calls that changed the keyspace (Set, and Delete of a
// present key): an unchanged version means an unchanged keyspace, checked
// in constant time.
func (m *Mem) Version() uint64 { return m.version }

// block returns the index of the block that holds or would hold key.
func (m *Mem) block(key []byte) int {
	i, _ := slices.BinarySearchFunc(m.blocks, key, func(b []Pair, k []byte) int {
		return bytes.Compare(b[0].Key, k)
	})
	// Block i starts at or after key; key belongs in block i-1 unless it
	// is the first key of block i.
	if i < len(m.blocks) && bytes.Equal(m.blocks[i][0].Key, key) {
		return i
	}
	if i > 0 {
		return i - 1
	}
	return 0
}

func findPair(b []Pair, key []byte) (int, bool) {
	return slices.BinarySearchFunc(b, key, func(p Pair, k []byte) int { return bytes.Compare(p.Key, k) })
}

// Get implements [Source].
func (m *Mem) Get(key []byte) ([]byte, bool, error) {
	if len(m.blocks) == 0 {
		return nil, false, nil
	}
	b := m.blocks[m.block(key)]
	if j, ok := findPair(b, key); ok {
		return b[j].Value, true, nil
	}
	return nil, false, nil
}

// Scan implements [Source].
func (m *Mem) Scan(start, end []byte, limit int) ([]Pair, bool, error) {
	if err := CheckScan(start, end, limit); err != nil {
		return nil, false, err
	}
	var out []Pair
	if len(m.blocks) == 0 {
		return nil, false, nil
	}
	bi := m.block(start)
	j, _ := findPair(m.blocks[bi], start)
	for ; bi < len(m.blocks); bi, j = bi+1, 0 {
		for _, p := range m.blocks[bi][j:] {
			if end != nil && bytes.Compare(p.Key, end) >= 0 {
				return out, false, nil
			}
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, p)
		}
	}
	return out, false, nil
}

// Set stores a copy of key and value.
func (m *Mem) Set(key, value []byte) {
	p := Pair{Key: bytes.Clone(key), Value: append(make([]byte, 0, len(value)), value...)}
	m.version++
	if len(m.blocks) == 0 {
		m.blocks = [][]Pair{{p}}
		m.n++
		return
	}
	bi := m.block(key)
	b := m.blocks[bi]
	j, ok := findPair(b, key)
	if ok {
		b[j] = p
		return
	}
	b = slices.Insert(b, j, p)
	m.n++
	if len(b) <= memBlock {
		m.blocks[bi] = b
		return
	}
	half := len(b) / 2
	left := slices.Clone(b[:half])
	right := slices.Clone(b[half:])
	m.blocks[bi] = left
	m.blocks = slices.Insert(m.blocks, bi+1, right)
}

// Delete removes key, if present.
func (m *Mem) Delete(key []byte) {
	if len(m.blocks) == 0 {
		return
	}
	bi := m.block(key)
	b := m.blocks[bi]
	j, ok := findPair(b, key)
	if !ok {
		return
	}
	m.version++
	m.n--
	b = slices.Delete(b, j, j+1)
	if len(b) == 0 {
		m.blocks = slices.Delete(m.blocks, bi, bi+1)
		return
	}
	m.blocks[bi] = b
}

// Apply applies the writes.
func (m *Mem) Apply(ws []Write) {
	for _, w := range ws {
		if w.Delete {
			m.Delete(w.Key)
		} else {
			m.Set(w.Key, w.Value)
		}
	}
}

// Commit implements [Committer]: the writes are applied at once.
func (m *Mem) Commit(_ uint64, ws []Write) { m.Apply(ws) }

// Clone returns an independent copy of the keyspace.
func (m *Mem) Clone() *Mem {
	c := &Mem{n: m.n, version: m.version, blocks: make([][]Pair, len(m.blocks))}
	for i, b := range m.blocks {
		c.blocks[i] = slices.Clone(b)
	}
	return c
}

// All returns every pair in key order.
func (m *Mem) All() []Pair {
	out := make([]Pair, 0, m.n)
	for _, b := range m.blocks {
		out = append(out, b...)
	}
	return out
}

// Digest returns a CRC-32C of the keyspace's contents in key order: equal
// keyspaces have equal digests. The simulator compares keyspaces with it.
func (m *Mem) Digest() uint32 {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var lenBuf [8]byte
	put := func(b []byte) {
		n := len(b)
		for i := range 4 {
			lenBuf[i] = byte(n >> (8 * i))
		}
		h.Write(lenBuf[:4])
		h.Write(b)
	}
	for _, b := range m.blocks {
		for _, p := range b {
			put(p.Key)
			put(p.Value)
		}
	}
	return h.Sum32()
}
