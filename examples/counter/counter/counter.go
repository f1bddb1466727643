// Package counter is the smallest phasm machine: a counter that increments
// by a requested amount and refuses to overflow its limit. It has no
// actions, so it shows the contract and nothing else.
package counter

import (
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// State is one counter's state.
type State struct {
	Value uint64
	// Increments counts accepted increments, for invariant checks.
	Increments uint64
}

// Input is a request to the counter.
type Input struct {
	// Add is the amount to add; it must be positive.
	Add uint64
}

// Errors the counter rejects inputs with.
var (
	ErrOverflow = machine.NewError("counter.overflow", "counter: increment would exceed the limit")
	ErrZero     = machine.NewError("counter.zero", "counter: increment must be positive")
)

// Machine is the counter machine. Limit is the largest value the counter
// may hold (0 means no limit other than uint64).
type Machine struct {
	Limit uint64
}

// Kind is the counter's type vocabulary: no actions, no results.
type (
	Actions = machine.Actions[machine.None, machine.None]
	In      = machine.Input[Input, machine.None]
)

// Transition adds in.Value.Add to the counter.
func (m Machine) Transition(s *State, in In, _ *Actions) error {
	if in.Completion != nil {
		return fmt.Errorf("counter: unexpected completion %d", in.Completion.ActionID)
	}
	add := in.Value.Add
	if add == 0 {
		return ErrZero
	}
	limit := m.limit()
	if add > limit || s.Value > limit-add {
		return ErrOverflow
	}
	s.Value += add
	s.Increments++
	return nil
}

// Restore has nothing to re-emit: the counter never emits actions.
func (Machine) Restore(*State, *Actions) error { return nil }

// Invariants checks the counter's state: the value never exceeds the limit,
// and a non-zero value came from at least one increment.
func (m Machine) Invariants(s *State) error {
	if s.Value > m.limit() {
		return fmt.Errorf("value %d exceeds limit %d", s.Value, m.limit())
	}
	if s.Value > 0 && s.Increments == 0 {
		return fmt.Errorf("value %d without any increment", s.Value)
	}
	if s.Increments > s.Value {
		return fmt.Errorf("%d increments but value %d (every increment adds at least 1)", s.Increments, s.Value)
	}
	return nil
}

func (m Machine) limit() uint64 {
	if m.Limit == 0 {
		return ^uint64(0)
	}
	return m.Limit
}

// NewKind returns the counter kind with default codecs.
func NewKind(limit uint64) (*machine.Kind[State, Input, machine.None, machine.None, machine.None], error) {
	return machine.NewKind("counter", machine.Machine[State, Input, machine.None, machine.None, machine.None](Machine{Limit: limit}),
		machine.Options[State, Input, machine.None, machine.None, machine.None]{})
}
