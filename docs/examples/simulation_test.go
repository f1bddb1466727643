package examples_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

func ExampleSim_RunAll() {
	// snippet: sim-run
	s, err := newSim(Wallet{}, sim.Config{
		Seeds:    []uint64{1, 2, 3, 4},
		Steps:    20_000, // per seed, counted in operations, never in time
		Entities: 3,
		Faults:   sim.DefaultFaults,
	})
	if err != nil {
		fmt.Println(err) // every configuration problem, listed at once
		return
	}
	start := time.Now()
	rep, err := s.RunAll()
	if err != nil {
		fmt.Println(err) // a *sim.Failure: seed, step, check, shrunk trace
		return
	}
	summary := rep.Summary(time.Since(start)) // "verified N operations in T (...)"
	// endsnippet
	fmt.Println(strings.HasPrefix(summary, "verified "), rep.Seeds, rep.Crashes > 0, rep.Operations >= 4*20_000)
	// Output: true 4 true true
}

func ExampleFailure() {
	// snippet: sim-failure
	s, _ := newSim(DeclineChangesNothing{}, sim.Config{Seeds: []uint64{1, 2, 3}, Steps: 3000, Faults: sim.DefaultFaults})
	_, err := s.RunAll()
	var f *sim.Failure
	if !errors.As(err, &f) {
		return
	}
	fmt.Println("check:", f.Check)                              // which check failed
	fmt.Println("seed and step known:", f.Seed > 0, f.Step > 0) // where
	fmt.Println("shrunk:", len(f.Trace) <= f.OriginalEvents)    // the events that still fail
	_, again := s.Run(f.Seed)                                   // the seed alone reproduces it
	var f2 *sim.Failure
	fmt.Println("same on re-run:", errors.As(again, &f2) && f2.Check == f.Check && f2.Step == f.Step)
	// endsnippet
	// Output:
	// check: completion-unchanged
	// seed and step known: true true
	// shrunk: true
	// same on re-run: true
}

func ExampleSim_Replay() {
	// snippet: sim-replay
	// A regression test: a top-up whose charge is declined. Written by hand,
	// or copied from a Failure's trace.
	type ev = sim.Event[Input, Paid]
	trace := []ev{
		{Kind: sim.EventInput, Entity: 0, Input: Input{TopUp: 500}},
		{Kind: sim.EventCompletion, Entity: 0, ActionID: 1, Result: Paid{OK: false, Cents: 500}},
		{Kind: sim.EventCrash, Entity: 0},
	}
	cfg := sim.Config{Seeds: []uint64{1}, Steps: 1} // Replay uses neither
	good, _ := newSim(Wallet{}, cfg)
	bad, _ := newSim(DeclineChangesNothing{}, cfg)
	fmt.Println("Wallet:", good.Replay(trace))
	var f *sim.Failure
	if err := bad.Replay(trace); errors.As(err, &f) {
		fmt.Println("DeclineChangesNothing:", f.Check)
	}
	// endsnippet
	// Output:
	// Wallet: <nil>
	// DeclineChangesNothing: completion-unchanged
}

func ExampleConfig_invariantsOnly() {
	// snippet: sim-invariants-only
	// The fast mode: the user's invariants only, no automatic checks, no crashes.
	cfg := sim.Config{Seeds: []uint64{1, 2, 3, 4}, Steps: 3000, Entities: 2, Faults: sim.DefaultFaults, InvariantsOnly: true}
	s, _ := newSim(MutateThenCheck{}, cfg)
	rep, err := s.RunAll()
	fmt.Println(err, rep.Crashes) // the atomicity bug goes unnoticed: the driver rolled it back
	// endsnippet
	// Output: <nil> 0
}

// snippet: sim-parallel
// Seeds in parallel: the simulator is single-threaded and shares nothing
// between runs, so each subtest runs its own seeds.
func TestWalletSimulation(t *testing.T) {
	for from := uint64(1); from <= 16; from += 4 {
		t.Run(fmt.Sprintf("seeds %d-%d", from, from+3), func(t *testing.T) {
			t.Parallel()
			s, err := newSim(Wallet{}, sim.Config{
				Seeds: []uint64{from, from + 1, from + 2, from + 3}, Steps: 5000, Entities: 3, Faults: sim.DefaultFaults,
			})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rep, err := s.RunAll()
			if err != nil {
				t.Fatal(err) // prints the seed, the step, the check and the shrunk trace
			}
			t.Log(rep.Summary(time.Since(start)))
		})
	}
}

// endsnippet

// The pots: entities that give each other tokens, to show sim.Router and
// the checks across entities.

// snippet: pot-machine
type PotState struct {
	Tokens  int64
	Minted  int64 // tokens ever minted here
	Next    machine.ActionID
	Sending map[machine.ActionID]Gift // gifts awaiting the receiver's answer
}

type PotInput struct {
	Mint    int64
	Give    int64
	To      int   // the receiving pot's index, with Give
	Receive int64 // delivered by another pot's gift
}

type Gift struct {
	To     int
	Tokens int64
}

type Ack struct{ OK bool }

var ErrTooFew = machine.NewError("pot.too_few", "pot: not enough tokens")

type Pot struct{}

func (Pot) Transition(s *PotState, in machine.Input[PotInput, Ack], out *machine.Actions[Gift, machine.None]) error {
	if c := in.Completion; c != nil {
		g := s.Sending[c.ActionID]
		delete(s.Sending, c.ActionID)
		if !c.Result.OK {
			s.Tokens += g.Tokens // refused: the tokens come back
		}
		return nil
	}
	switch v := in.Value; {
	case v.Mint > 0:
		s.Tokens += v.Mint
		s.Minted += v.Mint
	case v.Receive > 0:
		s.Tokens += v.Receive
	case v.Give > 0 && v.Give <= s.Tokens:
		s.Tokens -= v.Give
		s.Next++
		if s.Sending == nil {
			s.Sending = map[machine.ActionID]Gift{}
		}
		s.Sending[s.Next] = Gift{To: v.To, Tokens: v.Give}
		return out.Track(s.Next, s.Sending[s.Next])
	default:
		return ErrTooFew
	}
	return nil
}

func (Pot) Restore(s *PotState, out *machine.Actions[Gift, machine.None]) error {
	for _, id := range slices.Sorted(maps.Keys(s.Sending)) {
		if err := out.Track(id, s.Sending[id]); err != nil {
			return err
		}
	}
	return nil
}

// endsnippet

// snippet: pot-model
type PotWorld = sim.World[PotState, PotInput, Gift, Ack, machine.None]

// PotModel generates mints and gifts, routes gifts to their receivers, and
// checks that tokens are never created or destroyed.
type PotModel struct {
	world    *PotWorld
	received map[string]bool // request IDs of gifts accepted, this run
	dup      error
}

func (m *PotModel) Input(r *rand.Rand, w *PotWorld) (int, PotInput) {
	e := r.IntN(w.Entities())
	if r.IntN(3) == 0 {
		return e, PotInput{Mint: 1 + r.Int64N(10)}
	}
	return e, PotInput{Give: 1 + r.Int64N(10), To: r.IntN(w.Entities())}
}

// Result and Failure are never called: every gift is routed.
func (*PotModel) Result(*rand.Rand, int, machine.Tracked[Gift]) Ack { return Ack{OK: false} }
func (*PotModel) Failure(machine.Tracked[Gift]) Ack                 { return Ack{OK: false} }

// Route makes a gift an input of the receiving pot (sim.Router). The
// simulator delivers it with the gift's idempotency key as request ID,
// loses, duplicates and delays it, and never gives up on it.
func (*PotModel) Route(_ int, a machine.Tracked[Gift]) (int, PotInput, bool) {
	return a.Action.To, PotInput{Receive: a.Action.Tokens}, true
}

// Reply turns the receiver's answer into the giver's result.
func (*PotModel) Reply(_ machine.Tracked[Gift], err error) Ack { return Ack{OK: err == nil} }

// CheckEntity (sim.EntityChecker) runs after each step of entity e.
func (*PotModel) CheckEntity(e int, s *PotState) error {
	if s.Tokens < 0 {
		return fmt.Errorf("pot %d holds %d tokens", e, s.Tokens)
	}
	return nil
}

// Observe (sim.Observer) sees every input an entity was given and its
// outcome: here, that no gift is accepted twice.
func (m *PotModel) Observe(e int, in machine.Input[PotInput, Ack], out machine.Outcome) {
	if out.Status == machine.Accepted && in.Value.Receive > 0 {
		if m.received[in.RequestID] && m.dup == nil {
			m.dup = fmt.Errorf("gift %s accepted twice by pot %d", in.RequestID, e)
		}
		m.received[in.RequestID] = true
	}
}

// CheckWorld (sim.WorldChecker) runs after every step. Tokens in flight may
// be counted twice (received, not yet settled), never lost. It also starts
// the model's history afresh when a new run begins.
func (m *PotModel) CheckWorld(w *PotWorld) error {
	if m.world != w {
		m.world, m.received, m.dup = w, map[string]bool{}, nil
	}
	held, minted := m.count(w)
	if held < minted {
		return fmt.Errorf("%d tokens held or sending, %d minted: tokens destroyed", held, minted)
	}
	return m.dup
}

// CheckFinal (sim.FinalChecker) runs once the run has come to rest: every
// gift settled, every token accounted for exactly.
func (m *PotModel) CheckFinal(w *PotWorld) error {
	if held, minted := m.count(w); held != minted {
		return fmt.Errorf("%d tokens held, %d minted", held, minted)
	}
	return m.dup
}

func (*PotModel) count(w *PotWorld) (held, minted int64) {
	for e := range w.Entities() {
		s := w.State(e)
		held += s.Tokens
		minted += s.Minted
		for _, g := range s.Sending {
			held += g.Tokens
		}
	}
	return held, minted
}

// endsnippet

func Example_router() {
	// snippet: pot-run
	kind, _ := machine.NewKind("pot", machine.Machine[PotState, PotInput, Gift, Ack, machine.None](Pot{}),
		machine.Options[PotState, PotInput, Gift, Ack, machine.None]{})
	s, _ := sim.New(kind, sim.Model[PotState, PotInput, Gift, Ack, machine.None](&PotModel{}),
		sim.Config{Seeds: []uint64{1, 2, 3}, Steps: 5000, Entities: 4, Faults: sim.DefaultFaults})
	rep, err := s.RunAll()
	fmt.Println(err, rep.EntityDeliveries > 0, rep.DuplicateDeliveries > 0)
	// endsnippet
	// Output: <nil> true true
}
