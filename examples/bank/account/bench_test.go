package account_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// benchBank runs the bank simulation (16 accounts, transfers routed entity
// to entity, conservation and exactly-once checked after every step) for
// b.N steps on one goroutine and reports steps per second.
func benchBank(b *testing.B, invariantsOnly bool) {
	opts := account.Options{}
	if invariantsOnly {
		opts.DigestEveryRecords = -1
	}
	k, err := account.NewKindWith(opts)
	require.NoError(b, err)
	cfg := sim.Config{Seeds: []uint64{42}, Steps: b.N, Entities: 16, Faults: sim.DefaultFaults, InvariantsOnly: invariantsOnly, EntityID: account.AccountName}
	s, err := sim.New(k, sim.Model[account.State, account.Input, account.Action, account.Result, machine.None](&account.Model{}), cfg)
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	rep, err := s.RunAll()
	b.StopTimer()
	require.NoError(b, err)
	b.ReportMetric(float64(rep.Operations)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBankInvariantsOnly: account invariants and the model's history
// checks after every step, no automatic checks, no crashes.
func BenchmarkBankInvariantsOnly(b *testing.B) { benchBank(b, true) }

// BenchmarkBankAllChecks: every automatic check and fault.
func BenchmarkBankAllChecks(b *testing.B) { benchBank(b, false) }
