package shard

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInitial(t *testing.T) {
	m, err := Initial(8, []NodeID{"c", "a", "b"})
	require.NoError(t, err)
	require.Equal(t, uint64(1), m.Epoch)
	require.Equal(t, []ID{0, 3, 6}, m.ShardsOf("a"))
	require.Equal(t, []ID{1, 4, 7}, m.ShardsOf("b"))
	require.Equal(t, []ID{2, 5}, m.ShardsOf("c"))
	for _, a := range m.Shards {
		require.Equal(t, uint64(1), a.Epoch)
	}
	require.NoError(t, m.Validate(8, []NodeID{"a", "b", "c"}))

	empty, err := Initial(4, nil)
	require.NoError(t, err)
	require.Equal(t, Map{Epoch: 1, Shards: make([]Assignment, 4)}, empty)
	require.NoError(t, empty.Validate(4, []NodeID{}))

	_, err = Initial(0, nil)
	require.ErrorIs(t, err, ErrInvalidShards)
	_, err = Initial(4, []NodeID{"a", "", "a", NodeID(strings.Repeat("x", 256))})
	require.ErrorIs(t, err, ErrInvalidMembers)
	require.Contains(t, err.Error(), "empty")
	require.Contains(t, err.Error(), "twice")
	require.Contains(t, err.Error(), "longer")
}

// TestInitialMatchesPlan: bootstrapping with Initial and planning an
// unowned map choose the same owners.
func TestInitialMatchesPlan(t *testing.T) {
	nodes := []NodeID{"n3", "n1", "n2"}
	m, err := Initial(100, nodes)
	require.NoError(t, err)
	empty, err := Initial(100, nil)
	require.NoError(t, err)
	r, err := Plan(empty, []Member{{"n2", Alive}, {"n3", Alive}, {"n1", Alive}}, PlanOptions{})
	require.NoError(t, err)
	planned, err := empty.Apply(r)
	require.NoError(t, err)
	for s := range m.Shards {
		require.Equal(t, m.Shards[s].Owner, planned.Shards[s].Owner, "shard %d", s)
	}
}

func TestMapAccessors(t *testing.T) {
	m := Map{Epoch: 3, Shards: []Assignment{{"a", 1}, {"", 0}, {"b", 3}, {"a", 2}}}
	require.Equal(t, NodeID("a"), m.Owner(0))
	require.Equal(t, NodeID(""), m.Owner(1))
	require.Equal(t, NodeID(""), m.Owner(4), "out of range is unowned")
	a, ok := m.Assignment(2)
	require.True(t, ok)
	require.Equal(t, Assignment{"b", 3}, a)
	_, ok = m.Assignment(99)
	require.False(t, ok)
	require.Equal(t, []ID{0, 3}, m.ShardsOf("a"))
	require.Nil(t, m.ShardsOf("zz"))
	require.Nil(t, m.ShardsOf(""), "unowned shards belong to nobody")

	c := m.Clone()
	require.True(t, c.Equal(m))
	c.Shards[0].Owner = "z"
	require.Equal(t, NodeID("a"), m.Owner(0), "Clone is deep")
	require.False(t, c.Equal(m))
	require.Equal(t, Of(mustEntity("k", "i"), 4), m.ShardOf(mustEntity("k", "i")))
}

func TestValidateListsEveryProblem(t *testing.T) {
	m := Map{Epoch: 0, Shards: []Assignment{
		{"a", 0}, // owned at epoch 0
		{"", 5},  // epoch above map epoch
		{"ghost", 1},
		{NodeID(strings.Repeat("x", 300)), 1},
	}}
	err := m.Validate(8, []NodeID{"a"})
	require.ErrorIs(t, err, ErrInvalidMap)
	msg := err.Error()
	for _, want := range []string{
		"has 4 shards, want 8",
		"map epoch is 0",
		`shard 0: owned by "a" at epoch 0`,
		"shard 1: epoch 5 exceeds map epoch 0",
		`shard 2: owner "ghost" is not a member`,
		"shard 3: owner is longer than 255 bytes",
	} {
		require.Contains(t, msg, want)
	}
	for _, line := range strings.Split(msg, "\n") {
		require.True(t, strings.HasPrefix(line, "shard: invalid map: "), line)
	}

	err = m.Validate(0, nil)
	require.ErrorIs(t, err, ErrInvalidMap)
	require.ErrorIs(t, err, ErrInvalidShards)
	require.NotContains(t, err.Error(), "ghost", "nil members skips the owner check")

	good, err := Initial(4, []NodeID{"a"})
	require.NoError(t, err)
	require.NoError(t, good.Validate(4, nil))
	require.ErrorIs(t, good.Validate(4, []NodeID{}), ErrInvalidMap, "an empty member list knows nobody")
}

func TestValidateBoundsItsError(t *testing.T) {
	m := Map{Epoch: 1, Shards: make([]Assignment, 1000)}
	for i := range m.Shards {
		m.Shards[i] = Assignment{"a", 0}
	}
	err := m.Validate(1000, nil)
	require.ErrorIs(t, err, ErrInvalidMap)
	require.Contains(t, err.Error(), "and 968 more problems")
	require.Len(t, strings.Split(err.Error(), "\n"), maxProblems+1)
}

func TestApply(t *testing.T) {
	m := Map{Epoch: 5, Shards: []Assignment{{"a", 5}, {"b", 2}, {"", 0}, {"a", 1}}}
	before := m.Clone()
	next, err := m.Apply(Round{MapEpoch: 5, Moves: []Move{
		{Shard: 0, From: "a", To: "c", Reason: Rebalance},
		{Shard: 2, From: "", To: "b", Reason: Unowned},
	}})
	require.NoError(t, err)
	require.Equal(t, Map{Epoch: 6, Shards: []Assignment{{"c", 6}, {"b", 2}, {"b", 1}, {"a", 1}}}, next)
	require.True(t, m.Equal(before), "Apply does not modify its receiver")

	same, err := m.Apply(Round{MapEpoch: 5})
	require.NoError(t, err)
	require.True(t, same.Equal(m), "no moves, no new epoch")
	same.Shards[0].Owner = "x"
	require.Equal(t, NodeID("a"), m.Owner(0), "the result is a copy")

	_, err = m.Apply(Round{MapEpoch: 4, Moves: []Move{{Shard: 0, From: "a", To: "c"}}})
	require.ErrorIs(t, err, ErrStalePlan)
	_, err = m.Apply(Round{MapEpoch: 4})
	require.ErrorIs(t, err, ErrStalePlan, "even an empty round must match")

	_, err = m.Apply(Round{MapEpoch: 5, Moves: []Move{
		{Shard: 9, From: "a", To: "c"},
		{Shard: 1, From: "a", To: "c"},
		{Shard: 3, From: "a", To: ""},
		{Shard: 0, From: "a", To: "a"},
		{Shard: 0, From: "a", To: "c"},
	}})
	require.ErrorIs(t, err, ErrInvalidPlan)
	for _, want := range []string{"shard 9: out of range", `shard 1: from "a", but its owner is "b"`, "shard 3: destination is empty", `destination "a" already owns it`, "shard 0 moved twice"} {
		require.Contains(t, err.Error(), want)
	}

	_, err = Map{Epoch: 1, Shards: []Assignment{{"a", 0}}}.Apply(Round{MapEpoch: 1})
	require.ErrorIs(t, err, ErrInvalidMap)
}

func TestApplyEpochOverflow(t *testing.T) {
	const top = ^uint64(0)
	m := Map{Epoch: top, Shards: []Assignment{{"a", top}}}
	_, err := m.Apply(Round{MapEpoch: top, Moves: []Move{{Shard: 0, From: "a", To: "b"}}})
	require.ErrorIs(t, err, ErrInvalidPlan)
	require.True(t, errors.Is(err, ErrInvalidPlan))
	require.Contains(t, err.Error(), "overflow")
}
