package shard_test

import (
	"fmt"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/shard"
)

// A three-node cluster loses node b: its shards move to the survivor with
// the fewest, each with its epoch raised, and the map's epoch rises once.
func Example() {
	m, err := shard.Initial(8, []shard.NodeID{"a", "b"})
	if err != nil {
		panic(err)
	}
	members := []shard.Member{
		{ID: "a", Status: shard.Alive},
		{ID: "b", Status: shard.Down},
		{ID: "c", Status: shard.Alive},
	}
	r, err := shard.Plan(m, members, shard.PlanOptions{})
	if err != nil {
		panic(err)
	}
	for _, mv := range r.Moves {
		fmt.Printf("shard %d: %s -> %s (%s)\n", mv.Shard, mv.From, mv.To, mv.Reason)
	}
	next, err := m.Apply(r)
	if err != nil {
		panic(err)
	}
	fmt.Println("map epoch", next.Epoch, "a owns", next.ShardsOf("a"), "c owns", next.ShardsOf("c"))

	e := machine.Entity{Kind: "account", ID: "carol"}
	s := next.ShardOf(e)
	a, _ := next.Assignment(s)
	fmt.Printf("%s is in shard %d, owned by %s at epoch %d\n", e, s, a.Owner, a.Epoch)

	again, _ := shard.Plan(next, members, shard.PlanOptions{})
	fmt.Println("settled:", again.Settled())
	// Output:
	// shard 1: b -> c (owner-down)
	// shard 3: b -> c (owner-down)
	// shard 5: b -> c (owner-down)
	// shard 7: b -> c (owner-down)
	// map epoch 2 a owns [0 2 4 6] c owns [1 3 5 7]
	// account/carol is in shard 7, owned by c at epoch 2
	// settled: true
}

// A member that is Joining receives nothing (and would hold any
// rebalancing among the others); once it is Alive, shards flow to it a
// bounded number per round.
func ExamplePlan_join() {
	m, _ := shard.Initial(12, []shard.NodeID{"a", "b"})
	members := []shard.Member{{ID: "a", Status: shard.Alive}, {ID: "b", Status: shard.Alive}, {ID: "c", Status: shard.Joining}}
	opts := shard.PlanOptions{MaxMovesPerRound: 3}

	r, _ := shard.Plan(m, members, opts)
	fmt.Println("joining:", len(r.Moves), "moves")

	members[2].Status = shard.Alive
	for round := 1; ; round++ {
		r, _ := shard.Plan(m, members, opts)
		if len(r.Moves) == 0 {
			break
		}
		m, _ = m.Apply(r)
		fmt.Println("round", round, "moved", len(r.Moves), "pending", r.Pending)
	}
	fmt.Println(m.ShardsOf("a"), m.ShardsOf("b"), m.ShardsOf("c"))
	// Output:
	// joining: 0 moves
	// round 1 moved 3 pending 1
	// round 2 moved 1 pending 0
	// [4 6 8 10] [5 7 9 11] [0 1 2 3]
}

// The map's encoding is canonical and checksummed; damage is an error.
func ExampleMap_UnmarshalBinary() {
	m, _ := shard.Initial(4, []shard.NodeID{"a"})
	b, _ := m.MarshalBinary()
	var decoded shard.Map
	fmt.Println(decoded.UnmarshalBinary(b), decoded.Equal(m))
	b[3] ^= 0xff
	fmt.Println(decoded.UnmarshalBinary(b))
	// Output:
	// <nil> true
	// shard: corrupt map encoding: checksum mismatch
}
