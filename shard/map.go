package shard

import (
	"fmt"
	"math"
	"slices"

	"github.com/phasm-go/phasm/machine"
)

// NodeID names a cluster member. It is 1 to MaxNodeIDLen bytes; the empty
// NodeID means "no owner" in an Assignment.
type NodeID string

// MaxNodeIDLen is the longest NodeID in bytes.
const MaxNodeIDLen = 255

func (n NodeID) check() string {
	switch {
	case n == "":
		return "is empty"
	case len(n) > MaxNodeIDLen:
		return "is longer than 255 bytes"
	}
	return ""
}

// Assignment is one shard's entry in a Map.
type Assignment struct {
	// Owner is the node that serves the shard, or "" while the shard has
	// never been assigned.
	Owner NodeID
	// Epoch counts the shard's owner changes: 1 after its first
	// assignment, +1 on every later move, 0 only while never owned. It is
	// the fencing token of the ownership: see the package documentation.
	Epoch uint64
}

// Map is the shard map: who owns each shard, and under which epoch. It is a
// value; the cluster replicates it and changes it only through Apply, so
// every replica that applies the same rounds holds the same map.
//
// Invariants (checked by Validate): Epoch >= 1; an owned shard has
// Epoch >= 1; no shard's Epoch exceeds the map's Epoch (each Apply with
// moves raises the map's Epoch by one and a shard's by at most one).
type Map struct {
	// Epoch is the map's version: 1 for a new map, +1 for every Apply that
	// moves at least one shard.
	Epoch uint64
	// Shards holds one assignment per shard, indexed by ID. Its length is
	// the cluster's shard count.
	Shards []Assignment
}

// Initial returns the bootstrap map for a new cluster: epoch 1, shard i
// owned by the i-th member (in NodeID order) modulo len(members), each
// owned shard at epoch 1. This is the assignment Plan would choose for an
// unowned map with the same Alive members. With no members every shard is
// unowned and the first Plan with an Alive member assigns them.
//
// An invalid shard count or an empty, oversized or duplicate member is an
// error wrapping ErrInvalidShards or ErrInvalidMembers.
func Initial(shards int, members []NodeID) (Map, error) {
	if err := CheckShards(shards); err != nil {
		return Map{}, err
	}
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	p := problems{sentinel: ErrInvalidMembers}
	for i, n := range sorted {
		if why := n.check(); why != "" {
			p.add("member %q %s", n, why)
		} else if i > 0 && sorted[i-1] == n {
			p.add("member %q appears twice", n)
		}
	}
	if err := p.err(); err != nil {
		return Map{}, err
	}
	m := Map{Epoch: 1, Shards: make([]Assignment, shards)}
	if len(sorted) > 0 {
		for i := range m.Shards {
			m.Shards[i] = Assignment{Owner: sorted[i%len(sorted)], Epoch: 1}
		}
	}
	return m, nil
}

// ShardOf returns the shard of e in this map: Of(e, len(m.Shards)).
func (m Map) ShardOf(e machine.Entity) ID { return Of(e, len(m.Shards)) }

// Owner returns the owner of shard id, or "" when the shard is unowned or
// id is out of range.
func (m Map) Owner(id ID) NodeID {
	a, _ := m.Assignment(id)
	return a.Owner
}

// Assignment returns shard id's owner and epoch; ok is false when id is out
// of range.
func (m Map) Assignment(id ID) (a Assignment, ok bool) {
	if int64(id) >= int64(len(m.Shards)) {
		return Assignment{}, false
	}
	return m.Shards[id], true
}

// ShardsOf returns the shards node owns, in ascending order (nil if none).
func (m Map) ShardsOf(node NodeID) []ID {
	if node == "" {
		return nil
	}
	var ids []ID
	for i, a := range m.Shards {
		if a.Owner == node {
			ids = append(ids, ID(i))
		}
	}
	return ids
}

// Clone returns a deep copy of m.
func (m Map) Clone() Map {
	return Map{Epoch: m.Epoch, Shards: slices.Clone(m.Shards)}
}

// Equal reports whether m and o are the same map.
func (m Map) Equal(o Map) bool {
	return m.Epoch == o.Epoch && slices.Equal(m.Shards, o.Shards)
}

// Validate checks m against the cluster's shard count and, when members is
// not nil, that every owner is one of members (Down members included: the
// planner moves their shards, but they are known). It reports every
// problem at once (up to a bound), each wrapping ErrInvalidMap; a bad
// shard count also wraps ErrInvalidShards.
func (m Map) Validate(shards int, members []NodeID) error {
	p := problems{sentinel: ErrInvalidMap}
	if err := CheckShards(shards); err != nil {
		p.wrap(err)
	} else if len(m.Shards) != shards {
		p.add("has %d shards, want %d", len(m.Shards), shards)
	}
	m.checkInto(&p)
	if members != nil {
		known := make(map[NodeID]bool, len(members))
		for _, n := range members {
			known[n] = true
		}
		for i, a := range m.Shards {
			if a.Owner != "" && !known[a.Owner] {
				p.add("shard %d: owner %q is not a member", i, a.Owner)
			}
		}
	}
	return p.err()
}

// check reports m's structural problems (everything but the expected count
// and the member set), each wrapping sentinel.
func (m Map) check(sentinel error) error {
	p := problems{sentinel: sentinel}
	if err := CheckShards(len(m.Shards)); err != nil {
		p.add("has %d shards, must be within [1, %d]", len(m.Shards), MaxShards)
	}
	m.checkInto(&p)
	return p.err()
}

func (m Map) checkInto(p *problems) {
	if m.Epoch == 0 {
		p.add("map epoch is 0; maps start at 1")
	}
	for i, a := range m.Shards {
		if a.Owner != "" {
			if why := a.Owner.check(); why != "" {
				p.add("shard %d: owner %s", i, why)
			}
			if a.Epoch == 0 {
				p.add("shard %d: owned by %q at epoch 0; owned shards start at 1", i, a.Owner)
			}
		}
		if a.Epoch > m.Epoch {
			p.add("shard %d: epoch %d exceeds map epoch %d", i, a.Epoch, m.Epoch)
		}
	}
}

// Apply returns the map after round r: every moved shard gets its new
// owner and its epoch raised by exactly one, the map's epoch is raised by
// one, and nothing else changes. A round without moves returns an equal
// copy of m with its epoch unchanged. m itself is never modified.
//
// Apply is the compare-and-set of the shard map: a round computed from a
// different map epoch is refused with ErrStalePlan, and a move whose From
// is not the shard's current owner, a shard out of range or moved twice, or
// an empty or invalid To is refused with ErrInvalidPlan (every problem
// listed). Apply does not know the members; the caller checks, if it
// wants, that each To is still Alive.
func (m Map) Apply(r Round) (Map, error) {
	if r.MapEpoch != m.Epoch {
		return Map{}, fmt.Errorf("%w: round computed from map epoch %d, map is at epoch %d", ErrStalePlan, r.MapEpoch, m.Epoch)
	}
	if err := m.check(ErrInvalidMap); err != nil {
		return Map{}, err
	}
	next := m.Clone()
	if len(r.Moves) == 0 {
		return next, nil
	}
	p := problems{sentinel: ErrInvalidPlan}
	if m.Epoch == math.MaxUint64 {
		p.add("map epoch would overflow")
	}
	moved := make([]bool, len(m.Shards))
	for _, mv := range r.Moves {
		if int64(mv.Shard) >= int64(len(m.Shards)) {
			p.add("move of shard %d: out of range [0, %d)", mv.Shard, len(m.Shards))
			continue
		}
		if moved[mv.Shard] {
			p.add("shard %d moved twice", mv.Shard)
			continue
		}
		moved[mv.Shard] = true
		cur := m.Shards[mv.Shard]
		if mv.From != cur.Owner {
			p.add("move of shard %d: from %q, but its owner is %q", mv.Shard, mv.From, cur.Owner)
		}
		if why := mv.To.check(); why != "" {
			p.add("move of shard %d: destination %s", mv.Shard, why)
		} else if mv.To == cur.Owner {
			p.add("move of shard %d: destination %q already owns it", mv.Shard, mv.To)
		}
		if cur.Epoch == math.MaxUint64 {
			p.add("move of shard %d: epoch would overflow", mv.Shard)
		}
		next.Shards[mv.Shard] = Assignment{Owner: mv.To, Epoch: cur.Epoch + 1}
	}
	if err := p.err(); err != nil {
		return Map{}, err
	}
	next.Epoch++
	return next, nil
}
