package account

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// AccountName is the entity ID of account i in simulations ("acct-007");
// use it as sim.Config.EntityID so traces read well.
func AccountName(i int) string { return fmt.Sprintf("acct-%03d", i) }

// AccountIndex parses a name made by AccountName.
func AccountIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "acct-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || AccountName(i) != name {
		return 0, false
	}
	return i, true
}

// World is the simulated bank.
type World = sim.World[State, Input, Action, Result, machine.None]

// Model drives many accounts in simulation: deposits, withdrawals,
// transfers between random accounts (delivered entity to entity through
// sim.Router, so deliveries and replies are lost, duplicated, delayed and
// reordered), occasional closings, and invalid inputs.
//
// It also keeps a history of every accepted input (sim.Observer) and checks
// after every step, independently of the machine's own bookkeeping:
//   - conservation: the sum of balances and holds, minus the credits
//     already applied whose source has not settled yet, equals the money
//     deposited minus the money withdrawn;
//   - exactly once: each transfer is credited at most once at its
//     destination, settled only if it was credited, refunded only if it
//     was not, and finished at most once at its source;
//   - once quiesced (CheckFinal): every transfer is finished on both sides,
//     nothing is held anywhere, and debits match credits.
//
// A Model keeps that history, so it is used through a pointer, by one
// simulator at a time; it resets itself at the start of every run (and
// every replay). Zero knobs mean their defaults.
type Model struct {
	// DepositProb, WithdrawProb, CloseProb and InvalidProb are the chances
	// an input is a deposit (default 0.2), a withdrawal (0.05), a close
	// attempt (0.002) or a deliberately invalid input (0.02); the rest are
	// transfers.
	DepositProb  float64
	WithdrawProb float64
	CloseProb    float64
	InvalidProb  float64
	// MaxAmountCents bounds generated amounts (default 10_000).
	MaxAmountCents int64
	// HotAccounts, when positive, sends transfers only to the first
	// HotAccounts accounts (contention on a few destinations).
	HotAccounts int

	h history
}

type transferKey struct {
	from int
	id   machine.ActionID
}

// history is what the model saw accepted during one run.
type history struct {
	world     *World
	external  int64                 // deposited minus withdrawn
	credited  map[transferKey]int64 // credits applied at destinations
	finished  map[transferKey]bool  // transfers settled or refunded at sources
	unsettled int64                 // credited amounts whose source still holds them
	transfers uint64
	violation error
}

var (
	_ sim.Model[State, Input, Action, Result, machine.None]        = (*Model)(nil)
	_ sim.Router[Input, Action, Result]                            = (*Model)(nil)
	_ sim.Observer[Input, Result]                                  = (*Model)(nil)
	_ sim.WorldChecker[State, Input, Action, Result, machine.None] = (*Model)(nil)
	_ sim.FinalChecker[State, Input, Action, Result, machine.None] = (*Model)(nil)
)

func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// Input generates the next client input.
func (m *Model) Input(r *rand.Rand, w *World) (int, Input) {
	n := w.Entities()
	e := r.IntN(n)
	maxAmt := m.MaxAmountCents
	if maxAmt <= 0 {
		maxAmt = 10_000
	}
	amount := 1 + r.Int64N(maxAmt)
	ref := uint64(w.Ops()) + 1
	x := r.Float64()
	dep := orDefault(m.DepositProb, 0.2)
	wd := orDefault(m.WithdrawProb, 0.05)
	cl := orDefault(m.CloseProb, 0.002)
	inv := orDefault(m.InvalidProb, 0.02)
	switch {
	case x < inv:
		switch r.IntN(5) {
		case 0:
			return e, Input{Kind: Deposit, AmountCents: -amount}
		case 1:
			return e, Input{Kind: Transfer, AmountCents: amount}
		case 2:
			return e, Input{Kind: Transfer, AmountCents: w.State(e).BalanceCents + amount, To: AccountName(r.IntN(n))}
		case 3:
			return e, Input{Kind: Withdraw, AmountCents: 0}
		default:
			return e, Input{Kind: 99}
		}
	case x < inv+dep:
		return e, Input{Kind: Deposit, AmountCents: amount}
	case x < inv+dep+wd:
		if b := w.State(e).BalanceCents; b > 0 && r.IntN(4) == 0 {
			amount = b // empty it, so it can be closed
		}
		return e, Input{Kind: Withdraw, AmountCents: amount}
	case x < inv+dep+wd+cl:
		return e, Input{Kind: Close}
	}
	to := r.IntN(n)
	if m.HotAccounts > 0 {
		to = r.IntN(min(m.HotAccounts, n))
	}
	if b := w.State(e).BalanceCents; b > 0 {
		amount = 1 + r.Int64N(min(b, maxAmt))
	}
	return e, Input{Kind: Transfer, AmountCents: amount, To: AccountName(to), Ref: ref}
}

// Result answers an action that is not routed to another account: only a
// RequestCredit to an account that does not exist in the simulation.
func (*Model) Result(_ *rand.Rand, _ int, _ machine.Tracked[Action]) Result {
	return Result{Credited: false, Code: "bank.no_such_account"}
}

// Failure is never needed for routed actions (the runtime retries them
// until a reply comes); for an unknown destination it is a rejection.
func (*Model) Failure(machine.Tracked[Action]) Result {
	return Result{Credited: false, Code: "bank.no_such_account"}
}

// Route delivers RequestCredit to its destination as a Credit input.
func (*Model) Route(from int, a machine.Tracked[Action]) (int, Input, bool) {
	if a.Action.Kind != RequestCredit {
		return 0, Input{}, false
	}
	to, ok := AccountIndex(a.Action.To)
	if !ok {
		return 0, Input{}, false
	}
	return to, CreditInput(AccountName(from), a), true
}

// Reply turns the destination's reply into the source's result.
func (*Model) Reply(_ machine.Tracked[Action], err error) Result { return CreditResult(err) }

// Observe records what each account accepted, and notes the first
// violation of exactly-once it sees (reported by the next CheckWorld or by
// CheckFinal).
func (m *Model) Observe(e int, in machine.Input[Input, Result], out machine.Outcome) {
	h := &m.h
	if out.Status != machine.Accepted {
		return
	}
	violate := func(format string, args ...any) {
		if h.violation == nil {
			h.violation = fmt.Errorf(format, args...)
		}
	}
	defer func() {
		if err := h.conserved(); err != nil && h.violation == nil {
			h.violation = err
		}
	}()
	if c := in.Completion; c != nil {
		key := transferKey{from: e, id: c.ActionID}
		if h.finished[key] {
			violate("transfer %s finished twice at its source", keyName(key))
		}
		h.finished[key] = true
		amount, credited := h.credited[key]
		switch {
		case c.Result.Credited && !credited:
			violate("transfer %s settled at its source but never credited at its destination: money destroyed", keyName(key))
		case !c.Result.Credited && credited:
			violate("transfer %s refunded at its source but credited at its destination: money created", keyName(key))
		case credited:
			h.unsettled -= amount
		}
		return
	}
	v := in.Value
	switch v.Kind {
	case Deposit:
		h.external += v.AmountCents
	case Withdraw:
		h.external -= v.AmountCents
	case Transfer:
		h.transfers++
	case Credit:
		from, ok := AccountIndex(v.From)
		if !ok {
			violate("credit from unknown account %q", v.From)
			return
		}
		key := transferKey{from: from, id: v.TransferID}
		if _, dup := h.credited[key]; dup {
			violate("transfer %s credited twice at its destination %s", keyName(key), AccountName(e))
		}
		if h.finished[key] {
			violate("transfer %s credited after its source had finished it", keyName(key))
		}
		h.credited[key] = v.AmountCents
		h.unsettled += v.AmountCents
	}
}

func keyName(k transferKey) string {
	return machine.IdempotencyKey(machine.Entity{Kind: KindName, ID: AccountName(k.from)}, k.id)
}

// CheckWorld reports the first violation the history has seen. It also
// notices a new run (or replay) and resets the history: the simulator
// calls it for every entity before the first step of each run.
//
// The simulator calls observers after its checks, so conservation is
// checked in Observe (as soon as the history includes the step), and a
// violation found there is reported here at the next step or by
// CheckFinal.
func (m *Model) CheckWorld(w *World) error {
	h := &m.h
	if h.world != w {
		*h = history{world: w, credited: map[transferKey]int64{}, finished: map[transferKey]bool{}}
	}
	return h.violation
}

// conserved checks that the sum of balances and holds, minus the credits
// applied whose source still holds the amount, equals the money deposited
// minus the money withdrawn.
func (h *history) conserved() error {
	if h.world == nil {
		return nil
	}
	var sum int64
	for e := range h.world.Entities() {
		s := h.world.State(e)
		sum += s.BalanceCents + s.HeldCents
	}
	if sum-h.unsettled != h.external {
		return fmt.Errorf("money not conserved: balances and holds %d - credited but unsettled %d = %d, but deposits minus withdrawals are %d",
			sum, h.unsettled, sum-h.unsettled, h.external)
	}
	return nil
}

// CheckFinal checks the quiesced bank: every transfer finished on both
// sides, nothing held, debits equal to credits.
func (m *Model) CheckFinal(w *World) error {
	if err := m.CheckWorld(w); err != nil {
		return err
	}
	h := &m.h
	if err := h.conserved(); err != nil {
		return err
	}
	var errs []error
	if h.unsettled != 0 {
		errs = append(errs, fmt.Errorf("%d cents credited at destinations but not settled at their sources", h.unsettled))
	}
	for key := range h.credited {
		if !h.finished[key] {
			errs = append(errs, fmt.Errorf("transfer %s credited but never settled", keyName(key)))
			break
		}
	}
	var debited, credited, balances int64
	var debits, credits, transfers uint64
	for e := range w.Entities() {
		s := w.State(e)
		if s.HeldCents != 0 || len(s.Outgoing) != 0 {
			errs = append(errs, fmt.Errorf("account %s still holds %d cents for %d transfers", w.EntityID(e), s.HeldCents, len(s.Outgoing)))
		}
		debited += s.Totals.DebitedCents
		credited += s.Totals.CreditedCents
		debits += s.Totals.Debits
		credits += s.Totals.Credits
		transfers += s.Totals.Transfers
		balances += s.BalanceCents
	}
	if debited != credited || debits != credits {
		errs = append(errs, fmt.Errorf("debited %d cents in %d transfers, but credited %d cents in %d", debited, debits, credited, credits))
	}
	if balances != h.external {
		errs = append(errs, fmt.Errorf("balances add up to %d, deposits minus withdrawals to %d", balances, h.external))
	}
	if transfers != h.transfers {
		errs = append(errs, fmt.Errorf("accounts count %d transfers, the history %d", transfers, h.transfers))
	}
	return errors.Join(errs...)
}
