package actor

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
	"github.com/phasm-go/phasm/shard"
)

// job is a test machine with one external tracked action per "start"
// input; "note" is a plain input.
type job struct{}

type jobState struct {
	Next  machine.ActionID
	Out   map[machine.ActionID]bool
	Done  int
	Notes int
}

type (
	jobIn  struct{ Op string }
	jobAct struct{ N machine.ActionID }
	jobRes struct{ OK bool }
)

func (job) Transition(s *jobState, in machine.Input[jobIn, jobRes], out *machine.Actions[jobAct, machine.None]) error {
	if c := in.Completion; c != nil {
		if !s.Out[c.ActionID] {
			return errors.New("job: no such action")
		}
		delete(s.Out, c.ActionID)
		s.Done++
		return nil
	}
	switch in.Value.Op {
	case "start":
		s.Next++
		if s.Out == nil {
			s.Out = map[machine.ActionID]bool{}
		}
		s.Out[s.Next] = true
		return out.Track(s.Next, jobAct{N: s.Next})
	case "note":
		s.Notes++
		return nil
	}
	return errors.New("job: unknown op")
}

func (job) Restore(s *jobState, out *machine.Actions[jobAct, machine.None]) error {
	for id := machine.ActionID(1); id <= s.Next; id++ {
		if s.Out[id] {
			if err := out.Track(id, jobAct{N: id}); err != nil {
				return err
			}
		}
	}
	return nil
}

// heldStore holds appends while hold is set, until release.
type heldStore struct {
	*memstore.Store
	mu   sync.Mutex
	hold bool
	held []func()
}

func (s *heldStore) AppendAsync(req persistence.AppendRequest, done func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold {
		s.held = append(s.held, func() { s.Store.AppendAsync(req, done) })
		return
	}
	s.Store.AppendAsync(req, done)
}

func (s *heldStore) setHold(on bool) {
	s.mu.Lock()
	s.hold = on
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// handoffView: node "a" owns every shard at epoch 1, except those in
// moved, owned by the down node "b" or (epoch above 2) by "a" again.
func handoffView(version uint64, shards int, moved map[shard.ID]shard.Assignment) cluster.View {
	m, err := shard.Initial(shards, []shard.NodeID{"a"})
	if err != nil {
		panic(err)
	}
	for s, a := range moved {
		m.Shards[s] = a
		m.Epoch = max(m.Epoch, a.Epoch)
	}
	return cluster.View{Version: version, Self: "a", Leader: "a", Map: m, Members: []cluster.Member{
		{ID: "a", Status: shard.Alive},
		{ID: "b", Addrs: cluster.Addresses{Remote: "127.0.0.1:1"}, Status: shard.Down},
	}}
}

// TestShardHandoffFollowsTheView drives one host's shard ownership with a
// view channel: a shard that moves away answers MOVED, lets its in-flight
// append finish and passivates every entity (one with an outstanding
// action too); gained back under a new epoch, it re-activates the pending
// entity at once, whose action is re-driven under the new fence and
// completes.
func TestShardHandoffFollowsTheView(t *testing.T) {
	const shards = 4
	store := &heldStore{Store: memstore.New()}
	views := make(chan cluster.View, 1)
	push := func(v cluster.View) {
		select { // keep only the newest, like cluster.Node.Watch
		case <-views:
		default:
		}
		views <- v
	}
	h, err := New(Config{Store: store, Shards: shards, IdleTimeout: -1,
		Actions: ActionConfig{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, AttemptTimeout: time.Minute},
		Cluster: &ClusterConfig{Listen: "127.0.0.1:0", Watch: views}})
	require.NoError(t, err)
	h.net.noListen = true

	gate := make(chan struct{})
	fences := make(chan uint64, 16)
	kind, err := machine.NewKind[jobState, jobIn, jobAct, jobRes, machine.None]("job", job{}, machine.Options[jobState, jobIn, jobAct, jobRes, machine.None]{})
	require.NoError(t, err)
	jobs, err := Register(h, kind, KindOptions[jobState, jobIn, jobAct, jobRes, machine.None]{
		Execute: func(ctx context.Context, c Call[jobAct]) (jobRes, error) {
			fences <- c.Fence.ShardEpoch
			select {
			case <-gate:
				return jobRes{OK: true}, nil
			case <-ctx.Done():
				return jobRes{}, ctx.Err()
			}
		},
		Failure: func(jobAct, error) jobRes { return jobRes{} },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, h.Start(ctx))
	defer func() { require.NoError(t, h.Stop(context.Background())) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	fence := func() uint64 {
		t.Helper()
		select {
		case f := <-fences:
			return f
		case <-ctx.Done():
			t.Fatal("no action executed")
			return 0
		}
	}

	j1 := jobs.Ref("j1")
	s := shard.ID(h.ShardOf(j1.Entity()))
	var other Ref[jobState, jobIn]
	for i := 0; ; i++ {
		other = jobs.Ref("other-" + string(rune('a'+i)))
		if shard.ID(h.ShardOf(other.Entity())) != s {
			break
		}
	}

	// No view yet: nothing is owned, nothing routes.
	require.Equal(t, ShardInfo{}, h.Shard(uint32(s)))
	require.ErrorIs(t, j1.Ask(ctx, jobIn{Op: "note"}, WithoutRetry()), ErrNoOwner)

	// View 1: every shard is ours at epoch 1.
	push(handoffView(1, shards, nil))
	waitFor("the shards to be gained", func() bool { return h.Shard(uint32(s)).Epoch == 1 })
	require.NoError(t, j1.Ask(ctx, jobIn{Op: "start"}))
	require.Equal(t, uint64(1), fence(), "the fence is the shard's epoch from the view")

	// An append in flight when the shard moves away finishes first.
	store.setHold(true)
	noted := make(chan error, 1)
	go func() { noted <- j1.Ask(ctx, jobIn{Op: "note"}, WithoutRetry()) }()
	waitFor("the append in flight", func() bool { return h.appends.Load() == 1 })

	// View 2: the shard moves to "b" (down).
	push(handoffView(2, shards, map[shard.ID]shard.Assignment{s: {Owner: "b", Epoch: 2}}))
	waitFor("the shard to be released", func() bool { return h.Shard(uint32(s)).Epoch == 0 })
	require.Equal(t, 1, h.Shard(uint32(s)).Active, "the entity waits for its append")
	// A request that reaches the shard actor (routed by an older view) is
	// answered MOVED; one routed by the new view finds no owner.
	reply := make(chan response, 1)
	require.NoError(t, h.admit(&request{entity: j1.Entity(), requestID: "stale", input: jobIn{Op: "note"}, reply: reply}))
	require.ErrorIs(t, (<-reply).err, ErrMoved)
	require.ErrorIs(t, j1.Ask(ctx, jobIn{Op: "note"}, WithoutRetry()), ErrNoOwner)
	qctx, qcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = j1.Query(qctx)
	qcancel()
	require.ErrorIs(t, err, ErrNoOwner, "Query retries ErrNoOwner until its deadline")

	store.setHold(false)
	require.NoError(t, <-noted, "the input in flight at the handoff is durable and acknowledged")
	waitFor("the shard's entities to passivate", func() bool { return h.Shard(uint32(s)).Active == 0 })
	pending, err := store.Pending(ctx, uint32(s))
	require.NoError(t, err)
	require.Equal(t, []machine.Entity{j1.Entity()}, pending, "the outstanding action stays durable")
	require.NoError(t, other.Ask(ctx, jobIn{Op: "note"}), "other shards are unaffected")
	require.Equal(t, uint64(1), h.Shard(uint32(shard.ID(h.ShardOf(other.Entity())))).Epoch)

	// View 3: the shard comes back at epoch 3; the pending entity is
	// re-activated without a request, and Restore re-drives its action
	// under the new fence.
	eager := h.Stats().EagerActivations
	push(handoffView(3, shards, map[shard.ID]shard.Assignment{s: {Owner: "a", Epoch: 3}}))
	require.Equal(t, uint64(3), fence(), "the re-driven action carries the new epoch")
	require.Equal(t, ShardInfo{Epoch: 3, Active: 1}, h.Shard(uint32(s)))
	require.Equal(t, eager+1, h.Stats().EagerActivations)

	close(gate) // both runs (epoch 1 and 3) complete; the driver drops the second
	waitFor("the action to complete", func() bool {
		st, err := j1.Query(ctx)
		require.NoError(t, err)
		return st.Done == 1
	})
	st, err := j1.Query(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Notes, "the note in flight at the handoff, once")
	require.Empty(t, st.Out)
	waitFor("the pending index to clear", func() bool {
		p, err := store.Pending(ctx, uint32(s))
		require.NoError(t, err)
		return !slices.Contains(p, j1.Entity())
	})
}

// A host whose view of a shard is stale (another host owns it under a
// newer epoch and has written the entity) gets a fenced conflict from the
// store: it answers ErrMoved and stops serving the entity instead of
// reloading it and failing again on every retry.
func TestFencedAppendStopsTheStaleOwner(t *testing.T) {
	const shards = 2
	store := memstore.New()
	kind, err := machine.NewKind[jobState, jobIn, jobAct, jobRes, machine.None]("job", job{}, machine.Options[jobState, jobIn, jobAct, jobRes, machine.None]{})
	require.NoError(t, err)
	start := func(self string, epoch uint64) (*Host, Ref[jobState, jobIn]) {
		views := make(chan cluster.View, 1)
		m, err := shard.Initial(shards, []shard.NodeID{shard.NodeID(self)})
		require.NoError(t, err)
		for i := range m.Shards {
			m.Shards[i].Epoch = epoch
		}
		m.Epoch = epoch
		views <- cluster.View{Version: 1, Self: shard.NodeID(self), Leader: shard.NodeID(self), Map: m,
			Members: []cluster.Member{{ID: shard.NodeID(self), Status: shard.Alive}}}
		h, err := New(Config{Store: store, Shards: shards, IdleTimeout: -1,
			Cluster: &ClusterConfig{Listen: "127.0.0.1:0", Watch: views}})
		require.NoError(t, err)
		h.net.noListen = true
		jobs, err := Register(h, kind, KindOptions[jobState, jobIn, jobAct, jobRes, machine.None]{
			Execute: func(context.Context, Call[jobAct]) (jobRes, error) { return jobRes{OK: true}, nil },
			Failure: func(jobAct, error) jobRes { return jobRes{} },
		})
		require.NoError(t, err)
		require.NoError(t, h.Start(t.Context()))
		t.Cleanup(func() { require.NoError(t, h.Stop(context.Background())) })
		ref := jobs.Ref("j1")
		deadline := time.Now().Add(10 * time.Second)
		for h.Shard(h.ShardOf(ref.Entity())).Epoch != epoch {
			require.True(t, time.Now().Before(deadline), "the view was not taken")
			time.Sleep(time.Millisecond)
		}
		return h, ref
	}
	ctx := t.Context()
	stale, j1 := start("a", 1)
	require.NoError(t, j1.Ask(ctx, jobIn{Op: "note"}))
	_, j1b := start("b", 5) // the shard moved to b, which a has not heard
	require.NoError(t, j1b.Ask(ctx, jobIn{Op: "note"}))

	err = j1.Ask(ctx, jobIn{Op: "note"}, WithoutRetry())
	for range 2 { // a's first append failed on b's seq: it reloads
		if !errors.Is(err, ErrUnavailable) {
			break
		}
		err = j1.Ask(ctx, jobIn{Op: "note"}, WithoutRetry())
	}
	require.ErrorIs(t, err, ErrMoved)
	require.Contains(t, err.Error(), "newer epoch (5 > 1)")
	l, err := store.Load(ctx, j1.Entity())
	require.NoError(t, err)
	require.EqualValues(t, 2, l.LastSeq, "the stale owner wrote nothing")
	loads := stale.Stats().Activations
	for range 5 {
		_ = j1.Ask(ctx, jobIn{Op: "note"}, WithoutRetry())
	}
	require.LessOrEqual(t, stale.Stats().Activations-loads, uint64(5), "at most one activation per request")
}
