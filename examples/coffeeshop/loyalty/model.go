package loyalty

import (
	"math/rand/v2"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// Model drives the coffee shop in simulation: customers buy and redeem, and
// the till answers redemptions with success or a decline.
type Model struct {
	// RedeemProb is the chance an input is a redemption (default 0.4).
	RedeemProb float64
	// DeclineProb is the chance the till declines a redemption (default 0.2).
	DeclineProb float64
}

var _ sim.Model[State, Input, Action, Result, Notice] = Model{}

// Input generates a purchase or a redemption for a random customer; some
// are invalid on purpose (zero amounts, more points than available).
func (m Model) Input(r *rand.Rand, w *sim.World[State, Input, Action, Result, Notice]) (int, Input) {
	e := r.IntN(w.Entities())
	redeem := m.RedeemProb
	if redeem == 0 {
		redeem = 0.4
	}
	if r.Float64() < redeem {
		s := w.State(e)
		pts := 1 + r.Int64N(s.Points+5)
		if r.IntN(50) == 0 {
			pts = 0
		}
		return e, Input{Kind: Redeem, Points: pts, Reward: "latte"}
	}
	amount := 100 + r.Int64N(2000)
	if r.IntN(50) == 0 {
		amount = -amount
	}
	return e, Input{Kind: Purchase, AmountCents: amount}
}

// Result answers a redemption or a status check.
func (m Model) Result(r *rand.Rand, _ int, _ machine.Tracked[Action]) Result {
	decline := m.DeclineProb
	if decline == 0 {
		decline = 0.2
	}
	if r.Float64() < decline {
		return Result{OK: false, Reason: "declined"}
	}
	return Result{OK: true}
}

// Failure is what the runtime delivers when the till never answers.
func (Model) Failure(machine.Tracked[Action]) Result {
	return Result{OK: false, Reason: "till unavailable"}
}
