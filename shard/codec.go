package shard

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/phasm-go/phasm/machine"
)

// encodingVersion is the first byte of an encoded Map.
const encodingVersion = 1

// The encoding of a Map, version 1 (uvarints are minimal-length, as
// encoding/binary writes them):
//
//	version   byte (1)
//	epoch     uvarint
//	shards    uvarint, within [1, MaxShards]
//	owners    uvarint k, then k node IDs, each uvarint length + bytes, in
//	          strictly ascending order, each owning at least one shard
//	per shard uvarint owner index (0: unowned, i: the i-th owner), uvarint epoch
//	checksum  4 bytes, little-endian CRC-32C (machine.Checksum) of all the above
//
// Equal maps give equal bytes: the encoding is canonical, so replicas can
// compare maps by their bytes or checksums.

// MarshalBinary returns the canonical encoding of m. A map that fails its
// structural checks (see Validate) is not encoded: the error wraps
// ErrInvalidMap.
func (m Map) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the canonical encoding of m to b (see MarshalBinary).
func (m Map) AppendBinary(b []byte) ([]byte, error) {
	if err := m.check(ErrInvalidMap); err != nil {
		return b, err
	}
	var owners []NodeID
	for _, a := range m.Shards {
		if a.Owner != "" {
			owners = append(owners, a.Owner)
		}
	}
	slices.Sort(owners)
	owners = slices.Compact(owners)
	index := make(map[NodeID]uint64, len(owners))
	for i, n := range owners {
		index[n] = uint64(i) + 1
	}

	start := len(b)
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, m.Epoch)
	b = binary.AppendUvarint(b, uint64(len(m.Shards)))
	b = binary.AppendUvarint(b, uint64(len(owners)))
	for _, n := range owners {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	for _, a := range m.Shards {
		b = binary.AppendUvarint(b, index[a.Owner]) // 0 for ""
		b = binary.AppendUvarint(b, a.Epoch)
	}
	return binary.LittleEndian.AppendUint32(b, machine.Checksum(b[start:])), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote into m. Any malformed,
// truncated, non-canonical or corrupted input, and any encoding of an
// invalid map, is an error wrapping ErrCorrupt and leaves m unchanged; it
// never panics, and it allocates no more than the input's length
// justifies. The result does not alias data.
func (m *Map) UnmarshalBinary(data []byte) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(data) < 1+4 {
		return fail("truncated: %d bytes", len(data))
	}
	body := data[:len(data)-4]
	if got, want := machine.Checksum(body), binary.LittleEndian.Uint32(data[len(data)-4:]); got != want {
		return fail("checksum mismatch")
	}
	if body[0] != encodingVersion {
		return fail("unknown version %d", body[0])
	}
	d := decoder{b: body[1:]}
	epoch := d.uvarint("epoch")
	n := d.uvarint("shard count")
	if d.err == nil && (n < 1 || n > MaxShards || n > uint64(len(d.b))/2) {
		// Each shard takes at least two bytes, so a count the remaining
		// input cannot hold is rejected before anything is allocated.
		return fail("shard count %d invalid or larger than the input", n)
	}
	k := d.uvarint("owner count")
	if d.err == nil && k > n {
		return fail("%d owners for %d shards", k, n)
	}
	if d.err != nil {
		return fail("%v", d.err)
	}
	owners := make([]NodeID, 0, min(k, uint64(len(d.b))/2))
	for i := uint64(0); i < k; i++ {
		l := d.uvarint("owner length")
		if d.err == nil && (l < 1 || l > MaxNodeIDLen || l > uint64(len(d.b))) {
			return fail("owner %d: length %d", i, l)
		}
		if d.err != nil {
			return fail("%v", d.err)
		}
		id := NodeID(d.b[:l])
		d.b = d.b[l:]
		if i > 0 && id <= owners[i-1] {
			return fail("owner %d: %q not in ascending order", i, id)
		}
		owners = append(owners, id)
	}
	used := make([]bool, k)
	out := Map{Epoch: epoch, Shards: make([]Assignment, n)}
	for s := range out.Shards {
		o := d.uvarint("shard owner")
		e := d.uvarint("shard epoch")
		if d.err != nil {
			return fail("shard %d: %v", s, d.err)
		}
		if o > k {
			return fail("shard %d: owner index %d of %d", s, o, k)
		}
		if o > 0 {
			used[o-1] = true
			out.Shards[s].Owner = owners[o-1]
		}
		out.Shards[s].Epoch = e
	}
	if len(d.b) != 0 {
		return fail("%d trailing bytes", len(d.b))
	}
	if i := slices.Index(used, false); i >= 0 {
		return fail("owner %q owns no shard", owners[i])
	}
	if err := out.check(ErrCorrupt); err != nil {
		return err
	}
	*m = out
	return nil
}

// decoder reads minimal uvarints; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = fmt.Errorf("%s: truncated", what)
	case n < 0:
		d.err = fmt.Errorf("%s: overflows 64 bits", what)
	case n != uvarintLen(v):
		d.err = fmt.Errorf("%s: non-minimal varint", what)
	}
	if d.err != nil {
		return 0
	}
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
