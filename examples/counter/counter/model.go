package counter

import (
	"math/rand/v2"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// Model drives counters in simulation with random increments, some zero
// and some large enough to overflow.
type Model struct{}

var _ sim.Model[State, Input, machine.None, machine.None, machine.None] = Model{}

// Input returns a random increment for a random counter.
func (Model) Input(r *rand.Rand, w *sim.World[State, Input, machine.None, machine.None, machine.None]) (int, Input) {
	e := r.IntN(w.Entities())
	switch r.IntN(20) {
	case 0:
		return e, Input{Add: 0}
	case 1:
		return e, Input{Add: 1 << 62}
	}
	return e, Input{Add: 1 + r.Uint64N(100)}
}

// Result is never called: counters emit no actions.
func (Model) Result(*rand.Rand, int, machine.Tracked[machine.None]) machine.None {
	return machine.None{}
}

// Failure is never called: counters emit no actions.
func (Model) Failure(machine.Tracked[machine.None]) machine.None { return machine.None{} }
