package machine_test

import (
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// Lamp is a tiny machine: it switches on and off, and asks an electrician
// (a tracked action) when it breaks.
type Lamp struct{}

type LampState struct {
	On, Broken bool
	Next       machine.ActionID
}

type LampInput struct{ Press, Break bool }

type Repair struct{}

type Fixed struct{ OK bool }

var ErrBroken = machine.NewError("lamp.broken", "lamp: broken")

func (Lamp) Transition(s *LampState, in machine.Input[LampInput, Fixed], out *machine.Actions[Repair, machine.None]) error {
	switch {
	case in.Completion != nil:
		s.Broken = !in.Completion.Result.OK
		return nil
	case s.Broken:
		return ErrBroken
	case in.Value.Break:
		s.Broken, s.On = true, false
		s.Next++
		return out.Track(s.Next, Repair{})
	default:
		s.On = !s.On
		return nil
	}
}

func (Lamp) Restore(s *LampState, out *machine.Actions[Repair, machine.None]) error {
	if s.Broken {
		return out.Track(s.Next, Repair{})
	}
	return nil
}

func Example() {
	kind, err := machine.NewKind[LampState, LampInput, Repair, Fixed, machine.None]("lamp", Lamp{},
		machine.Options[LampState, LampInput, Repair, Fixed, machine.None]{})
	if err != nil {
		panic(err)
	}
	d, _ := kind.NewDriver("hall")
	var fx machine.Effects[Repair, machine.None]

	press := machine.Input[LampInput, Fixed]{Value: LampInput{Press: true}}
	out, _ := d.Step(press, &fx)
	fmt.Println("press:", out.Status, "on =", d.State().On)

	out, _ = d.Step(machine.Input[LampInput, Fixed]{Value: LampInput{Break: true}}, &fx)
	fmt.Println("break:", out.Status, "actions =", fx.Tracked)

	out, _ = d.Step(press, &fx)
	fmt.Println("press:", out.Status, out.Err)

	// The process crashes here. Everything journaled is durable: recover it.
	recovered, _ := kind.Recover("hall", nil, fx.Records)
	var after machine.Effects[Repair, machine.None]
	rep, _ := recovered.Restore(&after)
	fmt.Println("restored:", after.Tracked, "complete =", rep.Complete())

	done := machine.Input[LampInput, Fixed]{Completion: &machine.Completion[Fixed]{ActionID: 1, Result: Fixed{OK: true}}}
	out, _ = recovered.Step(done, &after)
	fmt.Println("repaired:", out.Status, "broken =", recovered.State().Broken)
	out, _ = recovered.Step(done, &after)
	fmt.Println("second result:", out.Status)

	// Output:
	// press: accepted on = true
	// break: accepted actions = [{1 {}}]
	// press: rejected lamp: broken
	// restored: [{1 {}}] complete = true
	// repaired: accepted broken = false
	// second result: stale
}
