package sim_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/coffeeshop/loyalty"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// benchCoffee runs the coffee shop simulation for b.N steps on one
// goroutine and reports steps per second.
func benchCoffee(b *testing.B, invariantsOnly bool) {
	opts := machine.Options[loyalty.State, loyalty.Input, loyalty.Action, loyalty.Result, loyalty.Notice]{}
	if invariantsOnly {
		opts.DigestEveryRecords = -1 // nothing reads digests in this mode
	}
	k, err := loyalty.NewKindWith(opts)
	require.NoError(b, err)
	cfg := sim.Config{Seeds: []uint64{42}, Steps: b.N, Entities: 8, Faults: sim.DefaultFaults, InvariantsOnly: invariantsOnly}
	s, err := sim.New(k, sim.Model[loyalty.State, loyalty.Input, loyalty.Action, loyalty.Result, loyalty.Notice](loyalty.Model{}), cfg)
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	rep, err := s.RunAll()
	b.StopTimer()
	require.NoError(b, err)
	b.ReportMetric(float64(rep.Operations)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(0, "ns/op") // steps/s is the figure; ns/op counts the liveness phase too
}

// BenchmarkCoffeeShopInvariantsOnly: the user's invariants after every
// step, no automatic checks, no crashes.
func BenchmarkCoffeeShopInvariantsOnly(b *testing.B) { benchCoffee(b, true) }

// BenchmarkCoffeeShopAllChecks: determinism, atomicity, completions,
// request window, and crash/restore checks with every fault.
func BenchmarkCoffeeShopAllChecks(b *testing.B) { benchCoffee(b, false) }
