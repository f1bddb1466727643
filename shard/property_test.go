package shard

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed for the property tests (0: derive one from the clock and print it)")
	casesFlag = flag.Int("cases", 300, "random cases per property test")
)

// newRand returns the property tests' generator and logs its seed, so a
// failure can be re-run with -seed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (re-run with: go test ./shard -run '%s' -seed %d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

var allStatuses = []Status{Alive, Joining, Restarting, Suspect, Leaving, Down}

// scenario draws a random map and member list: some owners are members,
// some are gone, some shards are unowned; epochs are random but valid.
func scenario(rng *rand.Rand) (Map, []Member, PlanOptions) {
	shards := 1 + rng.IntN(600)
	if rng.IntN(10) == 0 {
		shards = 1 + rng.IntN(4)
	}
	n := rng.IntN(12)
	var members []Member
	var pool []NodeID
	for i := range n {
		id := NodeID(fmt.Sprintf("node-%02d", i))
		st := Alive
		if rng.IntN(3) == 0 {
			st = allStatuses[rng.IntN(len(allStatuses))]
		}
		members = append(members, Member{id, st})
		pool = append(pool, id)
	}
	for i := range rng.IntN(3) {
		pool = append(pool, NodeID(fmt.Sprintf("gone-%d", i)))
	}
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	m := Map{Epoch: 1 + rng.Uint64N(1000), Shards: make([]Assignment, shards)}
	skew := rng.IntN(4) // 0: uniform owners; more: crowd onto few owners
	for s := range m.Shards {
		if len(pool) == 0 || rng.IntN(10) == 0 {
			m.Shards[s].Epoch = rng.Uint64N(m.Epoch + 1)
			continue
		}
		k := rng.IntN(len(pool))
		for range skew {
			k = min(k, rng.IntN(len(pool)))
		}
		m.Shards[s] = Assignment{Owner: pool[k], Epoch: 1 + rng.Uint64N(m.Epoch)}
	}
	return m, members, PlanOptions{MaxMovesPerRound: rng.IntN(20)}
}

// TestPlanProperties plans and applies round after round until a round has
// no moves, checking each round and the final map.
func TestPlanProperties(t *testing.T) {
	rng := newRand(t)
	for c := range *casesFlag {
		m, members, opts := scenario(rng)
		status := map[NodeID]Status{}
		hold := false
		var alive []NodeID
		for _, mb := range members {
			status[mb.ID] = mb.Status
			hold = hold || mb.Status.holdsRebalancing()
			if mb.Status == Alive {
				alive = append(alive, mb.ID)
			}
		}
		bound := opts.withDefaults().MaxMovesPerRound
		failf := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d (shards %d, members %v, bound %d): %s", c, len(m.Shards), members, bound, fmt.Sprintf(format, args...))
		}

		cur := m
		rounds := 0
		var movesPer, pendingPer []int
		leaving := false
		for _, mb := range members {
			leaving = leaving || mb.Status == Leaving
		}
		for ; ; rounds++ {
			if rounds > len(m.Shards)+2 {
				failf("no convergence after %d rounds", rounds)
			}
			r, err := Plan(cur, members, opts)
			require.NoError(t, err)

			// Determinism: same inputs, and the members in another order.
			shuffled := slices.Clone(members)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again, err := Plan(cur.Clone(), shuffled, opts)
			require.NoError(t, err)
			if !equalRounds(r, again) {
				failf("round %d: planning twice differs:\n%+v\n%+v", rounds, r, again)
			}

			if r.NoLiveMembers != (len(alive) == 0) {
				failf("NoLiveMembers %v with %d alive", r.NoLiveMembers, len(alive))
			}
			discretionary := 0
			for i, mv := range r.Moves {
				if i > 0 && r.Moves[i-1].Shard >= mv.Shard {
					failf("moves not in strict shard order: %v", r.Moves)
				}
				if status[mv.To] != Alive {
					failf("move %+v to a member that is not Alive", mv)
				}
				if mv.From != cur.Owner(mv.Shard) {
					failf("move %+v from a non-owner", mv)
				}
				from, known := status[mv.From]
				switch mv.Reason {
				case Unowned:
					if mv.From != "" {
						failf("unowned move of an owned shard: %+v", mv)
					}
				case OwnerDown:
					if known && from != Down {
						failf("owner-down move of a live owner's shard: %+v", mv)
					}
				case Drain:
					if from != Leaving {
						failf("drain from a member that is not Leaving: %+v", mv)
					}
				case Rebalance:
					if from != Alive {
						failf("rebalancing from a member that is not Alive: %+v", mv)
					}
					if hold {
						failf("rebalancing while a member is joining or restarting: %+v", mv)
					}
				default:
					failf("move without a reason: %+v", mv)
				}
				if mv.Reason.Discretionary() {
					discretionary++
				} else if rounds > 0 {
					failf("round %d moved an orphan; orphans all move in the first round", rounds)
				}
			}
			if discretionary > bound {
				failf("%d discretionary moves, bound %d", discretionary, bound)
			}

			movesPer, pendingPer = append(movesPer, len(r.Moves)), append(pendingPer, r.Pending)

			next, err := cur.Apply(r)
			require.NoError(t, err)
			checkEpochs(t, cur, next, r)
			if len(r.Moves) == 0 {
				checkFinal(t, failf, next, r, status, alive, hold)
				break
			}
			cur = next
		}
		// Pending is exact about what later rounds do; with drains it may
		// overcount, as drained shards land where they also help balance.
		for k := range pendingPer {
			later := 0
			for _, n := range movesPer[k+1:] {
				later += n
			}
			if later > pendingPer[k] || (!leaving && len(alive) > 0 && !hold && later != pendingPer[k]) {
				failf("round %d said %d pending, later rounds moved %d", k, pendingPer[k], later)
			}
		}
	}
}

// equalRounds compares rounds, treating nil and empty move lists alike.
func equalRounds(a, b Round) bool {
	return a.MapEpoch == b.MapEpoch && slices.Equal(a.Moves, b.Moves) && a.Pending == b.Pending &&
		a.NoLiveMembers == b.NoLiveMembers && a.RebalanceHeld == b.RebalanceHeld
}

// checkEpochs: exactly the moved shards' epochs rise, by one, and the map's
// epoch rises by one iff something moved.
func checkEpochs(t *testing.T, cur, next Map, r Round) {
	t.Helper()
	moved := map[ID]bool{}
	for _, mv := range r.Moves {
		moved[mv.Shard] = true
	}
	wantEpoch := cur.Epoch
	if len(r.Moves) > 0 {
		wantEpoch++
	}
	require.Equal(t, wantEpoch, next.Epoch)
	for s := range cur.Shards {
		a, b := cur.Shards[s], next.Shards[s]
		if moved[ID(s)] {
			require.Equal(t, a.Epoch+1, b.Epoch, "shard %d moved", s)
			require.NotEqual(t, a.Owner, b.Owner)
		} else {
			require.Equal(t, a, b, "shard %d did not move", s)
		}
	}
	require.NoError(t, next.Validate(len(cur.Shards), nil))
}

func checkFinal(t *testing.T, failf func(string, ...any), m Map, last Round, status map[NodeID]Status, alive []NodeID, hold bool) {
	t.Helper()
	if len(alive) == 0 {
		if !last.NoLiveMembers {
			failf("no Alive member but NoLiveMembers is false")
		}
		return
	}
	load := map[NodeID]int{}
	for s, a := range m.Shards {
		st, ok := status[a.Owner]
		if a.Owner == "" || !ok || st == Down || st == Leaving {
			failf("settled, but shard %d is owned by %q (%v)", s, a.Owner, st)
		}
		if st == Alive {
			load[a.Owner]++
		}
	}
	lo, hi := len(m.Shards), 0
	for _, n := range alive {
		lo, hi = min(lo, load[n]), max(hi, load[n])
	}
	if hold {
		if last.RebalanceHeld != (hi-lo > 1) {
			failf("RebalanceHeld %v with loads %v", last.RebalanceHeld, load)
		}
		return
	}
	if hi-lo > 1 {
		failf("settled out of balance: %v", load)
	}
	if !last.Settled() {
		failf("last round not settled: %+v", last)
	}
}

// TestPlanMinimalMovementOnJoin: adding one Alive member to N balanced ones
// moves about shards/(N+1) shards in total, all to the newcomer, and
// nothing else.
func TestPlanMinimalMovementOnJoin(t *testing.T) {
	rng := newRand(t)
	for range *casesFlag {
		shards := 1 + rng.IntN(2000)
		n := 1 + rng.IntN(20)
		var ids []NodeID
		for i := range n + 1 {
			ids = append(ids, NodeID(fmt.Sprintf("n%03d", i)))
		}
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		newcomer := ids[n]
		m, err := Initial(shards, ids[:n])
		require.NoError(t, err)
		members := alive(ids...)
		opts := PlanOptions{MaxMovesPerRound: 1 + rng.IntN(32)}

		// While it is still Joining, nothing moves.
		joining := slices.Clone(members)
		joining[n].Status = Joining
		r, err := Plan(m, joining, opts)
		require.NoError(t, err)
		require.Empty(t, r.Moves)

		total := 0
		for rounds := 0; ; rounds++ {
			require.Less(t, rounds, shards+2, "no convergence")
			r, err := Plan(m, members, opts)
			require.NoError(t, err)
			if len(r.Moves) == 0 {
				require.True(t, r.Settled())
				break
			}
			require.LessOrEqual(t, len(r.Moves), opts.MaxMovesPerRound)
			for _, mv := range r.Moves {
				require.Equal(t, newcomer, mv.To, "every move goes to the newcomer")
				require.Equal(t, Rebalance, mv.Reason)
			}
			total += len(r.Moves)
			m, err = m.Apply(r)
			require.NoError(t, err)
		}
		ideal := float64(shards) / float64(n+1)
		require.InDelta(t, ideal, total, 1, "shards %d, %d+1 members: %d moves", shards, n, total)
		require.Len(t, m.ShardsOf(newcomer), total)
	}
}

// TestPlanMinimalMovementOnFailure: when one of N balanced members goes
// Down, exactly its shards move, all in one round, and the result is
// balanced.
func TestPlanMinimalMovementOnFailure(t *testing.T) {
	rng := newRand(t)
	for range *casesFlag {
		shards := 1 + rng.IntN(2000)
		n := 2 + rng.IntN(20)
		var ids []NodeID
		for i := range n {
			ids = append(ids, NodeID(fmt.Sprintf("n%03d", i)))
		}
		m, err := Initial(shards, ids)
		require.NoError(t, err)
		members := alive(ids...)
		dead := rng.IntN(n)
		members[dead].Status = Down
		owned := m.ShardsOf(ids[dead])

		r, err := Plan(m, members, PlanOptions{MaxMovesPerRound: 1})
		require.NoError(t, err)
		require.Len(t, r.Moves, len(owned))
		for _, mv := range r.Moves {
			require.Equal(t, ids[dead], mv.From)
			require.Equal(t, OwnerDown, mv.Reason)
		}
		m, err = m.Apply(r)
		require.NoError(t, err)
		r, err = Plan(m, members, PlanOptions{MaxMovesPerRound: 1})
		require.NoError(t, err)
		require.True(t, r.Settled(), "already balanced: %+v", r)
	}
}
