package cluster_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

func addrs(id shard.NodeID) cluster.Addresses {
	return cluster.Addresses{Raft: "10.0.0.1:7000/" + string(id), Remote: "10.0.0.1:8000/" + string(id), Admin: "10.0.0.1:9000/" + string(id)}
}

func add(id shard.NodeID) cluster.Command {
	return cluster.Command{Type: cluster.CmdAddMember, Node: id, Addrs: addrs(id), AtUnixNano: 100}
}

func mark(t cluster.CommandType, id shard.NodeID, inc uint64) cluster.Command {
	return cluster.Command{Type: t, Node: id, Incarnation: inc, AtUnixNano: 200, Term: 3}
}

// build applies cmds to an empty state, failing on any error.
func build(t *testing.T, cmds ...cluster.Command) cluster.State {
	t.Helper()
	var s cluster.State
	for _, c := range cmds {
		if _, err := s.Apply(c); err != nil {
			t.Fatalf("building the state: %v", err)
		}
	}
	return s
}

// planRound plans a round from s the way the leader does.
func planRound(t *testing.T, s cluster.State) cluster.Command {
	t.Helper()
	r, err := shard.Plan(s.Map, s.PlanMembers(), shard.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cluster.Command{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: r.MapEpoch, Moves: r.Moves}}
}

var initCmd = cluster.Command{Type: cluster.CmdInit, Shards: 8}

func TestStateApply(t *testing.T) {
	// base: a and b Alive, owning 4 shards each; c Joining.
	base := func(t *testing.T) cluster.State {
		s := build(t, initCmd, add("a"), add("b"), add("c"), mark(cluster.CmdMarkAlive, "a", 1), mark(cluster.CmdMarkAlive, "b", 1))
		s2 := s.Clone()
		if _, err := s2.Apply(planRound(t, s)); err != nil {
			t.Fatal(err)
		}
		return s2
	}
	member := func(s cluster.State, id shard.NodeID) cluster.Member { m, _ := s.Member(id); return m }
	tests := []struct {
		name    string
		setup   []cluster.Command // applied to base first
		cmd     func(t *testing.T, s cluster.State) cluster.Command
		wantErr []error
		changed bool
		check   func(t *testing.T, before, after cluster.State)
	}{
		{name: "init again with the same count is a no-op", cmd: fixed(initCmd)},
		{name: "init with another count", cmd: fixed(cluster.Command{Type: cluster.CmdInit, Shards: 9}), wantErr: []error{cluster.ErrAlreadyInitialized}},
		{name: "add a new member: joining, incarnation 1", cmd: fixed(add("d")), changed: true,
			check: func(t *testing.T, _, s cluster.State) {
				if m := member(s, "d"); m.Status != shard.Joining || m.Incarnation != 1 || m.Addrs != addrs("d") || m.StatusSinceUnixNano != 100 {
					t.Errorf("d: %+v", m)
				}
			}},
		{name: "repeated join is a no-op", cmd: fixed(add("a"))},
		{name: "join with new addresses rejoins", cmd: fixed(cluster.Command{Type: cluster.CmdAddMember, Node: "a", Addrs: addrs("x")}), changed: true,
			check: func(t *testing.T, _, s cluster.State) {
				if m := member(s, "a"); m.Status != shard.Joining || m.Incarnation != 2 || m.Addrs != addrs("x") {
					t.Errorf("a: %+v", m)
				}
				if len(s.Map.ShardsOf("a")) != 4 {
					t.Error("a rejoining lost its shards")
				}
			}},
		{name: "join of a down member rejoins", setup: []cluster.Command{mark(cluster.CmdMarkDown, "b", 1)}, cmd: fixed(add("b")), changed: true,
			check: func(t *testing.T, _, s cluster.State) {
				if m := member(s, "b"); m.Status != shard.Joining || m.Incarnation != 2 {
					t.Errorf("b: %+v", m)
				}
			}},
		{name: "mark alive a joining member", cmd: fixed(mark(cluster.CmdMarkAlive, "c", 1)), changed: true,
			check: func(t *testing.T, _, s cluster.State) {
				if m := member(s, "c"); m.Status != shard.Alive || m.LastHeartbeatUnixNano != 200 || m.LastHeartbeatTerm != 3 {
					t.Errorf("c: %+v", m)
				}
			}},
		{name: "mark alive an alive member is a no-op", cmd: fixed(mark(cluster.CmdMarkAlive, "a", 1))},
		{name: "incarnation 0 means the current one", cmd: fixed(mark(cluster.CmdMarkSuspect, "a", 0)), changed: true},
		{name: "stale incarnation", cmd: fixed(mark(cluster.CmdMarkDown, "a", 7)), wantErr: []error{cluster.ErrStaleIncarnation}},
		{name: "unknown member", cmd: fixed(mark(cluster.CmdMarkDown, "zz", 0)), wantErr: []error{cluster.ErrUnknownMember}},
		{name: "suspect then alive", setup: []cluster.Command{mark(cluster.CmdMarkSuspect, "a", 1)}, cmd: fixed(mark(cluster.CmdMarkAlive, "a", 1)), changed: true},
		{name: "down keeps its shards until a round", cmd: fixed(mark(cluster.CmdMarkDown, "a", 1)), changed: true,
			check: func(t *testing.T, _, s cluster.State) {
				if member(s, "a").Status != shard.Down || len(s.Map.ShardsOf("a")) != 4 {
					t.Error("a")
				}
			}},
		{name: "a down member cannot start leaving", setup: []cluster.Command{mark(cluster.CmdMarkDown, "a", 1)}, cmd: fixed(mark(cluster.CmdLeave, "a", 1)), wantErr: []error{cluster.ErrInvalidTransition}},
		{name: "a leaving member cannot be suspected", setup: []cluster.Command{mark(cluster.CmdLeave, "a", 1)}, cmd: fixed(mark(cluster.CmdMarkSuspect, "a", 1)), wantErr: []error{cluster.ErrInvalidTransition}},
		{name: "a leaving member cannot become alive", setup: []cluster.Command{mark(cluster.CmdLeave, "a", 1)}, cmd: fixed(mark(cluster.CmdMarkAlive, "a", 1)), wantErr: []error{cluster.ErrInvalidTransition}},
		{name: "a leaving member can go down", setup: []cluster.Command{mark(cluster.CmdLeave, "a", 1)}, cmd: fixed(mark(cluster.CmdMarkDown, "a", 1)), changed: true},
		{name: "remove a member that owns shards", cmd: fixed(cluster.Command{Type: cluster.CmdRemove, Node: "a"}), wantErr: []error{cluster.ErrMemberOwnsShards}},
		{name: "remove a member without shards", cmd: fixed(cluster.Command{Type: cluster.CmdRemove, Node: "c"}), changed: true,
			check: func(t *testing.T, _, s cluster.State) {
				if _, ok := s.Member("c"); ok || len(s.Members) != 2 {
					t.Error("c still there")
				}
			}},
		{name: "remove an unknown member is a no-op", cmd: fixed(cluster.Command{Type: cluster.CmdRemove, Node: "zz"})},
		{name: "heartbeat records time and term", cmd: fixed(cluster.Command{Type: cluster.CmdHeartbeat, Node: "b", Incarnation: 1, AtUnixNano: 300, Term: 4}), changed: true,
			check: func(t *testing.T, before, s cluster.State) {
				if m := member(s, "b"); m.LastHeartbeatUnixNano != 300 || m.LastHeartbeatTerm != 4 || m.Status != shard.Alive {
					t.Errorf("b: %+v", m)
				}
			}},
		{name: "round after a member goes down moves its shards", setup: []cluster.Command{mark(cluster.CmdMarkDown, "a", 1)},
			cmd: planRound, changed: true,
			check: func(t *testing.T, before, s cluster.State) {
				if len(s.Map.ShardsOf("b")) != 8 || s.Map.Epoch != before.Map.Epoch+1 {
					t.Errorf("map after the round: %+v", s.Map)
				}
			}},
		{name: "stale round", cmd: func(t *testing.T, s cluster.State) cluster.Command {
			c := planRound(t, build(t, initCmd, add("a"), mark(cluster.CmdMarkAlive, "a", 1)))
			c.Round.MapEpoch = 1 // base's map is at epoch 2
			return c
		}, wantErr: []error{cluster.ErrStaleRound, shard.ErrStalePlan}},
		{name: "round to a member that is not alive", cmd: func(t *testing.T, s cluster.State) cluster.Command {
			return cluster.Command{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: s.Map.Epoch, Moves: []shard.Move{{Shard: 0, From: s.Map.Owner(0), To: "c"}}}}
		}, wantErr: []error{cluster.ErrInvalidRound}},
		{name: "round with a wrong From", cmd: func(t *testing.T, s cluster.State) cluster.Command {
			return cluster.Command{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: s.Map.Epoch, Moves: []shard.Move{{Shard: 0, From: "c", To: "b"}}}}
		}, wantErr: []error{cluster.ErrInvalidRound, shard.ErrInvalidPlan}},
		{name: "empty round is a no-op", cmd: func(t *testing.T, s cluster.State) cluster.Command {
			return cluster.Command{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: s.Map.Epoch}}
		}},
		{name: "invalid command", cmd: fixed(cluster.Command{Type: cluster.CmdMarkDown}), wantErr: []error{cluster.ErrInvalidCommand}},
		{name: "unknown command type", cmd: fixed(cluster.Command{Type: 99}), wantErr: []error{cluster.ErrInvalidCommand}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base(t)
			for _, c := range tc.setup {
				if _, err := s.Apply(c); err != nil {
					t.Fatal(err)
				}
			}
			before := s.Clone()
			changed, err := s.Apply(tc.cmd(t, s))
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			switch {
			case changed && s.Version != before.Version+1:
				t.Errorf("version %d after a change from %d", s.Version, before.Version)
			case !changed && !s.Equal(&before):
				t.Errorf("state changed by a rejected or no-op command")
			}
			if err := s.Validate(); err != nil {
				t.Errorf("state invalid after apply: %v", err)
			}
			if tc.check != nil {
				tc.check(t, before, s)
			}
		})
	}
}

func fixed(c cluster.Command) func(*testing.T, cluster.State) cluster.Command {
	return func(*testing.T, cluster.State) cluster.Command { return c }
}

func TestApplyRoundBeforeInit(t *testing.T) {
	var s cluster.State
	_, err := s.Apply(cluster.Command{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: 1}})
	if !errors.Is(err, cluster.ErrNotInitialized) {
		t.Fatalf("got %v", err)
	}
}

func TestTooManyMembers(t *testing.T) {
	var s cluster.State
	for i := range cluster.MaxMembers {
		if _, err := s.Apply(add(shard.NodeID(fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(add("one-more")); !errors.Is(err, cluster.ErrTooManyMembers) {
		t.Fatalf("got %v", err)
	}
}

// allCommands has one valid command of every type.
func allCommands() []cluster.Command {
	return []cluster.Command{
		{Type: cluster.CmdInit, Shards: 256, AtUnixNano: -5, Term: 1},
		{Type: cluster.CmdAddMember, Node: "n1", Addrs: addrs("n1"), AtUnixNano: 1 << 60, Term: 2},
		{Type: cluster.CmdAddMember, Node: "n2", Addrs: cluster.Addresses{Raft: "r", Admin: "a"}},
		mark(cluster.CmdMarkAlive, "n1", 1),
		mark(cluster.CmdMarkSuspect, "n1", 0),
		mark(cluster.CmdMarkDown, "n1", 1<<40),
		mark(cluster.CmdLeave, "n1", 2),
		mark(cluster.CmdHeartbeat, "n1", 3),
		{Type: cluster.CmdRemove, Node: "n1"},
		{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: 7, Moves: []shard.Move{
			{Shard: 0, From: "", To: "n1", Reason: shard.Unowned}, {Shard: 300, From: "n1", To: "n2", Reason: shard.Rebalance}}}},
		{Type: cluster.CmdApplyRound, Round: shard.Round{MapEpoch: 1}},
	}
}

func TestCommandEncodingRoundTrip(t *testing.T) {
	for _, c := range allCommands() {
		t.Run(c.Type.String(), func(t *testing.T) {
			b, err := c.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got cluster.Command
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			b2, _ := got.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatalf("not canonical: %x vs %x", b, b2)
			}
			if fmt.Sprint(got) != fmt.Sprint(c) {
				t.Fatalf("round trip: %+v, want %+v", got, c)
			}
		})
	}
}

// Every truncation and every single-bit flip of every command is refused
// with a typed error wrapping ErrCorruptCommand or ErrUnknownCommand.
func TestCommandDecodingRefusesDamage(t *testing.T) {
	for _, c := range allCommands() {
		b, _ := c.MarshalBinary()
		check := func(what string, data []byte) {
			var got cluster.Command
			err := got.UnmarshalBinary(data)
			var de *cluster.DecodeError
			if !errors.As(err, &de) || !(errors.Is(err, cluster.ErrCorruptCommand) || errors.Is(err, cluster.ErrUnknownCommand)) {
				t.Errorf("%s %s: %v", c.Type, what, err)
			}
		}
		for i := range len(b) {
			check(fmt.Sprintf("truncated to %d", i), b[:i])
			for bit := range 8 {
				d := bytes.Clone(b)
				d[i] ^= 1 << bit
				check(fmt.Sprintf("bit %d of byte %d", bit, i), d)
			}
		}
		check("with a trailing byte", append(bytes.Clone(b), 0))
	}
}

func TestCommandDecodingUnknownTypeAndVersion(t *testing.T) {
	b, _ := cluster.Command{Type: cluster.CmdRemove, Node: "n"}.MarshalBinary()
	for _, tc := range []struct {
		name string
		off  int
		val  byte
	}{{"version", 0, 2}, {"type", 1, 200}} {
		d := bytes.Clone(b)
		d[tc.off] = tc.val
		d = reseal(d)
		var c cluster.Command
		err := c.UnmarshalBinary(d)
		var de *cluster.DecodeError
		if !errors.Is(err, cluster.ErrUnknownCommand) || !errors.As(err, &de) || de.Offset != tc.off {
			t.Errorf("unknown %s: %v", tc.name, err)
		}
	}
}

// reseal recomputes the trailing checksum, so a test can reach the checks
// behind it.
func reseal(b []byte) []byte { return appendCRC(bytes.Clone(b[:len(b)-4])) }

func TestSnapshotRoundTripAndDamage(t *testing.T) {
	s := build(t, initCmd, add("a"), add("b"), mark(cluster.CmdMarkAlive, "a", 1), mark(cluster.CmdMarkAlive, "b", 1))
	if _, err := s.Apply(planRound(t, s)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(mark(cluster.CmdMarkDown, "b", 1)); err != nil {
		t.Fatal(err)
	}
	var empty cluster.State
	for _, st := range []cluster.State{s, empty} {
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got cluster.State
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(&st) {
			t.Fatalf("round trip: %+v, want %+v", got, st)
		}
		if b2, _ := got.MarshalBinary(); !bytes.Equal(b, b2) {
			t.Fatal("not canonical")
		}
		for i := range len(b) {
			var x cluster.State
			if err := x.UnmarshalBinary(b[:i]); !errors.Is(err, cluster.ErrCorruptSnapshot) {
				t.Fatalf("truncated to %d: %v", i, err)
			}
			d := bytes.Clone(b)
			d[i] ^= 0x10
			if err := x.UnmarshalBinary(d); !errors.Is(err, cluster.ErrCorruptSnapshot) {
				t.Fatalf("flip in byte %d: %v", i, err)
			}
		}
	}
}

func TestInvalidStateIsNotEncoded(t *testing.T) {
	s := build(t, initCmd, add("a"), mark(cluster.CmdMarkAlive, "a", 1))
	s.Members = nil // the map's owners are no longer members
	if _, err := s.Apply(planRound(t, build(t, initCmd, add("a"), mark(cluster.CmdMarkAlive, "a", 1)))); err == nil {
		t.Fatal("round to a non-member applied")
	}
	s2 := build(t, initCmd, add("a"), mark(cluster.CmdMarkAlive, "a", 1))
	s2.Apply(planRound(t, s2))
	s2.Members = nil
	if _, err := s2.MarshalBinary(); !errors.Is(err, cluster.ErrInvalidState) {
		t.Fatalf("got %v", err)
	}
}

// Replicas that apply the same commands hold byte-identical states, rejected
// commands included. The sequence is random; the seed is printed.
func TestApplyIsDeterministic(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ids := []shard.NodeID{"a", "b", "c", "d"}
	types := []cluster.CommandType{cluster.CmdAddMember, cluster.CmdMarkAlive, cluster.CmdMarkSuspect, cluster.CmdMarkDown, cluster.CmdLeave, cluster.CmdRemove, cluster.CmdHeartbeat, cluster.CmdApplyRound}
	r1 := build(t, cluster.Command{Type: cluster.CmdInit, Shards: 32})
	r2 := r1.Clone()
	for i := range 2000 {
		id := ids[rng.IntN(len(ids))]
		var c cluster.Command
		switch ty := types[rng.IntN(len(types))]; ty {
		case cluster.CmdAddMember:
			c = add(id)
		case cluster.CmdRemove:
			c = cluster.Command{Type: ty, Node: id}
		case cluster.CmdApplyRound:
			r, err := shard.Plan(r1.Map, r1.PlanMembers(), shard.PlanOptions{MaxMovesPerRound: 3})
			if err != nil {
				t.Fatal(err)
			}
			c = cluster.Command{Type: ty, Round: shard.Round{MapEpoch: r.MapEpoch - uint64(rng.IntN(2)), Moves: r.Moves}}
		default:
			c = cluster.Command{Type: ty, Node: id, Incarnation: uint64(rng.IntN(3))}
		}
		c.AtUnixNano, c.Term = int64(i), uint64(i/100)
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d cluster.Command
		if err := d.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		ch1, e1 := r1.Apply(c)
		ch2, e2 := r2.Apply(d)
		if ch1 != ch2 || (e1 == nil) != (e2 == nil) {
			t.Fatalf("step %d (%+v): replicas disagree: %v/%v vs %v/%v", i, c, ch1, e1, ch2, e2)
		}
		if err := r1.Validate(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	b1, _ := r1.MarshalBinary()
	b2, _ := r2.MarshalBinary()
	if !bytes.Equal(b1, b2) {
		t.Fatal("replicas diverged")
	}
}

func FuzzCommandDecode(f *testing.F) {
	for _, c := range allCommands() {
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c cluster.Command
		if err := c.UnmarshalBinary(data); err != nil {
			return
		}
		b, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("decoded input does not re-encode to itself: %v", err)
		}
	})
}

func FuzzSnapshotDecode(f *testing.F) {
	var empty cluster.State
	b, _ := empty.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s cluster.State
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		if b, err := s.MarshalBinary(); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("decoded snapshot does not re-encode to itself: %v", err)
		}
	})
}
