package examples_test

import (
	"fmt"
	"time"
)

// Each WRONG machine below embeds the correct Wallet and breaks one rule of
// SEMANTICS.md section 2; each Example runs the simulator on it and on the
// Wallet, with the same seeds, and prints the verdicts.

// snippet: rule1-wrong
// MutateThenCheck breaks rule 1 (atomic): it subtracts first and checks after,
// so a rejected spend has already changed the balance.
type MutateThenCheck struct{ Wallet }

func (m MutateThenCheck) Transition(s *State, in In, out *Out) error {
	if in.Completion == nil && in.Value.Spend > 0 {
		s.Balance -= in.Value.Spend
		if s.Balance < 0 {
			return ErrInsufficient // the state is already changed
		}
		s.LastSpend = in.Time
		return nil
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule1Atomic() {
	fmt.Println("WRONG:", verdict(MutateThenCheck{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "atomicity"
	// RIGHT: passes every check
}

// snippet: rule2-wrong
// AuditInMapOrder breaks rule 2 (deterministic): Go randomises map
// iteration, so the same state gives the notices in a different order.
type AuditInMapOrder struct{ Wallet }

func (m AuditInMapOrder) Transition(s *State, in In, out *Out) error {
	if in.Completion == nil && in.Value.Audit {
		for id, cents := range s.Pending { // map order leaks into the actions
			if err := out.Emit(Notice{ID: id, Cents: cents}); err != nil {
				return err
			}
		}
		return nil
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule2Deterministic() {
	fmt.Println("WRONG:", verdict(AuditInMapOrder{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "determinism"
	// RIGHT: passes every check
}

// snippet: rule3-wrong
// SpendsPendingMoney breaks rule 3 (valid): it lets the owner spend money
// that is still being charged, so the balance can go negative.
type SpendsPendingMoney struct{ Wallet }

func (m SpendsPendingMoney) Transition(s *State, in In, out *Out) error {
	if in.Completion == nil && in.Value.Spend > 0 {
		available := s.Balance
		for _, cents := range s.Pending {
			available += cents // counts top-ups the card may still decline
		}
		if in.Value.Spend > available {
			return ErrInsufficient
		}
		s.Balance -= in.Value.Spend
		s.LastSpend = in.Time
		return nil
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule3Valid() {
	fmt.Println("WRONG:", verdict(SpendsPendingMoney{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "invariant"
	// RIGHT: passes every check
}

// snippet: rule4-wrong
// CounterRestarts breaks rule 4 (action IDs unique for the entity's whole
// life): it restarts its counter when nothing is pending, so a late result
// of the old action 1 would be taken for the new action 1.
type CounterRestarts struct{ Wallet }

func (m CounterRestarts) Transition(s *State, in In, out *Out) error {
	if in.Completion == nil && in.Value.TopUp > 0 && len(s.Pending) == 0 {
		s.Next = 0 // "tidy up": IDs start again from 1
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule4ActionIDs() {
	fmt.Println("WRONG:", verdict(CounterRestarts{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "action-id"
	// RIGHT: passes every check
}

// snippet: rule5-wrong
// AmountOnlyInAction breaks rule 5 (tracked before emitted): the charge is
// emitted, but nothing in the state records it, so after a crash Restore
// has nothing to re-emit it from.
type AmountOnlyInAction struct{ Wallet }

func (m AmountOnlyInAction) Transition(s *State, in In, out *Out) error {
	switch {
	case in.Completion != nil:
		if in.Completion.Result.OK {
			s.Balance += in.Completion.Result.Cents // the card network echoes the amount
		} else {
			s.Declined++
		}
		return nil
	case in.Value.TopUp > 0:
		s.Next++
		return out.Track(s.Next, Charge{Cents: in.Value.TopUp}) // not in s.Pending
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule5TrackedBeforeEmitted() {
	fmt.Println("WRONG:", verdict(AmountOnlyInAction{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "restore"
	// RIGHT: passes every check
}

// snippet: rule6-wrong
// DeclineChangesNothing breaks rule 6 (every completion changes the state):
// a declined charge stays pending, so Restore would re-emit it forever.
type DeclineChangesNothing struct{ Wallet }

func (m DeclineChangesNothing) Transition(s *State, in In, out *Out) error {
	if c := in.Completion; c != nil && !c.Result.OK {
		return nil // "nothing to credit"
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule6CompletionChangesState() {
	fmt.Println("WRONG:", verdict(DeclineChangesNothing{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "completion-unchanged"
	// RIGHT: passes every check
}

// snippet: rule7-wrong
// RestoreGivesUp breaks rule 7 (Restore is pure and complete): it writes
// the state, and the charges it drops are still outstanding.
type RestoreGivesUp struct{ Wallet }

func (RestoreGivesUp) Restore(s *State, out *Out) error {
	clear(s.Pending) // "after a crash, forget the charges in flight"
	return nil
}

// endsnippet

func Example_rule7RestorePureAndComplete() {
	fmt.Println("WRONG:", verdict(RestoreGivesUp{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "restore"
	// RIGHT: passes every check
}

// snippet: rule8-wrong
// WallClock breaks rule 8 (external data arrives as input): it reads the
// clock, so a replay of the same input gives a different state.
type WallClock struct{ Wallet }

func (m WallClock) Transition(s *State, in In, out *Out) error {
	if in.Completion == nil && in.Value.Spend > 0 && in.Value.Spend <= s.Balance {
		s.Balance -= in.Value.Spend
		s.LastSpend = time.Now() // use in.Time
		return nil
	}
	return m.Wallet.Transition(s, in, out)
}

// endsnippet

func Example_rule8ExternalDataAsInput() {
	fmt.Println("WRONG:", verdict(WallClock{}))
	fmt.Println("RIGHT:", verdict(Wallet{}))
	// Output:
	// WRONG: caught by check "determinism"
	// RIGHT: passes every check
}
