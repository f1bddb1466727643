package actor_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// wallet is a test machine that uses every kind of action: an external
// payout (executed by the test's executor), a transfer to another wallet
// (the built-in entity-to-entity delivery), a reminder (the built-in
// timer), and an untracked notice.
type wallet struct{}

type walletState struct {
	Balance  int64
	Next     machine.ActionID
	Pending  map[machine.ActionID]walletOp
	Credited int64
	Paid     int64
	Failed   int64
	Reminded int
}

type walletOp struct {
	Kind   string
	Amount int64
	To     string
	At     time.Time
}

type walletIn struct {
	Op     string // deposit, payout, send, credit, remind, boom
	Amount int64
	To     string
	Delay  time.Duration
}

type walletResult struct {
	OK     bool
	Reason string
}

type walletNote struct{ Text string }

var (
	errNoFunds  = machine.NewError("wallet.no_funds", "wallet: insufficient funds")
	errBadInput = machine.NewError("wallet.bad_input", "wallet: bad input")
)

type (
	wIn      = machine.Input[walletIn, walletResult]
	wActions = machine.Actions[walletOp, walletNote]
)

func (wallet) Transition(s *walletState, in wIn, out *wActions) error {
	if c := in.Completion; c != nil {
		op, ok := s.Pending[c.ActionID]
		if !ok {
			return fmt.Errorf("no pending action %d", c.ActionID)
		}
		delete(s.Pending, c.ActionID)
		switch {
		case op.Kind == "remind":
			s.Reminded++
		case c.Result.OK && op.Kind == "payout":
			s.Paid += op.Amount
		case c.Result.OK:
		default:
			s.Failed++
			s.Balance += op.Amount // refund
		}
		return nil
	}
	v := in.Value
	track := func(op walletOp) error {
		s.Next++
		if s.Pending == nil {
			s.Pending = map[machine.ActionID]walletOp{}
		}
		s.Pending[s.Next] = op
		return out.Track(s.Next, op)
	}
	switch v.Op {
	case "deposit", "credit":
		if v.Amount <= 0 {
			return errBadInput
		}
		s.Balance += v.Amount
		if v.Op == "credit" {
			s.Credited += v.Amount
		}
		return out.Emit(walletNote{Text: fmt.Sprintf("%s %d", v.Op, v.Amount)})
	case "payout", "send":
		if v.Amount <= 0 {
			return errBadInput
		}
		if v.Amount > s.Balance {
			return errNoFunds
		}
		s.Balance -= v.Amount
		return track(walletOp{Kind: v.Op, Amount: v.Amount, To: v.To})
	case "remind":
		return track(walletOp{Kind: "remind", At: in.Time.Add(v.Delay)})
	case "boom":
		panic("wallet: boom")
	}
	return errors.New("wallet: unknown op " + v.Op)
}

func (wallet) Restore(s *walletState, out *wActions) error {
	for id := machine.ActionID(1); id <= s.Next; id++ {
		if op, ok := s.Pending[id]; ok {
			if err := out.Track(id, op); err != nil {
				return err
			}
		}
	}
	return nil
}

func newWalletKind() (*machine.Kind[walletState, walletIn, walletOp, walletResult, walletNote], error) {
	return machine.NewKind[walletState, walletIn, walletOp, walletResult, walletNote]("wallet", wallet{},
		machine.Options[walletState, walletIn, walletOp, walletResult, walletNote]{})
}
