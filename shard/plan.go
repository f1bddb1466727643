package shard

import (
	"slices"
	"strconv"
)

// Status is a member's state as the planner sees it. The zero Status is
// invalid, so a Member built without one is caught by validation.
type Status uint8

// Member statuses. Only Alive members receive shards; every status but
// Down keeps the shards it has (Leaving only until they are handed off).
const (
	// Alive: serving. Receives shards; its load is what rebalancing evens.
	Alive Status = iota + 1
	// Joining: admitted but not yet serving. Receives nothing, and while
	// any member is Joining no discretionary rebalancing happens, so a
	// wave of joins settles before shards start to flow to the newcomers.
	Joining
	// Restarting: going through a planned restart (a rolling upgrade). It
	// keeps its shards and receives none, and rebalancing is held, so a
	// rolling restart moves nothing.
	Restarting
	// Suspect: the failure detector has missed it but not yet declared it
	// Down. Treated like Restarting: it keeps its shards, receives none,
	// and holds rebalancing until it is Alive again or Down.
	Suspect
	// Leaving: leaving gracefully. Keeps serving, receives nothing, and its
	// shards are handed off to Alive members, within the per-round bound.
	Leaving
	// Down: dead. Its shards move to Alive members in the next round,
	// whatever the bound and whatever else is going on.
	Down
)

var statusNames = [...]string{Alive: "alive", Joining: "joining", Restarting: "restarting", Suspect: "suspect", Leaving: "leaving", Down: "down"}

// String returns the status in lower case, or "Status(n)" for an invalid one.
func (s Status) String() string {
	if s.valid() {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

func (s Status) valid() bool { return s >= Alive && s <= Down }

// holdsRebalancing reports whether a member in status s stops discretionary
// rebalancing: the membership is in flux and will change again soon.
func (s Status) holdsRebalancing() bool { return s == Joining || s == Restarting || s == Suspect }

// Member is one cluster member as the planner sees it. A shard owner that
// is not in the member list is treated as Down (a removed member).
type Member struct {
	ID     NodeID
	Status Status
}

// ValidateMembers reports every empty, oversized or duplicate ID and every
// invalid status in members, each wrapping ErrInvalidMembers.
func ValidateMembers(members []Member) error {
	p := problems{sentinel: ErrInvalidMembers}
	seen := make(map[NodeID]bool, len(members))
	for i, m := range members {
		if why := m.ID.check(); why != "" {
			p.add("member %d: ID %s", i, why)
		} else if seen[m.ID] {
			p.add("member %d: ID %q appears twice", i, m.ID)
		}
		seen[m.ID] = true
		if !m.Status.valid() {
			p.add("member %d (%q): invalid status %d", i, m.ID, uint8(m.Status))
		}
	}
	return p.err()
}

// DefaultMaxMovesPerRound is the per-round bound on discretionary moves
// when PlanOptions leaves it at zero.
const DefaultMaxMovesPerRound = 16

// PlanOptions configures Plan. The zero value takes the defaults.
type PlanOptions struct {
	// MaxMovesPerRound bounds the discretionary moves (drains of Leaving
	// members and rebalancing) in one round; 0 means
	// DefaultMaxMovesPerRound. Moves of unowned shards and of shards whose
	// owner is Down or gone are not counted and never bounded: an orphaned
	// shard is unavailable until it moves, and there are at most as many
	// as there are shards.
	MaxMovesPerRound int
}

// Validate reports every problem in o, each wrapping ErrInvalidOptions.
func (o PlanOptions) Validate() error {
	p := problems{sentinel: ErrInvalidOptions}
	if o.MaxMovesPerRound < 0 {
		p.add("MaxMovesPerRound is %d, must not be negative", o.MaxMovesPerRound)
	}
	return p.err()
}

func (o PlanOptions) withDefaults() PlanOptions {
	if o.MaxMovesPerRound == 0 {
		o.MaxMovesPerRound = DefaultMaxMovesPerRound
	}
	return o
}

// Reason says why a shard moves.
type Reason uint8

// Move reasons, in the order the planner considers them.
const (
	// Unowned: the shard had no owner (a new cluster).
	Unowned Reason = iota + 1
	// OwnerDown: the owner is Down or no longer a member.
	OwnerDown
	// Drain: the owner is Leaving.
	Drain
	// Rebalance: the owner is Alive but holds more than its share.
	Rebalance
)

var reasonNames = [...]string{Unowned: "unowned", OwnerDown: "owner-down", Drain: "drain", Rebalance: "rebalance"}

// String returns the reason in lower case, or "Reason(n)" for an invalid one.
func (r Reason) String() string {
	if r >= Unowned && r <= Rebalance {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Discretionary reports whether a move for this reason counts against
// PlanOptions.MaxMovesPerRound (Drain and Rebalance do; orphans do not).
func (r Reason) Discretionary() bool { return r == Drain || r == Rebalance }

// Move hands one shard from one node to another.
type Move struct {
	Shard ID
	// From is the current owner ("" for an unowned shard); Apply checks it.
	From NodeID
	// To is the new owner, always an Alive member when Plan chose it.
	To     NodeID
	Reason Reason
}

// Round is the planner's output: the moves of one round, and what is left.
type Round struct {
	// MapEpoch is the epoch of the map the round was planned from;
	// Map.Apply refuses any other map (ErrStalePlan).
	MapEpoch uint64
	// Moves, in ascending shard order, at most one per shard.
	Moves []Move
	// Pending counts the moves still needed after this round with the
	// members' current statuses: stranded orphans, drains beyond the
	// bound, and the fewest rebalancing moves that would even out the
	// Alive members (an upper bound: later drains may help). A Joining or
	// Restarting member is owed nothing until it is Alive. Pending moves
	// wait for later rounds or, with no moves in this round, for a status
	// change (see NoLiveMembers and RebalanceHeld).
	Pending int
	// NoLiveMembers: no member is Alive, so nothing can move. Shards stay
	// with their last owner (even a Down one) until a member can take them.
	NoLiveMembers bool
	// RebalanceHeld: the Alive members are out of balance, but rebalancing
	// was skipped because a member is Joining, Restarting or Suspect.
	RebalanceHeld bool
}

// Settled reports whether the map needs nothing more: no moves now and
// none pending.
func (r Round) Settled() bool { return len(r.Moves) == 0 && r.Pending == 0 }

// Plan computes the next round of moves for cur given the members. It is a
// pure function: the same inputs give the same Round, with every choice
// made in shard or NodeID order and never by map iteration.
//
// The rules, in order:
//
//  1. Orphans first, unbounded: every unowned shard, and every shard whose
//     owner is Down or not in members, goes to the least-loaded Alive
//     member (ties to the lowest NodeID), in shard order. Availability
//     comes before pacing.
//  2. Drains: shards of Leaving members go the same way, in shard order,
//     while the round's budget of MaxMovesPerRound discretionary moves
//     lasts.
//  3. Rebalancing, with what is left of the budget, only if no member is
//     Joining, Restarting or Suspect: while the most-loaded Alive member
//     owns at least two more shards than the least-loaded, move one shard
//     (its lowest-numbered one that has not moved this round) from the
//     former to the latter (ties to the lowest NodeID). Balance means
//     owned counts among Alive members differ by at most one; shards of
//     Alive members never move for any other reason, and the move count
//     is the minimum that reaches balance.
//  4. With no Alive member nothing moves; the Round says NoLiveMembers.
//
// Applying rounds and planning again converges: a round without moves and
// with Pending == 0 is Settled. The cluster layer should let one round's
// handoffs finish before planning the next, or the bound paces nothing.
//
// Invalid options, members, or a structurally invalid map give an error
// (wrapping ErrInvalidOptions, ErrInvalidMembers or ErrInvalidMap) that
// lists every problem. An owner missing from members is not an error: its
// shards are orphans.
func Plan(cur Map, members []Member, opts PlanOptions) (Round, error) {
	var p problems
	for _, err := range []error{opts.Validate(), ValidateMembers(members), cur.check(ErrInvalidMap)} {
		if err != nil {
			p.list = append(p.list, err)
		}
	}
	if err := p.err(); err != nil {
		return Round{}, err
	}
	opts = opts.withDefaults()

	status := make(map[NodeID]Status, len(members))
	var alive []NodeID
	hold := false
	for _, m := range members {
		status[m.ID] = m.Status
		if m.Status == Alive {
			alive = append(alive, m.ID)
		}
		hold = hold || m.Status.holdsRebalancing()
	}
	slices.Sort(alive)
	index := make(map[NodeID]int, len(alive))
	for i, n := range alive {
		index[n] = i
	}
	// load[i] is what alive[i] owns as the round is built; owned[i] the
	// shards it owned before the round, ascending (rebalancing candidates).
	load := make([]int, len(alive))
	owned := make([][]ID, len(alive))
	for s, a := range cur.Shards {
		if i, ok := index[a.Owner]; ok {
			load[i]++
			owned[i] = append(owned[i], ID(s))
		}
	}
	least := func() int {
		best := 0
		for i := 1; i < len(load); i++ {
			if load[i] < load[best] {
				best = i
			}
		}
		return best
	}

	r := Round{MapEpoch: cur.Epoch, NoLiveMembers: len(alive) == 0}
	moveTo := func(s int, why Reason) {
		to := least()
		load[to]++
		r.Moves = append(r.Moves, Move{Shard: ID(s), From: cur.Shards[s].Owner, To: alive[to], Reason: why})
	}

	// 1. Orphans.
	for s, a := range cur.Shards {
		var why Reason
		if a.Owner == "" {
			why = Unowned
		} else if st, ok := status[a.Owner]; !ok || st == Down {
			why = OwnerDown
		} else {
			continue
		}
		if len(alive) == 0 {
			r.Pending++
			continue
		}
		moveTo(s, why)
	}

	// 2. Drains.
	budget := opts.MaxMovesPerRound
	for s, a := range cur.Shards {
		if a.Owner == "" || status[a.Owner] != Leaving {
			continue
		}
		if len(alive) == 0 || budget == 0 {
			r.Pending++
			continue
		}
		moveTo(s, Drain)
		budget--
	}

	// 3. Rebalancing.
	if len(alive) > 1 {
		if !hold {
			next := make([]int, len(alive)) // owned[i][next[i]] is i's next candidate
			for budget > 0 {
				lo, hi := least(), -1
				for i := range alive {
					if next[i] < len(owned[i]) && (hi < 0 || load[i] > load[hi]) {
						hi = i
					}
				}
				if hi < 0 || load[hi]-load[lo] <= 1 {
					break
				}
				s := owned[hi][next[hi]]
				next[hi]++
				load[hi]--
				load[lo]++
				r.Moves = append(r.Moves, Move{Shard: s, From: alive[hi], To: alive[lo], Reason: Rebalance})
				budget--
			}
		}
		need := movesToBalance(load)
		r.Pending += need
		r.RebalanceHeld = hold && need > 0
	}

	slices.SortFunc(r.Moves, func(a, b Move) int { return int(a.Shard) - int(b.Shard) })
	return r, nil
}

// movesToBalance returns the fewest single-shard moves that make the counts
// in load differ by at most one. With total T over n members, balance has
// T%n members at T/n+1 and the rest at T/n; every member above T/n sheds
// down to T/n, except that T%n of them may keep one more.
func movesToBalance(load []int) int {
	if len(load) == 0 {
		return 0
	}
	total := 0
	for _, c := range load {
		total += c
	}
	q, rem := total/len(load), total%len(load)
	excess, over := 0, 0
	for _, c := range load {
		if c > q {
			excess += c - q
			over++
		}
	}
	return excess - min(rem, over)
}
