package clinic_test

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

type clinicSim = sim.Sim[clinic.State, clinic.Input, clinic.Action, clinic.Result, machine.None]

func newSim(t testing.TB, kind *clinic.Kind, m clinic.Model, cfg sim.Config) *clinicSim {
	t.Helper()
	s, err := sim.New(kind, sim.Model[clinic.State, clinic.Input, clinic.Action, clinic.Result, machine.None](m), cfg)
	require.NoError(t, err)
	return s
}

func seeds(from, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(from + i)
	}
	return out
}

// stormFaults is stronger than sim.DefaultFaults: more crashes, more
// duplicates, lost and late results, longer delays.
var stormFaults = sim.Faults{
	CrashProb:          0.03,
	DelayMaxSteps:      60,
	DuplicateProb:      0.3,
	FailProb:           0.1,
	LoseProb:           0.05,
	TimeoutSteps:       40,
	LateAfterCrashProb: 0.6,
	RetryProb:          0.05,
	RequestIDProb:      0.5,
}

type scenario struct {
	name  string
	model clinic.Model
	cfg   sim.Config
}

// scenarios is the dentist suite: fixed seeds and step counts (never time
// budgets), each with crash injection and duplicate, late and reordered
// completions. They differ in the traffic the model generates.
func scenarios() []scenario {
	payFail := sim.DefaultFaults
	payFail.FailProb = 0.25
	payFail.LoseProb = 0.05
	return []scenario{
		{"mixed", clinic.Model{},
			sim.Config{Seeds: seeds(1, 4), Steps: 32_000, Entities: 2, Faults: sim.DefaultFaults}},
		{"high contention", clinic.Model{HotSlots: 6, EarliestShare: 0.1, CancelProb: 0.45, DeclineProb: 0.05},
			sim.Config{Seeds: seeds(101, 4), Steps: 32_000, Entities: 1, Faults: sim.DefaultFaults, DeliverProb: 0.3}},
		{"payment failure heavy", clinic.Model{DeclineProb: 0.5, ReleaseFailProb: 0.2},
			sim.Config{Seeds: seeds(201, 4), Steps: 32_000, Entities: 2, Faults: payFail}},
		{"auto heavy", clinic.Model{EarliestShare: 0.9, MaxPrefDays: 5, MaxPrefRanges: 3},
			sim.Config{Seeds: seeds(301, 4), Steps: 32_000, Entities: 2, Faults: sim.DefaultFaults}},
		{"sparse schedule", clinic.Model{Days: 2, CancelProb: 0.45, PrefRangeQuarters: 6},
			sim.Config{Seeds: seeds(401, 4), Steps: 32_000, Entities: 3, Faults: sim.DefaultFaults}},
		{"preferences", clinic.Model{EarliestShare: 1, MaxPrefDays: 3, MaxPrefRanges: 4, PrefRangeQuarters: 3},
			sim.Config{Seeds: seeds(501, 4), Steps: 32_000, Entities: 2, Faults: sim.DefaultFaults}},
		{"long", clinic.Model{CancelProb: 0.35, EarliestShare: 0.5, DeclineProb: 0.15},
			sim.Config{Seeds: seeds(601, 1), Steps: 160_000, Entities: 1, Faults: sim.DefaultFaults}},
		{"stress", clinic.Model{HotSlots: 9, EarliestShare: 0.5, CancelProb: 0.3, DeclineProb: 0.2, FullCheckEvery: 64},
			sim.Config{Seeds: seeds(701, 4), Steps: 25_000, Entities: 4, Faults: stormFaults, DeliverProb: 0.4}},
	}
}

// TestSimulationSuite runs every scenario concurrently (the simulator is
// single-threaded per seed) and prints one line per scenario and one
// summary line for the suite: "verified N operations in T".
func TestSimulationSuite(t *testing.T) {
	// The simulator allocates a few kilobytes per step (journal records,
	// snapshots, request windows rebuilt on every crash). With every core
	// busy running scenarios, the default GC target spends about a third of
	// the suite's CPU collecting; a higher target trades tens of megabytes
	// for it. Restored when the suite ends.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	kind, err := clinic.NewKind()
	require.NoError(t, err)
	var mu sync.Mutex
	var total sim.Report
	start := time.Now()
	t.Run("scenario", func(t *testing.T) {
		for _, sc := range scenarios() {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				cfg := sc.cfg
				cfg.Steps = scaled(cfg.Steps)
				s := newSim(t, kind, sc.model, cfg)
				began := time.Now()
				rep, err := s.RunAll()
				require.NoError(t, err, "seeds %v", cfg.Seeds)
				t.Logf("%-22s seeds %v, %d steps each, %d clinics: %d operations, %d crashes, %d duplicate and %d late results, %d stale completions, %d rejected, in %s",
					sc.name, cfg.Seeds, cfg.Steps, cfg.Entities, rep.Operations, rep.Crashes, rep.DuplicateDeliveries, rep.LateDeliveries,
					rep.Stale, rep.Rejected, time.Since(began).Round(time.Millisecond))
				assert.Positive(t, rep.Crashes)
				assert.Positive(t, rep.DuplicateDeliveries)
				assert.Positive(t, rep.LateDeliveries)
				assert.Positive(t, rep.Stale)
				mu.Lock()
				total.Add(rep)
				mu.Unlock()
			})
		}
	})
	t.Log(total.Summary(time.Since(start)))
	if !raceEnabled {
		assert.GreaterOrEqual(t, total.Operations, uint64(1_000_000), "the suite verifies at least a million operations")
	}
}

// TestScenariosExerciseTheDomain checks that the scenarios reach what they
// are named for, on one short seed each.
func TestScenariosExerciseTheDomain(t *testing.T) {
	kind, err := clinic.NewKind()
	require.NoError(t, err)
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			cfg := sc.cfg
			cfg.Seeds = cfg.Seeds[:1]
			cfg.Steps = 3_000
			var stats clinic.Stats
			m := sc.model
			m.FullCheckEvery = 1 // CheckState after every step agrees with the incremental checks
			s := newSimWith(t, kind, &statsModel{Model: m, stats: &stats}, cfg)
			_, err := s.RunAll()
			require.NoError(t, err)
			t.Logf("%s (seed %d, %d steps): %+v", sc.name, cfg.Seeds[0], cfg.Steps, stats)
			assert.Positive(t, stats.Confirmed)
			assert.Positive(t, stats.Cancelled)
			assert.Positive(t, stats.NoSlot)
			if sc.model.HotSlots > 0 {
				assert.Positive(t, stats.SlotTaken, "contention makes payments lose their slot")
			}
		})
	}
}

// statsModel sums the clinics' Stats at the end of a run.
type statsModel struct {
	clinic.Model
	stats *clinic.Stats
}

func (m *statsModel) CheckFinal(w *clinic.World) error {
	*m.stats = clinic.Stats{}
	for e := range w.Entities() {
		s := w.State(e).Stats
		m.stats.Requests += s.Requests
		m.stats.Confirmed += s.Confirmed
		m.stats.NoSlot += s.NoSlot
		m.stats.SlotTaken += s.SlotTaken
		m.stats.Cancelled += s.Cancelled
		m.stats.Released += s.Released
		m.stats.ReleaseFailures += s.ReleaseFailures
	}
	return m.Model.CheckFinal(w)
}

func newSimWith(t testing.TB, kind *clinic.Kind, m sim.Model[clinic.State, clinic.Input, clinic.Action, clinic.Result, machine.None], cfg sim.Config) *clinicSim {
	t.Helper()
	s, err := sim.New(kind, m, cfg)
	require.NoError(t, err)
	return s
}

func TestPlantedBugsAreCaught(t *testing.T) {
	cases := []struct {
		name   string
		defect clinic.Defect
		check  string
		says   string
	}{
		{"duplicate payment success flips a confirmed request", clinic.DefectDuplicateSuccessFlips, "restore", "not outstanding"},
		{"restore forgets a release", clinic.DefectRestoreForgetsRelease, "restore", "missing outstanding actions"},
		{"mutation before an error return", clinic.DefectMutateBeforeError, "atomicity", "rule 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kind, err := clinic.NewDefectiveKind(tc.defect, clinic.Options{})
			require.NoError(t, err)
			cfg := sim.Config{Seeds: seeds(1, 8), Steps: 5_000, Entities: 1, Faults: sim.DefaultFaults}
			s := newSim(t, kind, clinic.Model{HotSlots: 6, CancelProb: 0.3}, cfg)
			_, err = s.RunAll()
			var f *sim.Failure
			require.True(t, errors.As(err, &f), "want a *sim.Failure, got %v", err)
			t.Log(f)
			assert.Equal(t, tc.check, f.Check)
			assert.Contains(t, f.Err.Error(), tc.says)
			assert.NotZero(t, f.Seed)
			assert.Contains(t, f.Error(), fmt.Sprintf("seed %d", f.Seed))
			require.NotEmpty(t, f.Trace, f.Note)
			assert.LessOrEqual(t, len(f.Trace), f.OriginalEvents)
			// The seed alone reproduces the failure, at the same step.
			_, again := s.Run(f.Seed)
			var f2 *sim.Failure
			require.True(t, errors.As(again, &f2), "re-running seed %d did not fail", f.Seed)
			assert.Equal(t, f.Check, f2.Check)
			assert.Equal(t, f.Step, f2.Step)
			// And the correct machine passes the same seed.
			good, err := clinic.NewKind()
			require.NoError(t, err)
			_, err = newSim(t, good, clinic.Model{HotSlots: 6, CancelProb: 0.3}, cfg).Run(f.Seed)
			require.NoError(t, err)
		})
	}
}

// TestReplayOfTheRace replays a hand-written trace: two requests race for
// one slot, both payments succeed, and the clinic crashes while the
// loser's release is outstanding. The correct machine restores the release;
// the one that forgets it is caught by the restore check.
func TestReplayOfTheRace(t *testing.T) {
	type ev = sim.Event[clinic.Input, clinic.Result]
	in := func(ref uint64) ev {
		return ev{Kind: sim.EventInput, Input: clinic.Input{Kind: clinic.RequestExact, Ref: ref, Type: clinic.Checkup, Day: clinic.Tuesday, Start: clinic.At(13, 0)}}
	}
	paid := func(id machine.ActionID) ev {
		return ev{Kind: sim.EventCompletion, ActionID: id, Result: clinic.Result{OK: true}}
	}
	trace := []ev{in(1), in(2), paid(2), paid(1), {Kind: sim.EventCrash}, paid(3)}
	cfg := sim.Config{Seeds: []uint64{1}, Steps: 1}
	good, err := clinic.NewKind()
	require.NoError(t, err)
	require.NoError(t, newSim(t, good, clinic.Model{}, cfg).Replay(trace))

	bad, err := clinic.NewDefectiveKind(clinic.DefectRestoreForgetsRelease, clinic.Options{})
	require.NoError(t, err)
	err = newSim(t, bad, clinic.Model{}, cfg).Replay(trace)
	var f *sim.Failure
	require.True(t, errors.As(err, &f), "got %v", err)
	assert.Equal(t, "restore", f.Check)
	assert.Contains(t, f.Err.Error(), "missing outstanding actions [3]")
}
