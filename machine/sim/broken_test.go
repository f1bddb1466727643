package sim_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// The store machine below is correct unless a Defect is planted. Each
// defect breaks one rule of package machine; each test shows the simulator
// catches it with the right check, and that the correct machine passes.

type Defect int

const (
	NoDefect Defect = iota
	MapOrder
	HiddenGlobal
	MutateThenError
	RestoreForgets
	DuplicateIDs
	CompletionNoop
)

type StoreState struct {
	Counter machine.ActionID
	Stock   map[string]int
	Pending map[machine.ActionID]string
	Stamp   int
}

type StoreInput struct {
	Reserve string // reserve one of this item
	Audit   bool   // emit a notice per stocked item
}

type Reserve struct{ Item string }

type Notice struct{ Item string }

type Reply struct{ OK bool }

var ErrNoItem = machine.NewError("store.no_item", "store: no item named")

type Store struct{ Defect Defect }

// hiddenCounter is the hidden global state the HiddenGlobal defect leaks
// into the machine's state.
var hiddenCounter int

func (m Store) Transition(s *StoreState, in machine.Input[StoreInput, Reply], out *machine.Actions[Reserve, Notice]) error {
	if m.Defect == HiddenGlobal {
		hiddenCounter++
		s.Stamp = hiddenCounter
	}
	if c := in.Completion; c != nil {
		item, ok := s.Pending[c.ActionID]
		if !ok {
			return fmt.Errorf("unexpected completion %d", c.ActionID)
		}
		if m.Defect == CompletionNoop && !c.Result.OK {
			return nil // forgets to clear the pending reservation
		}
		delete(s.Pending, c.ActionID)
		if c.Result.OK {
			if s.Stock == nil {
				s.Stock = map[string]int{}
			}
			s.Stock[item]++
		}
		return nil
	}
	if in.Value.Audit {
		items := make([]string, 0, len(s.Stock))
		for item := range s.Stock {
			items = append(items, item)
		}
		if m.Defect != MapOrder {
			slices.Sort(items)
		}
		for _, item := range items {
			if err := out.Emit(Notice{Item: item}); err != nil {
				return err
			}
		}
		return nil
	}
	if in.Value.Reserve == "" {
		if m.Defect == MutateThenError {
			s.Counter++
		}
		return ErrNoItem
	}
	id := s.Counter + 1
	if m.Defect == DuplicateIDs {
		id = machine.ActionID(len(s.Pending) + 1)
	}
	s.Counter++
	if s.Pending == nil {
		s.Pending = map[machine.ActionID]string{}
	}
	s.Pending[id] = in.Value.Reserve
	return out.Track(id, Reserve{Item: in.Value.Reserve})
}

func (m Store) Restore(s *StoreState, out *machine.Actions[Reserve, Notice]) error {
	ids := make([]machine.ActionID, 0, len(s.Pending))
	for id := range s.Pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if m.Defect == RestoreForgets && len(ids) > 1 {
		ids = ids[:len(ids)-1]
	}
	for _, id := range ids {
		if err := out.Track(id, Reserve{Item: s.Pending[id]}); err != nil {
			return err
		}
	}
	return nil
}

func (Store) Invariants(s *StoreState) error {
	for id := range s.Pending {
		if id == 0 || id > s.Counter {
			return fmt.Errorf("pending action %d not below the counter %d", id, s.Counter)
		}
	}
	for item, n := range s.Stock {
		if n <= 0 {
			return fmt.Errorf("item %q has stock %d", item, n)
		}
	}
	return nil
}

type StoreModel struct{}

var items = []string{"apple", "bread", "cheese", "dates", "eggs", "figs", "grapes", "honey", "ice", "jam"}

func (StoreModel) Input(r *rand.Rand, w *sim.World[StoreState, StoreInput, Reserve, Reply, Notice]) (int, StoreInput) {
	e := r.IntN(w.Entities())
	switch x := r.IntN(10); {
	case x == 0:
		return e, StoreInput{} // invalid: no item
	case x < 3:
		return e, StoreInput{Audit: true}
	default:
		return e, StoreInput{Reserve: items[r.IntN(len(items))]}
	}
}

func (StoreModel) Result(r *rand.Rand, _ int, _ machine.Tracked[Reserve]) Reply {
	return Reply{OK: r.IntN(4) != 0}
}

func (StoreModel) Failure(machine.Tracked[Reserve]) Reply { return Reply{OK: false} }

func newStoreSim(t testing.TB, d Defect, cfg sim.Config) *sim.Sim[StoreState, StoreInput, Reserve, Reply, Notice] {
	t.Helper()
	k, err := machine.NewKind[StoreState, StoreInput, Reserve, Reply, Notice]("store", Store{Defect: d}, machine.Options[StoreState, StoreInput, Reserve, Reply, Notice]{})
	require.NoError(t, err)
	s, err := sim.New(k, sim.Model[StoreState, StoreInput, Reserve, Reply, Notice](StoreModel{}), cfg)
	require.NoError(t, err)
	return s
}

func storeConfig() sim.Config {
	return sim.Config{Seeds: []uint64{1, 2, 3, 4, 5, 6, 7, 8}, Steps: 3000, Entities: 3, Faults: sim.DefaultFaults}
}

func TestCorrectMachinePassesEveryCheck(t *testing.T) {
	s := newStoreSim(t, NoDefect, storeConfig())
	rep, err := s.RunAll()
	require.NoError(t, err)
	t.Log(rep)
	// The run exercised what the checks look at.
	assert.Positive(t, rep.Crashes)
	assert.Positive(t, rep.Stale)
	assert.Positive(t, rep.Rejected)
	assert.Positive(t, rep.Duplicates)
	assert.Positive(t, rep.LateDeliveries)
	assert.Positive(t, rep.Timeouts)
}

func TestBrokenMachinesAreCaught(t *testing.T) {
	cases := []struct {
		name   string
		defect Defect
		check  string
		says   string
	}{
		{"map order leaks into actions", MapOrder, "determinism", "different untracked action"},
		{"hidden global state", HiddenGlobal, "determinism", "different state"},
		{"mutate then error", MutateThenError, "atomicity", "rule 1"},
		{"restore forgets an outstanding action", RestoreForgets, "restore", "missing outstanding actions"},
		{"duplicate action IDs", DuplicateIDs, "action-id", "action ID"},
		{"a completion that changes nothing", CompletionNoop, "completion-unchanged", "rule 6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStoreSim(t, tc.defect, storeConfig())
			_, err := s.RunAll()
			require.Error(t, err)
			var f *sim.Failure
			require.True(t, errors.As(err, &f), "want a *sim.Failure, got %T: %v", err, err)
			t.Log(f)
			assert.Equal(t, tc.check, f.Check)
			assert.Contains(t, f.Err.Error(), tc.says)
			assert.NotZero(t, f.Seed)
			assert.Contains(t, f.Error(), fmt.Sprintf("seed %d", f.Seed))
			if tc.defect != HiddenGlobal {
				// A shrunk, non-empty trace that is no longer than the run.
				require.NotEmpty(t, f.Trace, f.Note)
				assert.LessOrEqual(t, len(f.Trace), f.OriginalEvents)
			}
			// The seed alone reproduces the failure with the same check.
			_, again := s.Run(f.Seed)
			var f2 *sim.Failure
			require.True(t, errors.As(again, &f2), "re-running seed %d did not fail", f.Seed)
			assert.Equal(t, f.Check, f2.Check)
			if tc.defect != HiddenGlobal && tc.defect != MapOrder {
				assert.Equal(t, f.Step, f2.Step)
			}
		})
	}
}

func TestShrinkingFindsASmallTrace(t *testing.T) {
	s := newStoreSim(t, MutateThenError, storeConfig())
	_, err := s.RunAll()
	var f *sim.Failure
	require.True(t, errors.As(err, &f))
	// One invalid input is all it takes to show the defect.
	require.Len(t, f.Trace, 1, strings.Join(f.Trace, "\n"))
	assert.Contains(t, f.Trace[0], "input {Reserve: Audit:false}")
}

func TestReplayReproducesAHandWrittenTrace(t *testing.T) {
	type ev = sim.Event[StoreInput, Reply]
	trace := []ev{
		{Kind: sim.EventInput, Entity: 0, Input: StoreInput{Reserve: "apple"}},
		{Kind: sim.EventInput, Entity: 0, Input: StoreInput{Reserve: "bread"}},
		{Kind: sim.EventCrash, Entity: 0},
	}
	good := newStoreSim(t, NoDefect, storeConfig())
	require.NoError(t, good.Replay(trace))
	bad := newStoreSim(t, RestoreForgets, storeConfig())
	err := bad.Replay(trace)
	var f *sim.Failure
	require.True(t, errors.As(err, &f))
	assert.Equal(t, "restore", f.Check)
}

func TestInvariantsOnlyModeSkipsAutomaticChecks(t *testing.T) {
	cfg := storeConfig()
	cfg.InvariantsOnly = true
	s := newStoreSim(t, MutateThenError, cfg)
	rep, err := s.RunAll()
	require.NoError(t, err, "the driver rolls back, and no automatic check is on")
	assert.Zero(t, rep.Crashes)
}

func TestConfigProblemsAreListedTogether(t *testing.T) {
	k, err := machine.NewKind[StoreState, StoreInput, Reserve, Reply, Notice]("store", Store{}, machine.Options[StoreState, StoreInput, Reserve, Reply, Notice]{})
	require.NoError(t, err)
	_, err = sim.New(k, sim.Model[StoreState, StoreInput, Reserve, Reply, Notice](StoreModel{}), sim.Config{
		Steps:  -1,
		Faults: sim.Faults{CrashProb: 2, DuplicateProb: -0.5},
	})
	require.Error(t, err)
	for _, want := range []string{"no seeds", "Steps is -1", "CrashProb is 2", "DuplicateProb is -0.5"} {
		assert.Contains(t, err.Error(), want)
	}
}
