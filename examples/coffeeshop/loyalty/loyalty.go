// Package loyalty is the coffee shop's loyalty-points machine: one entity
// per customer. Purchases earn points; redeeming points for a reward locks them while a
// tracked redemption runs at the till system (one at a time). Success
// deducts the locked points, failure unlocks them, and after a crash the
// pending redemption is restored as a status check rather than a second
// redemption. Money is in integer cents.
package loyalty

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// CentsPerPoint is what a customer spends to earn one point.
const CentsPerPoint = 100

// InputKind says what a customer asks for.
type InputKind uint8

// The inputs.
const (
	// Purchase records a purchase of AmountCents and earns points.
	Purchase InputKind = iota + 1
	// Redeem redeems Points for Reward.
	Redeem
)

// Input is a customer's request.
type Input struct {
	Kind        InputKind
	AmountCents int64  // Purchase
	Points      int64  // Redeem
	Reward      string // Redeem
}

// ActionKind says what the till system is asked to do.
type ActionKind uint8

// The tracked actions.
const (
	// RedeemReward asks the till to hand out a reward for points.
	RedeemReward ActionKind = iota + 1
	// CheckStatus asks the till whether a redemption went through; Restore
	// emits it instead of a second redemption.
	CheckStatus
)

// Action is a tracked action for the till system.
type Action struct {
	Kind   ActionKind
	Points int64
	Reward string
}

// Result is the till's answer.
type Result struct {
	OK     bool
	Reason string
}

// Notice is an untracked action: a message to the customer.
type Notice struct {
	Text string
}

// Redemption is a redemption awaiting its result.
type Redemption struct {
	ID     machine.ActionID
	Points int64
	Reward string
}

// State is one customer's loyalty account.
type State struct {
	Points     int64 // available to redeem
	Locked     int64 // locked by the pending redemption
	Earned     int64 // ever earned
	Redeemed   int64 // ever redeemed
	SpentCents int64
	Pending    *Redemption
	NextAction machine.ActionID
}

// The vocabulary, for brevity.
type (
	In      = machine.Input[Input, Result]
	Actions = machine.Actions[Action, Notice]
	Kind    = machine.Kind[State, Input, Action, Result, Notice]
)

// Errors customers can get.
var (
	ErrBadAmount          = machine.NewError("coffee.bad_amount", "coffeeshop: amount must be positive")
	ErrBadPoints          = machine.NewError("coffee.bad_points", "coffeeshop: points must be positive")
	ErrInsufficientPoints = machine.NewError("coffee.insufficient_points", "coffeeshop: not enough points")
	ErrRedemptionPending  = machine.NewError("coffee.redemption_pending", "coffeeshop: a redemption is already pending")
	ErrUnknownInput       = machine.NewError("coffee.unknown_input", "coffeeshop: unknown input kind")
	ErrUnexpected         = machine.NewError("coffee.unexpected_completion", "coffeeshop: completion for no pending redemption")
)

// Machine is the coffee shop machine.
type Machine struct{}

// Transition applies a purchase, a redemption request or a till result.
func (Machine) Transition(s *State, in In, out *Actions) error {
	if c := in.Completion; c != nil {
		return complete(s, c, out)
	}
	switch v := in.Value; v.Kind {
	case Purchase:
		if v.AmountCents <= 0 {
			return ErrBadAmount
		}
		pts := v.AmountCents / CentsPerPoint
		s.SpentCents += v.AmountCents
		s.Points += pts
		s.Earned += pts
		return out.Emit(Notice{Text: fmt.Sprintf("thanks! +%d points, %d available", pts, s.Points)})
	case Redeem:
		switch {
		case v.Points <= 0:
			return ErrBadPoints
		case s.Pending != nil:
			return ErrRedemptionPending
		case v.Points > s.Points:
			return ErrInsufficientPoints
		}
		// Validate everything first, then mutate: atomic by construction.
		s.NextAction++
		id := s.NextAction
		s.Points -= v.Points
		s.Locked += v.Points
		s.Pending = &Redemption{ID: id, Points: v.Points, Reward: v.Reward}
		return out.Track(id, Action{Kind: RedeemReward, Points: v.Points, Reward: v.Reward})
	default:
		return ErrUnknownInput
	}
}

func complete(s *State, c *machine.Completion[Result], out *Actions) error {
	p := s.Pending
	if p == nil || p.ID != c.ActionID {
		return ErrUnexpected
	}
	s.Locked -= p.Points
	s.Pending = nil
	if c.Result.OK {
		s.Redeemed += p.Points
		return out.Emit(Notice{Text: fmt.Sprintf("enjoy your %s", p.Reward)})
	}
	s.Points += p.Points
	return out.Emit(Notice{Text: "redemption failed (" + c.Result.Reason + "); points returned"})
}

// Restore re-emits the pending redemption as a status check: asking the till
// again is safe, redeeming again is not.
func (Machine) Restore(s *State, out *Actions) error {
	if p := s.Pending; p != nil {
		return out.Track(p.ID, Action{Kind: CheckStatus, Points: p.Points, Reward: p.Reward})
	}
	return nil
}

// Invariants checks one customer's account.
func (Machine) Invariants(s *State) error {
	var errs []error
	if s.Points < 0 || s.Locked < 0 {
		errs = append(errs, fmt.Errorf("negative points: available %d, locked %d", s.Points, s.Locked))
	}
	if s.Points+s.Locked+s.Redeemed != s.Earned {
		errs = append(errs, fmt.Errorf("points not conserved: available %d + locked %d + redeemed %d != earned %d", s.Points, s.Locked, s.Redeemed, s.Earned))
	}
	if s.Earned > s.SpentCents/CentsPerPoint {
		errs = append(errs, fmt.Errorf("earned %d points for %d cents", s.Earned, s.SpentCents))
	}
	switch p := s.Pending; {
	case p == nil && s.Locked != 0:
		errs = append(errs, fmt.Errorf("%d points locked without a pending redemption", s.Locked))
	case p != nil && p.Points != s.Locked:
		errs = append(errs, fmt.Errorf("locked %d points but the pending redemption is for %d", s.Locked, p.Points))
	case p != nil && (p.ID == 0 || p.ID > s.NextAction):
		errs = append(errs, fmt.Errorf("pending action ID %d not below the counter %d", p.ID, s.NextAction))
	}
	return errors.Join(errs...)
}

// NewKind returns the coffee shop kind with a fast state copy.
func NewKind() (*Kind, error) {
	return NewKindWith(machine.Options[State, Input, Action, Result, Notice]{})
}

// NewKindWith returns the coffee shop kind with opts; a nil Clone gets the
// machine's fast state copy.
func NewKindWith(opts machine.Options[State, Input, Action, Result, Notice]) (*Kind, error) {
	if opts.Clone == nil {
		opts.Clone = CloneState
	}
	return machine.NewKind[State, Input, Action, Result, Notice]("loyalty", Machine{}, opts)
}

// CloneState deep-copies a customer's state.
func CloneState(dst, src *State) {
	*dst = *src
	if src.Pending != nil {
		p := *src.Pending
		dst.Pending = &p
	}
}
