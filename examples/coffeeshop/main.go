// Command coffeeshop tells the loyalty-points story: a customer earns
// points, redeems them, and the shop crashes while the till is still
// answering; after recovery the pending redemption comes back as a status
// check (never a second redemption) and completes. Then the simulator
// verifies the machine under every fault.
//
//	go run ./examples/coffeeshop
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/phasm-go/phasm/examples/coffeeshop/loyalty"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "coffeeshop:", err)
		os.Exit(1)
	}
}

type shop struct {
	kind    *loyalty.Kind
	d       *machine.Driver[loyalty.State, loyalty.Input, loyalty.Action, loyalty.Result, loyalty.Notice]
	journal [][]byte // stands in for the store
	clock   time.Time
}

// send applies one input the way the runtime does: step, make the record
// durable, then reply, then hand out the actions.
func (s *shop) send(what string, in loyalty.In) error {
	var fx machine.Effects[loyalty.Action, loyalty.Notice]
	s.clock = s.clock.Add(time.Minute)
	in.Time = s.clock
	out, err := s.d.Step(in, &fx)
	if err != nil {
		return err
	}
	for _, r := range fx.Records {
		s.journal = append(s.journal, r.AppendBinary(nil))
	}
	st := s.d.State()
	reply := "ok"
	switch {
	case out.Status == machine.Stale:
		reply = "dropped: not outstanding any more"
	case out.Err != nil:
		reply = "rejected: " + out.Err.Error()
	}
	fmt.Printf("%-34s %-50s points %4d, locked %3d\n", what, reply, st.Points, st.Locked)
	for _, t := range fx.Tracked {
		fmt.Printf("%34s -> till: action %d %s %d points\n", "", t.ID, kindName(t.Action.Kind), t.Action.Points)
	}
	for _, n := range fx.Untracked {
		fmt.Printf("%34s -> customer: %q\n", "", n.Text)
	}
	return nil
}

func kindName(k loyalty.ActionKind) string {
	if k == loyalty.CheckStatus {
		return "check status of redemption for"
	}
	return "redeem"
}

func run() error {
	kind, err := loyalty.NewKind()
	if err != nil {
		return err
	}
	d, err := kind.NewDriver("ada")
	if err != nil {
		return err
	}
	s := &shop{kind: kind, d: d, clock: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
	steps := []struct {
		what string
		in   loyalty.In
	}{
		{"buy a flat white (450 cents)", loyalty.In{Value: loyalty.Input{Kind: loyalty.Purchase, AmountCents: 450}}},
		{"buy beans (2 000 cents)", loyalty.In{Value: loyalty.Input{Kind: loyalty.Purchase, AmountCents: 2000}}},
		{"redeem 50 points", loyalty.In{Value: loyalty.Input{Kind: loyalty.Redeem, Points: 50, Reward: "croissant"}}},
		{"redeem 10 points for a latte", loyalty.In{Value: loyalty.Input{Kind: loyalty.Redeem, Points: 10, Reward: "latte"}}},
		{"redeem 5 more while pending", loyalty.In{Value: loyalty.Input{Kind: loyalty.Redeem, Points: 5, Reward: "cookie"}}},
	}
	for _, st := range steps {
		if err := s.send(st.what, st.in); err != nil {
			return err
		}
	}

	fmt.Println("-- crash before the till answers: live state and in-flight actions are lost --")
	records := make([]machine.Record, len(s.journal))
	for i, b := range s.journal {
		if records[i], err = machine.DecodeRecord(b); err != nil {
			return err
		}
	}
	if s.d, err = kind.Recover("ada", nil, records); err != nil {
		return err
	}
	var fx machine.Effects[loyalty.Action, loyalty.Notice]
	rep, err := s.d.Restore(&fx)
	if err != nil {
		return err
	}
	fmt.Printf("recovered %d records; points %d, locked %d; Restore re-emitted everything outstanding: %v\n",
		len(records), s.d.State().Points, s.d.State().Locked, rep.Complete())
	for _, t := range fx.Tracked {
		fmt.Printf("%34s -> till: action %d %s %d points\n", "", t.ID, kindName(t.Action.Kind), t.Action.Points)
	}
	done := func(id machine.ActionID, ok bool) loyalty.In {
		return loyalty.In{Completion: &machine.Completion[loyalty.Result]{ActionID: id, Result: loyalty.Result{OK: ok}}}
	}
	if err := s.send("till: status check says done", done(1, true)); err != nil {
		return err
	}
	if err := s.send("till: the original answer, late", done(1, true)); err != nil {
		return err
	}
	fmt.Printf("the late duplicate was dropped: %d stale completion(s)\n", s.d.Stats().Stale)

	sm, err := sim.New(kind, sim.Model[loyalty.State, loyalty.Input, loyalty.Action, loyalty.Result, loyalty.Notice](loyalty.Model{}),
		sim.Config{Seeds: []uint64{1, 2, 3, 4}, Steps: 25000, Entities: 8, Faults: sim.DefaultFaults})
	if err != nil {
		return err
	}
	start := time.Now()
	total, err := sm.RunAll()
	if err != nil {
		return err
	}
	fmt.Println(total.Summary(time.Since(start)))
	return nil
}
