package shard

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mapOf builds a map from owners ("" unowned), every owned shard at epoch 1.
func mapOf(owners ...NodeID) Map {
	m := Map{Epoch: 1, Shards: make([]Assignment, len(owners))}
	for i, o := range owners {
		if o != "" {
			m.Shards[i] = Assignment{Owner: o, Epoch: 1}
		}
	}
	return m
}

// repeat returns n copies of node, for building maps.
func repeat(node NodeID, n int) []NodeID {
	out := make([]NodeID, n)
	for i := range out {
		out[i] = node
	}
	return out
}

func cat(parts ...[]NodeID) []NodeID {
	var out []NodeID
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func alive(ids ...NodeID) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = Member{id, Alive}
	}
	return out
}

func counts(moves []Move) map[Reason]int {
	c := map[Reason]int{}
	for _, m := range moves {
		c[m.Reason]++
	}
	return c
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m       Map
		members []Member
		opts    PlanOptions
		moves   []Move // checked when not nil
		reasons map[Reason]int
		pending int
		noLive  bool
		held    bool
	}{
		{
			name:    "unowned shards go round robin in node order, unbounded",
			m:       mapOf(repeat("", 40)...),
			members: []Member{{"b", Alive}, {"a", Alive}},
			opts:    PlanOptions{MaxMovesPerRound: 1},
			reasons: map[Reason]int{Unowned: 40},
		},
		{
			name:    "ties go to the lowest node ID",
			m:       mapOf("", ""),
			members: []Member{{"b", Alive}, {"a", Alive}},
			moves:   []Move{{0, "", "a", Unowned}, {1, "", "b", Unowned}},
		},
		{
			name:    "a Down member's shards move at once, beyond the bound, to the least loaded",
			m:       mapOf(cat(repeat("a", 3), repeat("b", 3), repeat("c", 3), repeat("d", 3))...),
			members: []Member{{"a", Alive}, {"b", Alive}, {"c", Alive}, {"d", Down}},
			opts:    PlanOptions{MaxMovesPerRound: 1},
			moves:   []Move{{9, "d", "a", OwnerDown}, {10, "d", "b", OwnerDown}, {11, "d", "c", OwnerDown}},
		},
		{
			name:    "a removed member counts as Down",
			m:       mapOf("a", "gone", "a", "gone"),
			members: alive("a", "b"),
			moves:   []Move{{1, "gone", "b", OwnerDown}, {3, "gone", "b", OwnerDown}},
		},
		{
			name:    "orphans move even while a member is Joining; rebalancing waits",
			m:       mapOf("a", "a", "a", "a", "d", "d"),
			members: []Member{{"a", Alive}, {"b", Alive}, {"d", Down}, {"j", Joining}},
			moves:   []Move{{4, "d", "b", OwnerDown}, {5, "d", "b", OwnerDown}},
			pending: 1, held: true,
		},
		{
			name:    "a Leaving member is drained within the bound",
			m:       mapOf(cat(repeat("l", 10), repeat("a", 5))...),
			members: []Member{{"a", Alive}, {"b", Alive}, {"l", Leaving}},
			opts:    PlanOptions{MaxMovesPerRound: 4},
			moves:   []Move{{0, "l", "b", Drain}, {1, "l", "b", Drain}, {2, "l", "b", Drain}, {3, "l", "b", Drain}},
			pending: 6,
		},
		{
			name:    "drains go on while a member is Restarting",
			m:       mapOf("l", "a", "r"),
			members: []Member{{"a", Alive}, {"l", Leaving}, {"r", Restarting}},
			moves:   []Move{{0, "l", "a", Drain}},
		},
		{
			name:    "drains come before rebalancing and share its budget",
			m:       mapOf(cat(repeat("a", 10), repeat("l", 2))...),
			members: []Member{{"a", Alive}, {"b", Alive}, {"l", Leaving}},
			opts:    PlanOptions{MaxMovesPerRound: 3},
			moves:   []Move{{0, "a", "b", Rebalance}, {10, "l", "b", Drain}, {11, "l", "b", Drain}},
			pending: 3, // a 9, b 3: three more to reach 6/6
		},
		{
			name:    "a new Alive member is filled from the most loaded, within the bound",
			m:       mapOf(cat(repeat("a", 6), repeat("b", 4))...),
			members: alive("a", "b", "c"),
			opts:    PlanOptions{MaxMovesPerRound: 2},
			moves:   []Move{{0, "a", "c", Rebalance}, {1, "a", "c", Rebalance}},
			pending: 1, // a 4, b 4, c 2: one more
		},
		{
			name:    "the default bound is 16",
			m:       mapOf(repeat("a", 100)...),
			members: alive("a", "b"),
			reasons: map[Reason]int{Rebalance: DefaultMaxMovesPerRound},
			pending: 50 - DefaultMaxMovesPerRound,
		},
		{
			name:    "counts differing by one are balanced: nothing moves",
			m:       mapOf("a", "a", "b", "c", "c"),
			members: alive("a", "b", "c"),
			moves:   []Move{},
		},
		{
			name:    "no rebalancing while a member is Joining",
			m:       mapOf(repeat("a", 10)...),
			members: []Member{{"a", Alive}, {"b", Alive}, {"j", Joining}},
			moves:   []Move{},
			pending: 5, held: true,
		},
		{
			name:    "no rebalancing during a rolling restart; the restarting member keeps its shards",
			m:       mapOf("a", "a", "a", "a", "r", "r"),
			members: []Member{{"a", Alive}, {"b", Alive}, {"r", Restarting}},
			moves:   []Move{},
			pending: 2, held: true,
		},
		{
			name:    "a Suspect member keeps its shards and holds rebalancing",
			m:       mapOf("a", "a", "a", "s"),
			members: []Member{{"a", Alive}, {"b", Alive}, {"s", Suspect}},
			moves:   []Move{},
			pending: 1, held: true,
		},
		{
			name:    "held, but nothing to balance: not reported as held",
			m:       mapOf("a", "b", "r"),
			members: []Member{{"a", Alive}, {"b", Alive}, {"r", Restarting}},
			moves:   []Move{},
		},
		{
			name:    "no Alive member: nothing moves and the round says so",
			m:       mapOf("d", "", "l", "r"),
			members: []Member{{"d", Down}, {"l", Leaving}, {"r", Restarting}},
			moves:   []Move{},
			pending: 3, noLive: true,
		},
		{
			name:    "no members at all",
			m:       mapOf("", ""),
			members: nil,
			moves:   []Move{},
			pending: 2, noLive: true,
		},
		{
			name:    "one Alive member takes everything",
			m:       mapOf("", "d", "l", "a"),
			members: []Member{{"a", Alive}, {"d", Down}, {"l", Leaving}},
			moves:   []Move{{0, "", "a", Unowned}, {1, "d", "a", OwnerDown}, {2, "l", "a", Drain}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Plan(tc.m, tc.members, tc.opts)
			require.NoError(t, err)
			require.Equal(t, tc.m.Epoch, r.MapEpoch)
			if tc.moves != nil {
				if len(tc.moves) == 0 {
					require.Empty(t, r.Moves)
				} else {
					require.Equal(t, tc.moves, r.Moves)
				}
			}
			if tc.reasons != nil {
				require.Equal(t, tc.reasons, counts(r.Moves))
			}
			require.Equal(t, tc.pending, r.Pending, "pending")
			require.Equal(t, tc.noLive, r.NoLiveMembers, "no live members")
			require.Equal(t, tc.held, r.RebalanceHeld, "held")
			require.Equal(t, len(r.Moves) == 0 && tc.pending == 0, r.Settled())

			again, err := Plan(tc.m.Clone(), append([]Member(nil), tc.members...), tc.opts)
			require.NoError(t, err)
			require.Equal(t, r, again, "deterministic")
			if len(r.Moves) > 0 {
				_, err := tc.m.Apply(r)
				require.NoError(t, err, "a planned round applies")
			}
		})
	}
}

func TestPlanRoundRobinOrder(t *testing.T) {
	r, err := Plan(mapOf(repeat("", 7)...), []Member{{"c", Alive}, {"a", Alive}, {"b", Alive}}, PlanOptions{})
	require.NoError(t, err)
	var to []NodeID
	for _, m := range r.Moves {
		to = append(to, m.To)
	}
	require.Equal(t, []NodeID{"a", "b", "c", "a", "b", "c", "a"}, to)
}

func TestPlanMemberOrderDoesNotMatter(t *testing.T) {
	m := mapOf(cat(repeat("a", 9), repeat("d", 5), repeat("l", 4), repeat("", 3))...)
	members := []Member{{"a", Alive}, {"b", Alive}, {"c", Alive}, {"d", Down}, {"l", Leaving}}
	want, err := Plan(m, members, PlanOptions{MaxMovesPerRound: 5})
	require.NoError(t, err)
	reversed := []Member{members[4], members[3], members[2], members[1], members[0]}
	got, err := Plan(m, reversed, PlanOptions{MaxMovesPerRound: 5})
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestPlanInvalidInput(t *testing.T) {
	bad := Map{Epoch: 0, Shards: []Assignment{{"a", 0}}}
	_, err := Plan(bad, []Member{{"", Alive}, {"a", 0}, {"a", Down}, {"b", Status(99)}}, PlanOptions{MaxMovesPerRound: -1})
	require.ErrorIs(t, err, ErrInvalidOptions)
	require.ErrorIs(t, err, ErrInvalidMembers)
	require.ErrorIs(t, err, ErrInvalidMap)
	for _, want := range []string{
		"MaxMovesPerRound is -1",
		"member 0: ID is empty",
		`member 1 ("a"): invalid status 0`,
		`member 2: ID "a" appears twice`,
		`member 3 ("b"): invalid status 99`,
		"map epoch is 0",
		`shard 0: owned by "a" at epoch 0`,
	} {
		require.Contains(t, err.Error(), want)
	}

	_, err = Plan(Map{Epoch: 1}, nil, PlanOptions{})
	require.ErrorIs(t, err, ErrInvalidMap, "a map without shards")
	require.NotPanics(t, func() { _, _ = Plan(Map{}, nil, PlanOptions{}) })
}

func TestOptionsValidate(t *testing.T) {
	require.NoError(t, PlanOptions{}.Validate())
	require.NoError(t, PlanOptions{MaxMovesPerRound: 1}.Validate())
	err := PlanOptions{MaxMovesPerRound: -3}.Validate()
	require.ErrorIs(t, err, ErrInvalidOptions)
	require.True(t, strings.HasPrefix(err.Error(), "shard: invalid plan options: "))
}

func TestStrings(t *testing.T) {
	require.Equal(t, "alive", Alive.String())
	require.Equal(t, "down", Down.String())
	require.Equal(t, "Status(0)", Status(0).String())
	require.Equal(t, "Status(42)", Status(42).String())
	require.Equal(t, "owner-down", OwnerDown.String())
	require.Equal(t, "Reason(0)", Reason(0).String())
	require.True(t, Drain.Discretionary())
	require.True(t, Rebalance.Discretionary())
	require.False(t, Unowned.Discretionary())
	require.False(t, OwnerDown.Discretionary())
}

func TestMovesToBalance(t *testing.T) {
	for _, tc := range []struct {
		load []int
		want int
	}{
		{nil, 0}, {[]int{5}, 0}, {[]int{3, 3, 0}, 2}, {[]int{3, 3, 1}, 1},
		{[]int{2, 2, 0}, 1}, {[]int{4, 0}, 2}, {[]int{1, 2, 1}, 0}, {[]int{10, 0, 0, 0}, 7},
	} {
		require.Equal(t, tc.want, movesToBalance(tc.load), "%v", tc.load)
	}
}
