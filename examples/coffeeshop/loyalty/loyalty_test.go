package loyalty_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/coffeeshop/loyalty"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

type driver = machine.Driver[loyalty.State, loyalty.Input, loyalty.Action, loyalty.Result, loyalty.Notice]

func newCustomer(t *testing.T) (*driver, *machine.Effects[loyalty.Action, loyalty.Notice]) {
	t.Helper()
	k, err := loyalty.NewKind()
	require.NoError(t, err)
	d, err := k.NewDriver("ada")
	require.NoError(t, err)
	return d, &machine.Effects[loyalty.Action, loyalty.Notice]{}
}

func send(t *testing.T, d *driver, fx *machine.Effects[loyalty.Action, loyalty.Notice], in loyalty.In) machine.Outcome {
	t.Helper()
	out, err := d.Step(in, fx)
	require.NoError(t, err)
	return out
}

func buy(cents int64) loyalty.In {
	return loyalty.In{Value: loyalty.Input{Kind: loyalty.Purchase, AmountCents: cents}}
}

func redeem(points int64) loyalty.In {
	return loyalty.In{Value: loyalty.Input{Kind: loyalty.Redeem, Points: points, Reward: "latte"}}
}

func till(id machine.ActionID, ok bool) loyalty.In {
	return loyalty.In{Completion: &machine.Completion[loyalty.Result]{ActionID: id, Result: loyalty.Result{OK: ok}}}
}

func TestRedemptionLocksPointsUntilTheTillAnswers(t *testing.T) {
	d, fx := newCustomer(t)
	send(t, d, fx, buy(3000))
	assert.Equal(t, int64(30), d.State().Points)
	send(t, d, fx, redeem(20))
	assert.Equal(t, int64(10), d.State().Points)
	assert.Equal(t, int64(20), d.State().Locked)
	require.Len(t, fx.Tracked, 1)
	assert.Equal(t, loyalty.RedeemReward, fx.Tracked[0].Action.Kind)

	assert.ErrorIs(t, send(t, d, fx, redeem(5)).Err, loyalty.ErrRedemptionPending, "one at a time")
	send(t, d, fx, till(1, true))
	assert.Equal(t, int64(10), d.State().Points)
	assert.Equal(t, int64(0), d.State().Locked)
	assert.Equal(t, int64(20), d.State().Redeemed)
}

func TestFailedRedemptionReturnsThePoints(t *testing.T) {
	d, fx := newCustomer(t)
	send(t, d, fx, buy(1000))
	send(t, d, fx, redeem(10))
	send(t, d, fx, till(1, false))
	assert.Equal(t, int64(10), d.State().Points)
	assert.Zero(t, d.State().Locked)
	assert.Nil(t, d.State().Pending)
}

func TestBadInputsAreTypedErrors(t *testing.T) {
	d, fx := newCustomer(t)
	assert.ErrorIs(t, send(t, d, fx, buy(0)).Err, loyalty.ErrBadAmount)
	assert.ErrorIs(t, send(t, d, fx, redeem(0)).Err, loyalty.ErrBadPoints)
	assert.ErrorIs(t, send(t, d, fx, redeem(1)).Err, loyalty.ErrInsufficientPoints)
	assert.ErrorIs(t, send(t, d, fx, loyalty.In{Value: loyalty.Input{Kind: 99}}).Err, loyalty.ErrUnknownInput)
}

func TestCrashRestoresAStatusCheck(t *testing.T) {
	d, fx := newCustomer(t)
	send(t, d, fx, buy(1000))
	send(t, d, fx, redeem(10))
	k := d.Kind()
	r, err := k.Recover("ada", nil, fx.Records)
	require.NoError(t, err)
	var after machine.Effects[loyalty.Action, loyalty.Notice]
	rep, err := r.Restore(&after)
	require.NoError(t, err)
	assert.True(t, rep.Complete())
	require.Len(t, after.Tracked, 1)
	assert.Equal(t, machine.ActionID(1), after.Tracked[0].ID, "under the original ID")
	assert.Equal(t, loyalty.CheckStatus, after.Tracked[0].Action.Kind, "a status check, never a second redemption")
}

func TestLoyaltySimulation(t *testing.T) {
	k, err := loyalty.NewKind()
	require.NoError(t, err)
	scenarios := []struct {
		name  string
		model loyalty.Model
		cfg   sim.Config
	}{
		{"mixed", loyalty.Model{}, sim.Config{Seeds: []uint64{1, 2, 3, 4}, Steps: 20000, Entities: 6, Faults: sim.DefaultFaults}},
		{"redeem-heavy declines", loyalty.Model{RedeemProb: 0.8, DeclineProb: 0.6}, sim.Config{Seeds: []uint64{5, 6, 7}, Steps: 20000, Entities: 2, Faults: sim.DefaultFaults}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			s, err := sim.New(k, sim.Model[loyalty.State, loyalty.Input, loyalty.Action, loyalty.Result, loyalty.Notice](sc.model), sc.cfg)
			require.NoError(t, err)
			start := time.Now()
			rep, err := s.RunAll()
			require.NoError(t, err)
			t.Log(rep.Summary(time.Since(start)))
			assert.Positive(t, rep.Crashes)
			assert.Positive(t, rep.Stale)
		})
	}
}
