package actor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
)

type walletRef = actor.Ref[walletState, walletIn]

// payouts is a fake external payment system: it fails the first attempts
// of each key when told to, and remembers every key it executed.
type payouts struct {
	mu       sync.Mutex
	failures map[string]int // key -> attempts still to fail
	failAll  bool
	calls    map[string]int
}

func (p *payouts) execute(ctx context.Context, c actor.Call[walletOp]) (walletResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[c.IdempotencyKey]++
	if p.failAll {
		return walletResult{}, errors.New("payout system down")
	}
	if n := p.failures[c.IdempotencyKey]; n > 0 {
		p.failures[c.IdempotencyKey] = n - 1
		return walletResult{}, errors.New("transient")
	}
	return walletResult{OK: true}, nil
}

type testHost struct {
	h       *actor.Host
	wallets *actor.KindRef[walletState, walletIn]
	ctrs    *actor.KindRef[counter.State, counter.Input]
	pay     *payouts
	notes   atomic.Int64
}

func startHost(t *testing.T, store persistence.Store, mod func(*actor.Config)) *testHost {
	t.Helper()
	cfg := actor.Config{
		Store:   store,
		Shards:  8,
		Actions: actor.ActionConfig{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 3},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := actor.New(cfg)
	require.NoError(t, err)
	th := &testHost{h: h, pay: &payouts{failures: map[string]int{}}}
	wk, err := newWalletKind()
	require.NoError(t, err)
	th.wallets, err = actor.Register(h, wk, actor.KindOptions[walletState, walletIn, walletOp, walletResult, walletNote]{
		Execute: th.pay.execute,
		Failure: func(a walletOp, err error) walletResult { return walletResult{Reason: err.Error()} },
		Deliver: func(_ machine.Entity, t machine.Tracked[walletOp]) (actor.Delivery, bool) {
			a := t.Action
			if a.Kind != "send" {
				return actor.Delivery{}, false
			}
			return actor.Delivery{To: machine.Entity{Kind: "wallet", ID: a.To}, Input: walletIn{Op: "credit", Amount: a.Amount}}, true
		},
		Reply: func(a walletOp, err error) walletResult {
			if err != nil {
				return walletResult{Reason: err.Error()}
			}
			return walletResult{OK: true}
		},
		Timer: func(a walletOp) (time.Time, bool) { return a.At, a.Kind == "remind" },
		Fired: func(walletOp) walletResult { return walletResult{OK: true} },
		Sink:  func(context.Context, machine.Entity, walletNote) { th.notes.Add(1) },
	})
	require.NoError(t, err)
	ck, err := counter.NewKind(100)
	require.NoError(t, err)
	th.ctrs, err = actor.Register(h, ck, actor.KindOptions[counter.State, counter.Input, machine.None, machine.None, machine.None]{})
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	return th
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond with a bounded wait (tests never sleep blindly).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func query(t *testing.T, r walletRef) walletState {
	t.Helper()
	s, err := r.Query(ctx(t))
	require.NoError(t, err)
	return s
}

func TestAskRepliesAfterTheInputIsDurable(t *testing.T) {
	store := memstore.New()
	th := startHost(t, store, nil)
	c := th.ctrs.Ref("visits")
	require.NoError(t, c.Ask(ctx(t), counter.Input{Add: 60}))
	err := c.Ask(ctx(t), counter.Input{Add: 50})
	assert.ErrorIs(t, err, counter.ErrOverflow, "the machine's error, unchanged")
	var merr *machine.Error
	require.ErrorAs(t, err, &merr)
	s, err := c.Query(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(60), s.Value)

	// What was acknowledged is in the store: the accepted input, and the
	// rejection (Ask gives every input a request ID, and a rejection with a
	// request ID is journaled so a retry gets the same answer).
	l, err := store.Load(ctx(t), c.Entity())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), l.LastSeq)
	require.Len(t, l.Records, 2)
	assert.Equal(t, machine.RecordRejected, l.Records[1].Kind)
}

func TestRequestIDsMakeRetriesEffectivelyOnce(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	c := th.ctrs.Ref("c")
	for i := 0; i < 3; i++ {
		require.NoError(t, c.Ask(ctx(t), counter.Input{Add: 10}, actor.WithRequestID("same")))
	}
	s, err := c.Query(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(10), s.Value)
	assert.Equal(t, uint64(2), th.h.Stats().Duplicates)
}

func TestTrackedActionsRunAndComplete(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	w := th.wallets.Ref("ada")
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "deposit", Amount: 100}))
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "payout", Amount: 30}))
	eventually(t, "the payout to complete", func() bool { return query(t, w).Paid == 30 })
	s := query(t, w)
	assert.Equal(t, int64(70), s.Balance)
	assert.Empty(t, s.Pending)
	assert.ErrorIs(t, w.Ask(ctx(t), walletIn{Op: "payout", Amount: 1000}), errNoFunds)
	eventually(t, "the notices", func() bool { return th.notes.Load() == 1 })
	th.pay.mu.Lock()
	defer th.pay.mu.Unlock()
	assert.Equal(t, map[string]int{"wallet/ada/1": 1}, th.pay.calls)
}

func TestRetriesThenTerminalFailure(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	w := th.wallets.Ref("bob")
	th.pay.mu.Lock()
	th.pay.failures["wallet/bob/1"] = 2 // succeeds on the third (last) attempt
	th.pay.mu.Unlock()
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "deposit", Amount: 100}))
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "payout", Amount: 10}))
	eventually(t, "the retried payout", func() bool { return query(t, w).Paid == 10 })

	th.pay.mu.Lock()
	th.pay.failAll = true
	th.pay.mu.Unlock()
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "payout", Amount: 20}))
	eventually(t, "the failure result and refund", func() bool { return query(t, w).Failed == 1 })
	s := query(t, w)
	assert.Equal(t, int64(90), s.Balance, "refunded")
	st := th.h.Stats()
	assert.GreaterOrEqual(t, st.ActionRetries, uint64(4))
	assert.Equal(t, uint64(1), st.ActionFailures)
}

func TestEntityToEntityDeliveryIsEffectivelyOnce(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	a, b := th.wallets.Ref("a"), th.wallets.Ref("b")
	require.NoError(t, a.Ask(ctx(t), walletIn{Op: "deposit", Amount: 100}))
	for i := 0; i < 10; i++ {
		require.NoError(t, a.Ask(ctx(t), walletIn{Op: "send", Amount: 5, To: "b"}))
	}
	eventually(t, "the transfers to settle", func() bool { return len(query(t, a).Pending) == 0 })
	assert.Equal(t, int64(50), query(t, a).Balance)
	assert.Equal(t, int64(50), query(t, b).Credited)
	assert.Equal(t, int64(50), query(t, b).Balance)
}

func TestDurableTimerFires(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	w := th.wallets.Ref("t")
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "remind", Delay: 20 * time.Millisecond}))
	assert.Equal(t, 0, query(t, w).Reminded)
	eventually(t, "the timer", func() bool { return query(t, w).Reminded == 1 })
}

func TestPanicInMachineIsAnErrorForThatInputOnly(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	w := th.wallets.Ref("p")
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "deposit", Amount: 7}))
	err := w.Ask(ctx(t), walletIn{Op: "boom"})
	assert.ErrorIs(t, err, machine.ErrPanic)
	assert.Equal(t, int64(7), query(t, w).Balance, "the entity lives on with its state")
}

func TestRestartReDrivesOutstandingActions(t *testing.T) {
	store := memstore.New()
	th := startHost(t, store, nil)
	th.pay.mu.Lock()
	th.pay.failAll = true // the payout cannot complete before the "crash"
	th.pay.mu.Unlock()
	w := th.wallets.Ref("crash")
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "deposit", Amount: 100}))
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "payout", Amount: 40}))
	require.NoError(t, th.h.Stop(ctx(t)))

	// A new host on the same store: it re-activates the entity eagerly (no
	// new message) and the payout, re-emitted by Restore, completes.
	th2 := startHost(t, store, nil)
	assert.Equal(t, uint64(1), th2.h.Stats().EagerActivations)
	eventually(t, "the re-driven payout", func() bool { return th2.h.Stats().Accepted >= 1 })
	w2 := th2.wallets.Ref("crash")
	eventually(t, "the payout to complete", func() bool { return query(t, w2).Paid == 40 })
	th2.pay.mu.Lock()
	defer th2.pay.mu.Unlock()
	assert.Equal(t, 1, th2.pay.calls["wallet/crash/1"], "same idempotency key after the restart")
}

func TestIdleEntitiesArePassivatedAndComeBack(t *testing.T) {
	th := startHost(t, memstore.New(), func(c *actor.Config) { c.IdleTimeout = 20 * time.Millisecond })
	for i := 0; i < 20; i++ {
		require.NoError(t, th.ctrs.Ref(fmt.Sprint("c", i)).Ask(ctx(t), counter.Input{Add: uint64(i + 1)}))
	}
	eventually(t, "passivation", func() bool { return th.h.Stats().Passivations >= 20 })
	for i := 0; i < 20; i++ {
		s, err := th.ctrs.Ref(fmt.Sprint("c", i)).Query(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, uint64(i+1), s.Value)
	}
	assert.GreaterOrEqual(t, th.h.Stats().Activations, uint64(40))
}

func TestActiveEntityCapEvictsLeastRecentlyUsed(t *testing.T) {
	th := startHost(t, memstore.New(), func(c *actor.Config) { c.MaxActiveEntities = 8; c.IdleTimeout = -1 })
	for i := 0; i < 100; i++ {
		require.NoError(t, th.ctrs.Ref(fmt.Sprint("c", i)).Ask(ctx(t), counter.Input{Add: 1}))
	}
	eventually(t, "evictions", func() bool { return th.h.Stats().Passivations >= 80 })
	for i := 0; i < 100; i++ {
		s, err := th.ctrs.Ref(fmt.Sprint("c", i)).Query(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, uint64(1), s.Value)
	}
}

func TestAppendFailureIsRetriedTransparently(t *testing.T) {
	store := memstore.New()
	th := startHost(t, store, nil)
	c := th.ctrs.Ref("f")
	require.NoError(t, c.Ask(ctx(t), counter.Input{Add: 1}))
	store.FailNextWrites(1, errors.New("disk on fire"))
	require.NoError(t, c.Ask(ctx(t), counter.Input{Add: 2}), "retried with the same request ID")
	store.FailNextWrites(1, errors.New("disk on fire"))
	err := c.Ask(ctx(t), counter.Input{Add: 4}, actor.WithoutRetry())
	assert.ErrorIs(t, err, actor.ErrUnavailable)
	s, err := c.Query(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), s.Value, "the failed append left no trace")
	assert.Equal(t, uint64(2), th.h.Stats().AppendFailures)
}

func TestBadCallsAreTypedErrors(t *testing.T) {
	th := startHost(t, memstore.New(), nil)
	_, err := actor.Lookup[walletState, walletIn](th.h, "nope", "x")
	assert.ErrorIs(t, err, actor.ErrUnknownKind)
	_, err = actor.Lookup[walletState, counter.Input](th.h, "wallet", "x")
	assert.ErrorIs(t, err, actor.ErrBadInput)
	r, err := actor.Lookup[walletState, walletIn](th.h, "wallet", "x")
	require.NoError(t, err)
	require.NoError(t, r.Ask(ctx(t), walletIn{Op: "deposit", Amount: 1}))
	require.NoError(t, th.h.Stop(ctx(t)))
	assert.ErrorIs(t, r.Ask(ctx(t), walletIn{Op: "deposit", Amount: 1}), actor.ErrStopped)
}

// gatedStore holds every append until the gate opens.
type gatedStore struct {
	*memstore.Store
	gate chan struct{}
}

func (g *gatedStore) AppendAsync(req persistence.AppendRequest, done func(error)) {
	go func() {
		<-g.gate
		g.Store.AppendAsync(req, done)
	}()
}

func TestOverloadIsAnError(t *testing.T) {
	g := &gatedStore{Store: memstore.New(), gate: make(chan struct{})}
	th := startHost(t, g, func(c *actor.Config) { c.MaxPendingRequests = 2 })
	c := th.ctrs.Ref("o")
	require.NoError(t, c.Tell(counter.Input{Add: 1})) // admitted; its append waits at the gate
	require.NoError(t, c.Tell(counter.Input{Add: 1})) // admitted; waits behind it
	err := c.Tell(counter.Input{Add: 1})
	require.ErrorIs(t, err, actor.ErrOverloaded, "a third pending request is refused, not queued")
	close(g.gate)
	eventually(t, "the two admitted inputs", func() bool {
		s, err := c.Query(ctx(t))
		return err == nil && s.Value == 2
	})
	assert.GreaterOrEqual(t, th.h.Stats().Overloaded, uint64(1))
}

func TestEntityMailboxIsBounded(t *testing.T) {
	g := &gatedStore{Store: memstore.New(), gate: make(chan struct{})}
	th := startHost(t, g, func(c *actor.Config) { c.MailboxLimit = 2 })
	c := th.ctrs.Ref("m")
	require.NoError(t, c.Tell(counter.Input{Add: 1})) // stepped; append at the gate
	eventually(t, "the first append to start", func() bool { return th.h.Stats().Appends == 1 })
	require.NoError(t, c.Tell(counter.Input{Add: 1})) // waits at the entity
	require.NoError(t, c.Tell(counter.Input{Add: 1})) // waits at the entity
	err := c.Ask(ctx(t), counter.Input{Add: 1}, actor.WithoutRetry())
	require.ErrorIs(t, err, actor.ErrOverloaded)
	close(g.gate)
	eventually(t, "the admitted inputs", func() bool {
		s, err := c.Query(ctx(t))
		return err == nil && s.Value == 3
	})
}

func TestConfigProblemsAreListedTogether(t *testing.T) {
	_, err := actor.New(actor.Config{Shards: -1, MailboxLimit: -2, Actions: actor.ActionConfig{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	for _, want := range []string{"Store is required", "Shards is -1", "MailboxLimit is -2", "InitialBackoff"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestClusterViewSourcesAreValidated(t *testing.T) {
	// A node follows its cluster.Node: seeds are for clients.
	_, err := actor.New(actor.Config{Store: memstore.New(), Cluster: &actor.ClusterConfig{Listen: "127.0.0.1:0", Seeds: []string{"127.0.0.1:1"}}})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	require.Contains(t, err.Error(), "Seeds is for clients")
	// A client needs exactly one source of views, and seeds that are addresses.
	_, err = actor.NewClient(actor.ClientConfig{ClusterConfig: actor.ClusterConfig{Listen: "127.0.0.1:0"}})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	require.Contains(t, err.Error(), "exactly one of View, Watch and Seeds")
	_, err = actor.NewClient(actor.ClientConfig{ClusterConfig: actor.ClusterConfig{Listen: "127.0.0.1:0", Seeds: []string{"nohost"},
		View: func() cluster.View { return cluster.View{} }}})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	require.Contains(t, err.Error(), "exactly one of View, Watch and Seeds")
	require.Contains(t, err.Error(), `Seeds: "nohost"`)
	_, err = actor.NewClient(actor.ClientConfig{ClusterConfig: actor.ClusterConfig{Listen: "127.0.0.1:0", Seeds: []string{"127.0.0.1:1"}}})
	require.NoError(t, err)
}

// loadFailStore fails the next loads with err, as a store whose database
// is unreachable does (or, with a corruption error, as a damaged one).
type loadFailStore struct {
	*memstore.Store
	mu    sync.Mutex
	fails int
	err   error
}

func (l *loadFailStore) failNextLoads(n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails, l.err = n, err
}

func (l *loadFailStore) Load(ctx context.Context, e machine.Entity) (persistence.Loaded, error) {
	l.mu.Lock()
	fail := l.fails > 0
	if fail {
		l.fails--
	}
	err := l.err
	l.mu.Unlock()
	if fail {
		return persistence.Loaded{}, err
	}
	return l.Store.Load(ctx, e)
}

func TestUnavailableStoreOnLoadIsRetriedTransparently(t *testing.T) {
	store := &loadFailStore{Store: memstore.New()}
	th := startHost(t, store, nil)
	down := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

	store.failNextLoads(3, down)
	c := th.ctrs.Ref("u")
	err := c.Ask(ctx(t), counter.Input{Add: 1}, actor.WithoutRetry())
	require.ErrorIs(t, err, actor.ErrUnavailable, "the store's trouble, not the entity's")
	require.NotErrorIs(t, err, actor.ErrEntityFailed)
	require.ErrorIs(t, err, down)
	require.NoError(t, c.Ask(ctx(t), counter.Input{Add: 2}), "retried until the store could be read")
	s, err := c.Query(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), s.Value, "the input refused while the store was down left no trace")

	// Corrupt data still fails the entity, and is not retried.
	store.failNextLoads(1, &persistence.CorruptionError{Entity: machine.Entity{Kind: "counter", ID: "v"}, Seq: 1, Where: "record", Reason: "bad checksum"})
	err = th.ctrs.Ref("v").Ask(ctx(t), counter.Input{Add: 1})
	require.ErrorIs(t, err, actor.ErrEntityFailed)
	require.NotErrorIs(t, err, actor.ErrUnavailable)
}
