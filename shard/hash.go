package shard

import (
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// ID numbers a shard: 0 <= ID < the cluster's shard count.
type ID uint32

// Shard counts. The count is fixed for the life of a cluster: changing it
// re-homes almost every entity (see Of).
const (
	// DefaultShards is the shard count a cluster uses unless configured
	// otherwise. 256 shards spread evenly over up to a few dozen nodes and
	// keep the shard map small.
	DefaultShards = 256
	// MaxShards is the largest shard count; IDs fit in 16 bits.
	MaxShards = 1 << 16
)

// CheckShards reports whether n is a valid shard count: within
// [1, MaxShards]. The error wraps ErrInvalidShards.
func CheckShards(n int) error {
	if n < 1 || n > MaxShards {
		return fmt.Errorf("%w: %d, must be within [1, %d]", ErrInvalidShards, n, MaxShards)
	}
	return nil
}

// Of returns the shard of entity e among shards shards.
//
// THIS IS A PERSISTED FORMAT. Journals, snapshots and the per-shard index
// are found through it; changing a single bit of this function (or of key
// or jump below) re-homes every entity and orphans its stored history. The
// golden tests in hash_test.go and testdata/golden.txt pin it; if one of
// them fails, the change is wrong, not the test.
//
// The function is:
//
//  1. key = fmix64(FNV-1a-64(le64(len(kind)) ‖ kind ‖ le64(len(id)) ‖ id)),
//     where le64 is an 8-byte little-endian length: the framing is
//     unambiguous, so ("ab", "c") and ("a", "bc") hash apart; and fmix64 is
//     MurmurHash3's 64-bit finalizer, which spreads FNV's weak high bits.
//  2. shard = jump(key, shards), Lamping and Veach's jump consistent hash
//     ("A Fast, Minimal Memory, Consistent Hash Algorithm", 2014) in an
//     integer-only form (no floating point, so every platform agrees). It is
//     uniform without modulo bias, and growing the count from n to n+1
//     would move only about 1/(n+1) of the entities, which keeps a future
//     shard split cheap.
//
// Strings are hashed as bytes: no Unicode normalization. Of does not
// allocate. A shards outside [1, MaxShards] is a caller bug that Of does not
// panic on: it returns 0. Validate the count once with CheckShards.
func Of(e machine.Entity, shards int) ID {
	return OfKey(Key(e), shards)
}

// Key returns step 1 of Of, the entity's stable 64-bit hash, for a caller
// that also wants a hash of the entity for its own use (it is well mixed:
// any of its bits will do) and then finds the shard with OfKey.
func Key(e machine.Entity) uint64 { return key(e) }

// OfKey returns step 2 of Of: the shard of the entity whose Key is k.
// OfKey(Key(e), shards) == Of(e, shards).
func OfKey(k uint64, shards int) ID {
	if shards < 1 || shards > MaxShards {
		return 0
	}
	return jump(k, shards)
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// key is step 1 of Of: the stable 64-bit hash of an entity.
func key(e machine.Entity) uint64 {
	h := uint64(fnvOffset64)
	h = fnvLen(h, len(e.Kind))
	h = fnvString(h, e.Kind)
	h = fnvLen(h, len(e.ID))
	h = fnvString(h, e.ID)
	return fmix64(h)
}

func fnvLen(h uint64, n int) uint64 {
	v := uint64(n)
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime64
		v >>= 8
	}
	return h
}

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// fmix64 is MurmurHash3's 64-bit finalizer.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// jump is step 2 of Of: jump consistent hash with the reference's
// floating-point step j = (b+1) * (2^31 / ((key>>33)+1)) replaced by the
// integer floor((b+1) * 2^31 / ((key>>33)+1)). With n <= MaxShards the
// product stays below 2^48, so nothing overflows.
func jump(key uint64, n int) ID {
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = ((b + 1) << 31) / int64((key>>33)+1)
	}
	return ID(b)
}
