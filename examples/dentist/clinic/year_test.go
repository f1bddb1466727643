package clinic_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/machine/sim"
)

type yearSim = sim.Sim[clinic.YearState, clinic.YearInput, clinic.Action, clinic.Result, machine.None]

func newYearSim(t testing.TB, m clinic.YearModel, cfg sim.Config) *yearSim {
	t.Helper()
	k, err := clinic.NewYearKind()
	require.NoError(t, err)
	s, err := sim.New(k, sim.Model[clinic.YearState, clinic.YearInput, clinic.Action, clinic.Result, machine.None](m), cfg)
	require.NoError(t, err)
	return s
}

// yearFaults adds keyspace read failures and more crashes to the default
// faults.
func yearFaults(readFail, crash float64) sim.Faults {
	f := sim.DefaultFaults
	f.ReadFailProb = readFail
	f.CrashProb = crash
	return f
}

// TestYearSimulation is the database-backed dentist's simulation suite:
// fixed seeds and step counts, each scenario with crash injection,
// keyspace read failures, and duplicate, late and lost completions; every
// step checked for determinism (state, actions and write set), atomicity
// (in-memory part and keyspace) and restore completeness.
func TestYearSimulation(t *testing.T) {
	steps := 25_000
	if testing.Short() {
		steps = 3_000
	}
	for _, sc := range []struct {
		name  string
		model clinic.YearModel
		cfg   sim.Config
	}{
		{"mixed", clinic.YearModel{},
			sim.Config{Seeds: seeds(1, 3), Steps: steps, Entities: 2, Faults: yearFaults(0.05, 0.02)}},
		{"high contention", clinic.YearModel{Days: 7, ChairsUsed: 1, EarliestShare: 0.2, CancelProb: 0.45},
			sim.Config{Seeds: seeds(101, 3), Steps: steps, Entities: 1, Faults: yearFaults(0.05, 0.02), DeliverProb: 0.3}},
		{"read failure heavy", clinic.YearModel{Days: 28, CancelProb: 0.3},
			sim.Config{Seeds: seeds(201, 3), Steps: steps, Entities: 2, Faults: yearFaults(0.4, 0.05)}},
		{"auto heavy", clinic.YearModel{Days: 14, EarliestShare: 0.9, CancelProb: 0.2, FullCheckEvery: 64},
			sim.Config{Seeds: seeds(301, 3), Steps: steps, Entities: 2, Faults: yearFaults(0.05, 0.03), SnapshotEveryRecords: 16}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s := newYearSim(t, sc.model, sc.cfg)
			start := time.Now()
			rep, err := s.RunAll()
			require.NoError(t, err)
			t.Log(rep.Summary(time.Since(start)))
			assert.NotZero(t, rep.Crashes)
			assert.NotZero(t, rep.ReadFailures)
			assert.NotZero(t, rep.RecoveryReadFailures)
			assert.NotZero(t, rep.ReplayedRecords)
			assert.NotZero(t, rep.Accepted)
			assert.NotZero(t, rep.Rejected)
		})
	}
}

type yearDriver[S any] interface {
	Step(machine.Input[clinic.YearInput, clinic.Result], *machine.Effects[clinic.Action, machine.None]) (machine.Outcome, error)
	State() *S
}

// TestYearPlainAndViewAgree runs the same inputs and payment results
// through the database-backed and the plain-value calendar: same outcomes,
// same errors, same actions, and the same bookings.
func TestYearPlainAndViewAgree(t *testing.T) {
	vk, err := clinic.NewYearKind()
	require.NoError(t, err)
	pk, err := clinic.NewPlainYearKind()
	require.NoError(t, err)
	vd, err := vk.NewDriver("c")
	require.NoError(t, err)
	pd, err := pk.NewDriver("c")
	require.NoError(t, err)
	mem := kv.NewMem()
	vd.SetSource(mem)
	r := rand.New(rand.NewPCG(7, 7))
	var vfx, pfx machine.Effects[clinic.Action, machine.None]
	var open []machine.Tracked[clinic.Action]
	ref := uint64(0)
	for i := 0; i < 4000; i++ {
		var in machine.Input[clinic.YearInput, clinic.Result]
		switch {
		case len(open) > 0 && r.IntN(2) == 0:
			j := r.IntN(len(open))
			a := open[j]
			open = append(open[:j], open[j+1:]...)
			in.Completion = &machine.Completion[clinic.Result]{ActionID: a.ID, Result: clinic.Result{OK: r.IntN(8) > 0}}
		case ref > 0 && r.IntN(4) == 0:
			in.Value = clinic.YearInput{Kind: clinic.Cancel, Ref: 1 + r.Uint64N(ref)}
		case r.IntN(2) == 0:
			ref++
			in.Value = clinic.YearInput{Kind: clinic.RequestEarliest, Ref: ref, Type: clinic.AppointmentType(1 + r.IntN(4)), Day: uint16(r.IntN(10)), WindowDays: 3}
		default:
			ref++
			in.Value = clinic.YearInput{Kind: clinic.RequestExact, Ref: ref, Type: clinic.Cleaning, Day: uint16(r.IntN(3)), Chair: uint8(r.IntN(2)), Start: clinic.At(10, 15*r.IntN(4))}
		}
		vfx.Reset()
		pfx.Reset()
		vo, verr := vd.Step(in, &vfx)
		po, perr := pd.Step(in, &pfx)
		require.NoError(t, verr)
		require.NoError(t, perr)
		require.Equal(t, po.Status, vo.Status, "step %d", i)
		require.True(t, machine.SameError(po.Err, vo.Err), "step %d: %v vs %v", i, po.Err, vo.Err)
		require.Equal(t, pfx.Tracked, vfx.Tracked, "step %d", i)
		open = append(open, vfx.Tracked...)
	}
	require.Equal(t, pd.State().YearCore, vd.State().YearCore)
	require.NoError(t, clinic.CheckYear(&vd.State().YearCore, mem))
	plain := pd.State().Slots
	require.NoError(t, clinic.CheckYear(&pd.State().YearCore, &plain))
	all, _, err := plain.Scan([]byte{0}, nil, kv.MaxScanLimit)
	require.NoError(t, err)
	assert.Equal(t, mem.All(), all)
	assert.NotZero(t, vd.State().Bookings)
}

// TestYearReadFailureLeavesCalendarIntact: a payment result whose read
// fails is not applied; retried, it is.
func TestYearReadFailureLeavesCalendarIntact(t *testing.T) {
	k, err := clinic.NewYearKind()
	require.NoError(t, err)
	d, err := k.NewDriver("c")
	require.NoError(t, err)
	src := &flakySource{Mem: kv.NewMem()}
	d.SetSource(src)
	var fx machine.Effects[clinic.Action, machine.None]
	_, err = d.Step(machine.Input[clinic.YearInput, clinic.Result]{Value: clinic.YearInput{Kind: clinic.RequestExact, Ref: 9, Type: clinic.Filling, Day: 2, Chair: 3, Start: clinic.At(9, 0)}}, &fx)
	require.NoError(t, err)
	id := fx.Tracked[0].ID
	pay := machine.Input[clinic.YearInput, clinic.Result]{Completion: &machine.Completion[clinic.Result]{ActionID: id, Result: clinic.Result{OK: true}}}
	src.fail = true
	fx.Reset()
	_, err = d.Step(pay, &fx)
	require.ErrorIs(t, err, kv.ErrRead)
	assert.Empty(t, fx.Records)
	assert.Zero(t, src.Len())
	assert.Equal(t, uint16(1), d.State().Payments)
	src.fail = false
	out, err := d.Step(pay, &fx)
	require.NoError(t, err)
	assert.Equal(t, machine.Accepted, out.Status)
	assert.Equal(t, uint32(1), d.State().Bookings)
	assert.Equal(t, 2, src.Len(), "the booking and its index")
	require.NoError(t, clinic.CheckYear(&d.State().YearCore, src.Mem))
}

type flakySource struct {
	*kv.Mem
	fail bool
}

var errUnreachable = errors.New("database unreachable")

func (f *flakySource) Get(k []byte) ([]byte, bool, error) {
	if f.fail {
		return nil, false, errUnreachable
	}
	return f.Mem.Get(k)
}

func (f *flakySource) Scan(s, e []byte, n int) ([]kv.Pair, bool, error) {
	if f.fail {
		return nil, false, fmt.Errorf("scan: %w", errUnreachable)
	}
	return f.Mem.Scan(s, e, n)
}
