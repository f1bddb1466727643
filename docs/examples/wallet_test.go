package examples_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// The wallet is the machine the rules page is written around: it is
// correct, and each WRONG machine in rules_test.go embeds it and breaks one
// rule.

// snippet: wallet-types
// State is one wallet.
type State struct {
	Balance   int64                      // cents available to spend
	Declined  int                        // top-ups the card declined
	Next      machine.ActionID           // the action-ID counter (rule 4)
	Pending   map[machine.ActionID]int64 // top-ups being charged, by action ID (rule 5)
	LastSpend time.Time                  // when the wallet was last spent from (rule 8)
}

// Input is a request to the wallet.
type Input struct {
	TopUp int64 // charge the card this many cents, then credit them
	Spend int64 // spend this many cents
	Audit bool  // send a notice per pending top-up
}

// Charge is the tracked action: charge the card.
type Charge struct {
	Cents int64
	Check bool // a status check of an earlier charge, emitted by Restore
}

// Paid is the card network's answer to a Charge.
type Paid struct {
	OK    bool
	Cents int64
}

// Notice is the untracked action: a message to the owner.
type Notice struct {
	ID    machine.ActionID
	Cents int64
}

type (
	In  = machine.Input[Input, Paid]
	Out = machine.Actions[Charge, Notice]
)

var (
	ErrBadInput      = machine.NewError("wallet.bad_input", "wallet: nothing to do")
	ErrInsufficient  = machine.NewError("wallet.insufficient", "wallet: insufficient funds")
	ErrUnknownCharge = machine.NewError("wallet.unknown_charge", "wallet: no such charge")
)

// endsnippet

// snippet: wallet-transition
// Wallet is the correct machine.
type Wallet struct{}

func (w Wallet) Transition(s *State, in In, out *Out) error {
	switch {
	case in.Completion != nil:
		return w.complete(s, in.Completion)
	case in.Value.TopUp > 0:
		return w.topUp(s, in.Value.TopUp, out)
	case in.Value.Spend > 0:
		return w.spend(s, in)
	case in.Value.Audit:
		return w.audit(s, out)
	default:
		return ErrBadInput
	}
}

// endsnippet

// snippet: wallet-spend
func (Wallet) spend(s *State, in In) error {
	if in.Value.Spend > s.Balance {
		return ErrInsufficient // validate first: nothing has changed yet
	}
	s.Balance -= in.Value.Spend
	s.LastSpend = in.Time // time comes from the input (rule 8)
	return nil
}

// endsnippet

// snippet: wallet-audit
func (Wallet) audit(s *State, out *Out) error {
	for _, id := range slices.Sorted(maps.Keys(s.Pending)) { // sorted, never map order
		if err := out.Emit(Notice{ID: id, Cents: s.Pending[id]}); err != nil {
			return err
		}
	}
	return nil
}

// endsnippet

// snippet: wallet-topup
func (Wallet) topUp(s *State, cents int64, out *Out) error {
	s.Next++ // a fresh ID from the counter in the state (rule 4)
	id := s.Next
	if s.Pending == nil {
		s.Pending = map[machine.ActionID]int64{}
	}
	s.Pending[id] = cents // what Restore needs, written with the emission (rule 5)
	return out.Track(id, Charge{Cents: cents})
}

// endsnippet

// snippet: wallet-complete
func (Wallet) complete(s *State, c *machine.Completion[Paid]) error {
	cents, ok := s.Pending[c.ActionID]
	if !ok {
		return ErrUnknownCharge // not reached: the driver drops stale completions
	}
	delete(s.Pending, c.ActionID) // every completion changes the state (rule 6)
	if c.Result.OK {
		s.Balance += cents
	} else {
		s.Declined++
	}
	return nil
}

// endsnippet

// snippet: wallet-restore
// Restore re-emits every pending charge under its original ID, as a status
// check: asking the card network again is safe, charging again is not.
func (Wallet) Restore(s *State, out *Out) error {
	for _, id := range slices.Sorted(maps.Keys(s.Pending)) {
		if err := out.Track(id, Charge{Cents: s.Pending[id], Check: true}); err != nil {
			return err
		}
	}
	return nil
}

// endsnippet

// snippet: wallet-invariants
// Invariants is found by the simulator (sim.Invariants) and called after
// every step, success or failure (rule 3).
func (Wallet) Invariants(s *State) error {
	if s.Balance < 0 {
		return fmt.Errorf("balance %d is negative", s.Balance)
	}
	for id, cents := range s.Pending {
		if id == 0 || id > s.Next {
			return fmt.Errorf("pending charge %d is not below the counter %d", id, s.Next)
		}
		if cents <= 0 {
			return fmt.Errorf("pending charge %d is for %d cents", id, cents)
		}
	}
	return nil
}

// endsnippet

// snippet: wallet-model
// Model drives wallets in simulation. Every random choice comes from r, so
// one seed reproduces a run.
type Model struct{}

func (Model) Input(r *rand.Rand, w *sim.World[State, Input, Charge, Paid, Notice]) (int, Input) {
	e := r.IntN(w.Entities())
	switch x := r.IntN(10); {
	case x < 4:
		return e, Input{TopUp: 1 + r.Int64N(100)}
	case x < 8:
		return e, Input{Spend: 1 + r.Int64N(150)} // sometimes more than the balance
	case x < 9:
		return e, Input{Audit: true}
	default:
		return e, Input{} // invalid: rejected
	}
}

// Result is the card network's answer: a decline one time in five.
func (Model) Result(r *rand.Rand, _ int, a machine.Tracked[Charge]) Paid {
	return Paid{OK: r.IntN(5) != 0, Cents: a.Action.Cents}
}

// Failure is the result the runtime delivers when it gives up on a charge.
func (Model) Failure(a machine.Tracked[Charge]) Paid {
	return Paid{OK: false, Cents: a.Action.Cents}
}

// endsnippet

// snippet: wallet-kind
// WalletMachine is the machine type the simulator and the runtime take.
type WalletMachine = machine.Machine[State, Input, Charge, Paid, Notice]

func newKind(m WalletMachine) (*machine.Kind[State, Input, Charge, Paid, Notice], error) {
	return machine.NewKind("wallet", m, machine.Options[State, Input, Charge, Paid, Notice]{})
}

func newSim(m WalletMachine, cfg sim.Config) (*sim.Sim[State, Input, Charge, Paid, Notice], error) {
	kind, err := newKind(m)
	if err != nil {
		return nil, err
	}
	return sim.New(kind, sim.Model[State, Input, Charge, Paid, Notice](Model{}), cfg)
}

// endsnippet

// snippet: verdict
// verdict runs the simulator on m with fixed seeds and every check and fault
// on, and says what it found.
func verdict(m WalletMachine) string {
	s, err := newSim(m, sim.Config{Seeds: []uint64{1, 2, 3, 4}, Steps: 3000, Entities: 2, Faults: sim.DefaultFaults})
	if err != nil {
		return err.Error()
	}
	_, err = s.RunAll()
	var f *sim.Failure
	switch {
	case errors.As(err, &f):
		return fmt.Sprintf("caught by check %q", f.Check)
	case err != nil:
		return err.Error()
	default:
		return "passes every check"
	}
}

// endsnippet
