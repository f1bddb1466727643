// Command counter tells the smallest phasm story: a counter takes
// increments, refuses an overflow, crashes, and comes back from its journal
// exactly as it was; then the simulator verifies the machine.
//
//	go run ./examples/counter
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run() error {
	kind, err := counter.NewKind(100)
	if err != nil {
		return err
	}
	d, err := kind.NewDriver("visits")
	if err != nil {
		return err
	}
	// The journal stands in for the store: records are durable before replies.
	var journal [][]byte
	var fx machine.Effects[machine.None, machine.None]
	clock := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for _, add := range []uint64{40, 50, 30, 10} {
		fx.Reset()
		clock = clock.Add(time.Minute)
		out, err := d.Step(counter.In{Time: clock, Value: counter.Input{Add: add}}, &fx)
		if err != nil {
			return err
		}
		for _, r := range fx.Records {
			journal = append(journal, r.AppendBinary(nil))
		}
		reply := "ok"
		if out.Err != nil {
			reply = out.Err.Error()
		}
		fmt.Printf("add %3d -> value %3d  (%s)\n", add, d.State().Value, reply)
	}

	fmt.Println("-- crash: the live counter is gone; reloading from the journal --")
	records := make([]machine.Record, len(journal))
	for i, b := range journal {
		if records[i], err = machine.DecodeRecord(b); err != nil {
			return err
		}
	}
	back, err := kind.Recover("visits", nil, records)
	if err != nil {
		return err
	}
	fmt.Printf("recovered at seq %d: value %d (before the crash: %d)\n", back.Seq(), back.State().Value, d.State().Value)

	// Simulate counters with a limit far away, so most increments land.
	simKind, err := counter.NewKind(1 << 40)
	if err != nil {
		return err
	}
	s, err := sim.New(simKind, sim.Model[counter.State, counter.Input, machine.None, machine.None, machine.None](counter.Model{}),
		sim.Config{Seeds: []uint64{1, 2, 3}, Steps: 20000, Entities: 4, Faults: sim.DefaultFaults})
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := s.RunAll()
	if err != nil {
		return err
	}
	fmt.Println(rep.Summary(time.Since(start)))
	return nil
}
