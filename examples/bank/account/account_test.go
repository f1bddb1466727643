package account_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

type effects = machine.Effects[account.Action, machine.None]

// bank is a tiny hand-driven runtime for tests: accounts by name, a journal
// per account, and explicit delivery of entity-to-entity actions.
type bank struct {
	t       *testing.T
	kind    *account.Kind
	drivers map[string]*account.Driver
	records map[string][]machine.Record
	pending []delivery // RequestCredit actions not yet delivered
}

type delivery struct {
	from string
	t    machine.Tracked[account.Action]
}

func newBank(t *testing.T, names ...string) *bank {
	t.Helper()
	k, err := account.NewKind()
	require.NoError(t, err)
	b := &bank{t: t, kind: k, drivers: map[string]*account.Driver{}, records: map[string][]machine.Record{}}
	for _, n := range names {
		d, err := k.NewDriver(n)
		require.NoError(t, err)
		b.drivers[n] = d
	}
	return b
}

func (b *bank) step(name string, in account.In) machine.Outcome {
	b.t.Helper()
	var fx effects
	out, err := b.drivers[name].Step(in, &fx)
	require.NoError(b.t, err)
	for _, r := range fx.Records {
		// Keep a private copy: record payloads belong to the effects.
		rec, err := machine.DecodeRecord(r.AppendBinary(nil))
		require.NoError(b.t, err)
		b.records[name] = append(b.records[name], rec)
	}
	for _, t := range fx.Tracked {
		b.pending = append(b.pending, delivery{from: name, t: t})
	}
	return out
}

func (b *bank) send(name string, v account.Input) machine.Outcome {
	b.t.Helper()
	return b.step(name, account.In{Value: v})
}

// deliver delivers pending action i to its destination (with the
// idempotency key as request ID) and, when reply is set, the reply back to
// the source.
func (b *bank) deliver(i int, reply bool) (machine.Outcome, account.Result) {
	b.t.Helper()
	p := b.pending[i]
	key := machine.IdempotencyKey(machine.Entity{Kind: account.KindName, ID: p.from}, p.t.ID)
	out := b.step(p.t.Action.To, account.In{RequestID: key, Value: account.CreditInput(p.from, p.t)})
	res := account.CreditResult(out.Err)
	if reply {
		b.step(p.from, account.In{Completion: &machine.Completion[account.Result]{ActionID: p.t.ID, Result: res}})
	}
	return out, res
}

func (b *bank) state(name string) *account.State { return b.drivers[name].State() }

func TestTransferSettles(t *testing.T) {
	b := newBank(t, "alice", "bob")
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 10_000})
	out := b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 2_500, To: "bob", Ref: 7})
	require.Equal(t, machine.Accepted, out.Status)
	assert.Equal(t, int64(7_500), b.state("alice").BalanceCents)
	assert.Equal(t, int64(2_500), b.state("alice").HeldCents)
	require.Len(t, b.pending, 1)
	assert.Equal(t, account.Action{Kind: account.RequestCredit, To: "bob", AmountCents: 2_500, Ref: 7}, b.pending[0].t.Action)

	_, res := b.deliver(0, true)
	assert.True(t, res.Credited)
	assert.Equal(t, int64(2_500), b.state("bob").BalanceCents)
	assert.Equal(t, int64(0), b.state("alice").HeldCents)
	assert.Equal(t, int64(2_500), b.state("alice").Totals.DebitedCents)
	assert.Equal(t, []account.TransferRecord{{Ref: 7, Peer: "alice", TransferID: 1, AmountCents: 2_500, Outcome: account.Credited}}, b.state("bob").RecentRecords())
	assert.Equal(t, account.Settled, b.state("alice").RecentRecords()[0].Outcome)
}

// TestSettledListEncodesAsEmpty: once every transfer has settled, the
// emptied Outgoing list (kept for the next transfer when small, released
// when large) encodes as the nil list a decoded state has, and copies and
// decodes to an equal encoding.
func TestSettledListEncodesAsEmpty(t *testing.T) {
	for _, n := range []int{1, 2, 4, 5, 64} {
		b := newBank(t, "alice", "bob")
		b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 10_000})
		for range n {
			require.Equal(t, machine.Accepted, b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 1, To: "bob"}).Status)
		}
		for i := range b.pending {
			b.deliver(i, true)
		}
		s := b.state("alice")
		require.Empty(t, s.Outgoing)
		if n > 4 {
			assert.Nil(t, s.Outgoing, "a large emptied list is released")
		}
		enc, err := account.StateCodec{}.Append(nil, s)
		require.NoError(t, err)
		var decoded, copied account.State
		require.NoError(t, account.StateCodec{}.Decode(enc, &decoded))
		assert.Nil(t, decoded.Outgoing)
		account.CloneState(&copied, s)
		for _, v := range []*account.State{&decoded, &copied} {
			again, err := account.StateCodec{}.Append(nil, v)
			require.NoError(t, err)
			assert.Equal(t, enc, again)
		}
		// The kept list serves the next transfer, and the committed copy
		// (the driver's rollback state) stays separate from it.
		require.Equal(t, machine.Accepted, b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 1, To: "bob"}).Status)
		require.Len(t, b.state("alice").Outgoing, 1)
		require.Equal(t, machine.Rejected, b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 1 << 50, To: "bob"}).Status)
		require.Len(t, b.state("alice").Outgoing, 1)
	}
}

func TestDuplicateDeliveryCreditsOnce(t *testing.T) {
	b := newBank(t, "alice", "bob")
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 1_000})
	b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 400, To: "bob"})
	first, _ := b.deliver(0, false)
	assert.Equal(t, machine.Accepted, first.Status)
	again, res := b.deliver(0, true)
	assert.Equal(t, machine.Duplicate, again.Status, "answered from the request window")
	assert.True(t, res.Credited)
	assert.Equal(t, int64(400), b.state("bob").BalanceCents)

	// Beyond the request window, the account's own memory recognises it.
	p := b.pending[0]
	out := b.send("bob", account.CreditInput("alice", p.t))
	assert.ErrorIs(t, out.Err, account.ErrAlreadyCredited)
	assert.True(t, account.CreditResult(out.Err).Credited)
	assert.Equal(t, int64(400), b.state("bob").BalanceCents)
}

func TestCreditToClosedAccountIsRefunded(t *testing.T) {
	b := newBank(t, "alice", "bob")
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 1_000})
	require.Equal(t, machine.Accepted, b.send("bob", account.Input{Kind: account.Close}).Status)
	b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 300, To: "bob"})
	out, res := b.deliver(0, true)
	assert.ErrorIs(t, out.Err, account.ErrClosed)
	assert.False(t, res.Credited)
	assert.Equal(t, "bank.closed", res.Code)
	a := b.state("alice")
	assert.Equal(t, int64(1_000), a.BalanceCents)
	assert.Zero(t, a.HeldCents)
	assert.Equal(t, int64(300), a.Totals.RefundedCents)
	assert.Zero(t, b.state("bob").BalanceCents, "a rejected credit changes nothing at bob")
}

func TestBadInputsAreTypedErrors(t *testing.T) {
	b := newBank(t, "alice")
	cases := []struct {
		in   account.Input
		want error
	}{
		{account.Input{Kind: account.Deposit, AmountCents: 0}, account.ErrBadAmount},
		{account.Input{Kind: account.Deposit, AmountCents: account.MaxAmountCents + 1}, account.ErrBadAmount},
		{account.Input{Kind: account.Withdraw, AmountCents: 5}, account.ErrInsufficientFunds},
		{account.Input{Kind: account.Transfer, AmountCents: 5}, account.ErrNoDestination},
		{account.Input{Kind: account.Transfer, AmountCents: 5, To: "bob"}, account.ErrInsufficientFunds},
		{account.Input{Kind: account.Credit, AmountCents: 5}, account.ErrNoSource},
		{account.Input{Kind: 42}, account.ErrUnknownInput},
	}
	for _, c := range cases {
		out := b.send("alice", c.in)
		assert.Equal(t, machine.Rejected, out.Status, "%+v", c.in)
		assert.ErrorIs(t, out.Err, c.want, "%+v", c.in)
		var me *machine.Error
		assert.True(t, errors.As(out.Err, &me))
	}
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 5})
	assert.ErrorIs(t, b.send("alice", account.Input{Kind: account.Close}).Err, account.ErrNotEmpty)
	full := account.State{BalanceCents: account.MaxBalanceCents, Totals: account.Totals{DepositedCents: account.MaxBalanceCents}}
	err := account.Machine{}.Transition(&full, account.In{Value: account.Input{Kind: account.Deposit, AmountCents: 1}}, machine.NewActions[account.Action, machine.None](0))
	assert.ErrorIs(t, err, account.ErrTooMuch)
	// A completion for nothing in flight is a typed error too (the driver
	// never delivers one; calling the machine directly shows it).
	var s account.State
	err = account.Machine{}.Transition(&s, account.In{Completion: &machine.Completion[account.Result]{ActionID: 9}}, machine.NewActions[account.Action, machine.None](0))
	assert.ErrorIs(t, err, account.ErrUnexpectedCompletion)
}

func TestTooManyTransfersInFlight(t *testing.T) {
	b := newBank(t, "alice")
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 1_000})
	for range account.MaxOutgoing {
		require.Equal(t, machine.Accepted, b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 1, To: "bob"}).Status)
	}
	assert.ErrorIs(t, b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 1, To: "bob"}).Err, account.ErrTooManyTransfers)
}

func TestCrashRestoresTheCreditRequests(t *testing.T) {
	b := newBank(t, "alice", "bob")
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 1_000})
	b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 100, To: "bob"})
	b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 200, To: "bob"})
	b.deliver(0, false) // credited at bob, reply lost in the crash

	d, err := b.kind.Recover("alice", nil, b.records["alice"])
	require.NoError(t, err)
	var fx effects
	rep, err := d.Restore(&fx)
	require.NoError(t, err)
	assert.True(t, rep.Complete())
	require.Len(t, fx.Tracked, 2)
	assert.Equal(t, []machine.ActionID{1, 2}, []machine.ActionID{fx.Tracked[0].ID, fx.Tracked[1].ID}, "under the original IDs")
	b.drivers["alice"] = d
	b.pending = nil
	for _, t := range fx.Tracked {
		b.pending = append(b.pending, delivery{from: "alice", t: t})
	}
	b.deliver(0, true)
	b.deliver(1, true)
	assert.Equal(t, int64(300), b.state("bob").BalanceCents, "each credited once")
	assert.Equal(t, int64(700), b.state("alice").BalanceCents)
	assert.Zero(t, b.state("alice").HeldCents)
}

func TestBankSimulation(t *testing.T) {
	k, err := account.NewKind()
	require.NoError(t, err)
	scenarios := []struct {
		name  string
		model *account.Model
		cfg   sim.Config
	}{
		{"many accounts", &account.Model{}, sim.Config{Seeds: []uint64{1, 2, 3}, Steps: 12_000, Entities: 32, Faults: sim.DefaultFaults}},
		{"hot destinations", &account.Model{HotAccounts: 2, DepositProb: 0.3}, sim.Config{Seeds: []uint64{4, 5}, Steps: 12_000, Entities: 8, Faults: sim.DefaultFaults}},
		{"closings and heavy faults", &account.Model{CloseProb: 0.02, WithdrawProb: 0.15}, sim.Config{Seeds: []uint64{6, 7}, Steps: 10_000, Entities: 64, Faults: sim.Faults{
			CrashProb: 0.03, DelayMaxSteps: 40, DuplicateProb: 0.3, LoseProb: 0.1, TimeoutSteps: 30, LateAfterCrashProb: 0.5, RetryProb: 0.05, RequestIDProb: 0.5,
		}}},
	}
	var mu sync.Mutex
	var total sim.Report
	start := time.Now()
	t.Run("scenarios", func(t *testing.T) {
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				cfg := sc.cfg
				cfg.Steps = scaled(cfg.Steps)
				cfg.EntityID = account.AccountName
				t.Logf("seeds %v, %d steps, %d accounts", cfg.Seeds, cfg.Steps, cfg.Entities)
				s, err := sim.New(k, sim.Model[account.State, account.Input, account.Action, account.Result, machine.None](sc.model), cfg)
				require.NoError(t, err)
				began := time.Now()
				rep, err := s.RunAll()
				require.NoError(t, err)
				t.Logf("scenario %s: %d operations in %s: %s", sc.name, rep.Operations, time.Since(began).Round(time.Millisecond), rep)
				assert.Positive(t, rep.Crashes)
				assert.Positive(t, rep.EntityDeliveries)
				assert.Positive(t, rep.DuplicateDeliveries)
				assert.Positive(t, rep.Duplicates, "deliveries answered from request windows")
				mu.Lock()
				total.Add(rep)
				mu.Unlock()
			})
		}
	})
	t.Log(total.Summary(time.Since(start)))
}

// lyingAdapter is a broken runtime adapter: it reports every delivery as
// credited, even when the destination rejected it (a closed account), so
// the source settles instead of refunding and money disappears.
type lyingAdapter struct{ *account.Model }

func (lyingAdapter) Reply(machine.Tracked[account.Action], error) account.Result {
	return account.Result{Credited: true}
}

func TestHistoryCatchesMoneyDestroyed(t *testing.T) {
	k, err := account.NewKind()
	require.NoError(t, err)
	model := lyingAdapter{&account.Model{CloseProb: 0.05, WithdrawProb: 0.2}}
	cfg := sim.Config{Seeds: []uint64{11, 12, 13}, Steps: 5_000, Entities: 8, Faults: sim.DefaultFaults, EntityID: account.AccountName}
	s, err := sim.New(k, sim.Model[account.State, account.Input, account.Action, account.Result, machine.None](model), cfg)
	require.NoError(t, err)
	_, err = s.RunAll()
	var f *sim.Failure
	require.True(t, errors.As(err, &f), "want a *sim.Failure, got %v", err)
	t.Log(f)
	assert.Equal(t, "world-invariant", f.Check)
	assert.Contains(t, f.Err.Error(), "never credited at its destination")
	assert.NotEmpty(t, f.Trace)
	_, again := s.Run(f.Seed)
	var f2 *sim.Failure
	require.True(t, errors.As(again, &f2), "seed %d reproduces", f.Seed)
	assert.Equal(t, f.Check, f2.Check)
}

func TestCodecsRoundTripAndRejectGarbage(t *testing.T) {
	b := newBank(t, "alice", "bob")
	b.send("alice", account.Input{Kind: account.Deposit, AmountCents: 1_000})
	b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 300, To: "bob", Ref: 5})
	b.send("alice", account.Input{Kind: account.Transfer, AmountCents: 200, To: "bob", Ref: 6})
	b.deliver(0, true)
	var c account.StateCodec
	enc, err := c.Append(nil, b.state("alice"))
	require.NoError(t, err)
	var s account.State
	require.NoError(t, c.Decode(enc, &s))
	assert.Equal(t, *b.state("alice"), s)
	again, err := c.Append(nil, &s)
	require.NoError(t, err)
	assert.Equal(t, enc, again)
	for cut := range len(enc) {
		assert.ErrorIs(t, c.Decode(enc[:cut], &s), machine.ErrCorrupt)
	}
	assert.ErrorIs(t, c.Decode(append(enc, 0), &s), machine.ErrCorrupt)

	in := account.CreditInput("alice", b.pending[1].t)
	var ic account.InputCodec
	ib, _ := ic.Append(nil, &in)
	var in2 account.Input
	require.NoError(t, ic.Decode(ib, &in2))
	assert.Equal(t, in, in2)
	var rc account.ResultCodec
	res := account.Result{Code: "bank.closed"}
	rb, _ := rc.Append(nil, &res)
	var res2 account.Result
	require.NoError(t, rc.Decode(rb, &res2))
	assert.Equal(t, res, res2)
	assert.ErrorIs(t, rc.Decode([]byte{2, 0}, &res2), machine.ErrCorrupt)
}
