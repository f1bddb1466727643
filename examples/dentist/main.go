// Command dentist tells the clinic-calendar story: patients ask for exact
// slots and for the earliest slot matching their preferences, two of them
// race for the same slot, the clinic crashes while payments are pending,
// and after recovery the pending pre-authorisations come back as status
// checks under their original IDs (never as second charges); the loser of
// the race gets its pre-authorisation released. The invariants hold after
// every step. Then the simulator verifies the machine under every fault.
//
//	go run ./examples/dentist
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dentist:", err)
		os.Exit(1)
	}
}

type fx = machine.Effects[clinic.Action, machine.None]

// desk is a hand-driven runtime for one clinic: a driver, a journal that
// stands in for the store, and a clock.
type desk struct {
	kind    *clinic.Kind
	d       *clinic.Driver
	journal [][]byte
	clock   time.Time
	names   map[uint64]string
}

// send applies one input the way the runtime does: step, make the record
// durable, then reply, then hand out the actions. It checks the invariants
// after every step.
func (k *desk) send(what string, in clinic.In) error {
	var effects fx
	k.clock = k.clock.Add(time.Minute)
	in.Time = k.clock
	out, err := k.d.Step(in, &effects)
	if err != nil {
		return err
	}
	for _, r := range effects.Records {
		k.journal = append(k.journal, r.AppendBinary(nil))
	}
	reply := "ok"
	switch {
	case out.Status == machine.Stale:
		reply = "dropped: not outstanding any more"
	case out.Err != nil:
		reply = "rejected: " + out.Err.Error()
	}
	fmt.Printf("%-52s %s\n", what, reply)
	for _, t := range effects.Tracked {
		fmt.Printf("%52s -> payments: action %d: %s %s for %s\n", "", t.ID, t.Action.Kind, cents(t.Action.AmountCents), k.names[t.Action.Ref])
	}
	if err := clinic.CheckState(k.d.State()); err != nil {
		return fmt.Errorf("after %q: %w", what, err)
	}
	return nil
}

func (k *desk) request(what string, v clinic.Input) error {
	return k.send(what, clinic.In{Value: v})
}

func (k *desk) result(what string, id machine.ActionID, ok bool) error {
	res := clinic.Result{OK: ok}
	if !ok {
		res.Reason = clinic.Declined
	}
	return k.send(fmt.Sprintf("payments: action %d %s", id, what), clinic.In{Completion: &machine.Completion[clinic.Result]{ActionID: id, Result: res}})
}

func (k *desk) calendar() {
	s := k.d.State()
	var lines []string
	for _, r := range s.Requests {
		how := "exact"
		if r.Auto {
			how = "earliest"
		}
		lines = append(lines, fmt.Sprintf("  %-5s %s %s-%s %-10s (%s, %s)", k.names[r.Ref], r.Day, r.SlotStart(), r.SlotEnd(), r.Type, how, r.Status))
	}
	fmt.Printf("calendar: %d booked, %d pending; %d confirmed, %d slot taken, %d cancelled, %d released so far\n%s\n",
		s.Bookings, s.Pending, s.Stats.Confirmed, s.Stats.SlotTaken, s.Stats.Cancelled, s.Stats.Released, strings.Join(lines, "\n"))
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func run() error {
	kind, err := clinic.NewKind()
	if err != nil {
		return err
	}
	d, err := kind.NewDriver("smile-dental")
	if err != nil {
		return err
	}
	k := &desk{kind: kind, d: d, clock: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		names: map[uint64]string{1: "Ann", 2: "Bob", 3: "Cara", 4: "Dan"}}
	fmt.Printf("smile-dental opens %d hours a week; Monday %v, Friday %v\n", clinic.BookableHours(), clinic.Schedule(clinic.Monday), clinic.Schedule(clinic.Friday))

	cara := clinic.Input{Kind: clinic.RequestEarliest, Ref: 3, Type: clinic.RootCanal}
	cara.Prefer.Days = [5]clinic.Weekday{clinic.Thursday, clinic.Monday}
	cara.Prefer.Ranges[0] = clinic.TimeRange{From: clinic.At(13, 30), To: clinic.At(16, 0)}
	steps := []struct {
		what string
		in   clinic.Input
	}{
		{"Ann: filling, Monday 09:30", clinic.Input{Kind: clinic.RequestExact, Ref: 1, Type: clinic.Filling, Day: clinic.Monday, Start: clinic.At(9, 30)}},
		{"Bob: checkup, Monday 09:45 (overlaps Ann)", clinic.Input{Kind: clinic.RequestExact, Ref: 2, Type: clinic.Checkup, Day: clinic.Monday, Start: clinic.At(9, 45)}},
		{"Cara: root canal, earliest Thu/Mon 13:30-16", cara},
		{"Dan: cleaning, Saturday 10:00", clinic.Input{Kind: clinic.RequestExact, Ref: 4, Type: clinic.Cleaning, Day: clinic.Saturday, Start: clinic.At(10, 0)}},
		{"Dan: cleaning, Monday 09:10", clinic.Input{Kind: clinic.RequestExact, Ref: 4, Type: clinic.Cleaning, Day: clinic.Monday, Start: clinic.At(9, 10)}},
	}
	for _, s := range steps {
		if err := k.request(s.what, s.in); err != nil {
			return err
		}
	}
	if err := k.result("Bob's pre-authorisation succeeds", 2, true); err != nil {
		return err
	}
	k.calendar()

	fmt.Println("-- crash while Ann's and Cara's payments are pending: live state and in-flight results are lost --")
	records := make([]machine.Record, len(k.journal))
	for i, b := range k.journal {
		if records[i], err = machine.DecodeRecord(b); err != nil {
			return err
		}
	}
	if k.d, err = kind.Recover("smile-dental", nil, records); err != nil {
		return err
	}
	var effects fx
	rep, err := k.d.Restore(&effects)
	if err != nil {
		return err
	}
	fmt.Printf("recovered %d records; Restore re-emitted exactly the outstanding actions: %v\n", len(records), rep.Complete())
	for _, t := range effects.Tracked {
		fmt.Printf("%52s -> payments: action %d: %s %s for %s\n", "", t.ID, t.Action.Kind, cents(t.Action.AmountCents), k.names[t.Action.Ref])
	}
	if err := k.result("(status check) Ann is authorised", 1, true); err != nil {
		return err
	}
	if err := k.result("(status check) Cara is authorised", 3, true); err != nil {
		return err
	}
	if err := k.result("Ann's original answer, late", 1, true); err != nil {
		return err
	}
	if err := k.result("Ann's hold is released", 4, true); err != nil {
		return err
	}
	if err := k.request("Bob cancels", clinic.Input{Kind: clinic.Cancel, Ref: 2}); err != nil {
		return err
	}
	if err := k.request("Ann: filling, Monday 09:30 again", clinic.Input{Kind: clinic.RequestExact, Ref: 1, Type: clinic.Filling, Day: clinic.Monday, Start: clinic.At(9, 30)}); err != nil {
		return err
	}
	if err := k.result("Bob's hold is released", 5, true); err != nil {
		return err
	}
	if err := k.result("Ann is authorised", 6, true); err != nil {
		return err
	}
	k.calendar()
	fmt.Printf("invariants hold after every step; %d stale completion(s) dropped by the driver\n", k.d.Stats().Stale)

	sm, err := sim.New(kind, sim.Model[clinic.State, clinic.Input, clinic.Action, clinic.Result, machine.None](clinic.Model{}),
		sim.Config{Seeds: []uint64{1, 2}, Steps: 15_000, Entities: 2, Faults: sim.DefaultFaults})
	if err != nil {
		return err
	}
	start := time.Now()
	total, err := sm.RunAll()
	if err != nil {
		return err
	}
	fmt.Println("simulation: 2 clinics, crashes, duplicate, late, reordered and lost payment results, invariants after every step")
	fmt.Println(total.Summary(time.Since(start)))
	return nil
}
