package clinic_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine/sim"
)

// benchClinic runs the mixed dentist simulation for b.N steps on one
// goroutine (run with -cpu 1 for one core) and reports steps per second.
func benchClinic(b *testing.B, invariantsOnly bool) {
	opts := clinic.Options{}
	if invariantsOnly {
		opts.DigestEveryRecords = -1 // nothing reads digests in this mode
	}
	kind, err := clinic.NewKindWith(opts)
	require.NoError(b, err)
	cfg := sim.Config{Seeds: []uint64{42}, Steps: b.N, Entities: 2, Faults: sim.DefaultFaults, InvariantsOnly: invariantsOnly}
	s := newSim(b, kind, clinic.Model{}, cfg)
	b.ReportAllocs()
	b.ResetTimer()
	rep, err := s.RunAll()
	b.StopTimer()
	require.NoError(b, err)
	b.ReportMetric(float64(rep.Operations)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(0, "ns/op") // steps/s is the figure; ns/op counts the liveness phase too
}

// BenchmarkDentistInvariantsOnly: the clinic's invariants (and the model's
// outstanding-action check) after every step, no automatic checks, no
// crashes.
func BenchmarkDentistInvariantsOnly(b *testing.B) { benchClinic(b, true) }

// BenchmarkDentistAllChecks: determinism, atomicity, completions, request
// window, crash/restore checks with every fault of sim.DefaultFaults.
func BenchmarkDentistAllChecks(b *testing.B) { benchClinic(b, false) }
