package actor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
)

// Inputs reach active entities directly while their shard passivates and
// re-activates them all the time (a tiny cap and idle timeout). Nothing
// may be lost (an input sent to an actor that has stopped would never be
// answered) and one sender's inputs keep their order across the switches
// between the direct path and the shard's: each goroutine Tells a deposit
// into its own empty account and then withdraws it, which fails if the
// withdrawal overtakes the deposit.
func TestDirectSendsKeepOrderAndSurvivePassivation(t *testing.T) {
	store := memstore.New()
	h, err := actor.New(actor.Config{Store: store, Shards: 4, MaxActiveEntities: 4, IdleTimeout: time.Millisecond})
	require.NoError(t, err)
	bank, err := registerBank(h, account.Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, h.Start(ctx))
	defer h.Stop(context.Background())

	const senders, rounds = 16, 150
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := bank.Ref(fmt.Sprint("own-", g))
			shared := bank.Ref(fmt.Sprint("shared-", g%3))
			for i := 0; i < rounds; i++ {
				if err := own.Tell(account.Input{Kind: account.Deposit, AmountCents: 5}); err != nil {
					errs <- fmt.Errorf("sender %d round %d: tell: %w", g, i, err)
					return
				}
				actx, acancel := context.WithTimeout(ctx, 10*time.Second)
				err := own.Ask(actx, account.Input{Kind: account.Withdraw, AmountCents: 5})
				if err == nil {
					err = shared.Ask(actx, account.Input{Kind: account.Deposit, AmountCents: 1})
				}
				acancel()
				if err != nil {
					errs <- fmt.Errorf("sender %d round %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total int64
	for i := 0; i < 3; i++ {
		s, err := bank.Ref(fmt.Sprint("shared-", i)).Query(ctx)
		require.NoError(t, err)
		total += s.BalanceCents
	}
	assert.Equal(t, int64(senders*rounds), total, "every deposit to the shared accounts applied once")
	assert.Greater(t, h.Stats().Passivations, uint64(100), "the entities were passivated over and over")
}

// slowAppendStore holds the first append of one entity for a while.
type slowAppendStore struct {
	*memstore.Store
	slow  machine.Entity
	delay time.Duration
	once  sync.Once
}

func (s *slowAppendStore) AppendAsync(req persistence.AppendRequest, done func(error)) {
	held := false
	if req.Entity == s.slow {
		s.once.Do(func() { held = true })
	}
	if !held {
		s.Store.AppendAsync(req, done)
		return
	}
	time.AfterFunc(s.delay, func() { s.Store.AppendAsync(req, done) })
}

// The first attempt of a delivery goes straight from the committing entity
// to its target with a timer: a target slower than the attempt timeout
// counts as a failed attempt, the delivery is retried with the same
// request ID, and the target applies it once.
func TestSlowDeliveryTargetTimesOutAndIsAppliedOnce(t *testing.T) {
	store := &slowAppendStore{Store: memstore.New(), slow: machine.Entity{Kind: "wallet", ID: "b"}, delay: 300 * time.Millisecond}
	th := startHost(t, store, func(c *actor.Config) { c.Actions.AttemptTimeout = 50 * time.Millisecond })
	a, b := th.wallets.Ref("a"), th.wallets.Ref("b")
	require.NoError(t, a.Ask(ctx(t), walletIn{Op: "deposit", Amount: 100}))
	require.NoError(t, a.Ask(ctx(t), walletIn{Op: "send", Amount: 30, To: "b"}))
	eventually(t, "the transfer to settle", func() bool { return len(query(t, a).Pending) == 0 })
	assert.GreaterOrEqual(t, th.h.Stats().ActionRetries, uint64(1), "the slow first attempt timed out and was retried")
	assert.Equal(t, int64(70), query(t, a).Balance)
	assert.Equal(t, int64(30), query(t, b).Credited, "applied once")
	assert.Equal(t, int64(30), query(t, b).Balance)
}

// Config.Clock stamps inputs; it does not judge callers' deadlines, which
// are real time (a clock set far ahead must not expire every request).
func TestDeadlinesAreRealTimeWhateverTheClock(t *testing.T) {
	future := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	th := startHost(t, memstore.New(), func(c *actor.Config) { c.Clock = func() time.Time { return future } })
	require.NoError(t, th.ctrs.Ref("c").Ask(ctx(t), counter.Input{Add: 1}))
	a, b := th.wallets.Ref("a"), th.wallets.Ref("b")
	require.NoError(t, a.Ask(ctx(t), walletIn{Op: "deposit", Amount: 10}))
	require.NoError(t, a.Ask(ctx(t), walletIn{Op: "send", Amount: 4, To: "b"}))
	eventually(t, "the delivery to settle", func() bool { return len(query(t, a).Pending) == 0 })
	assert.Equal(t, int64(4), query(t, b).Balance)
}
