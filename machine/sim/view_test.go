package sim_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/machine/sim"
)

// seats is a database-backed machine: one key per sold seat in the view,
// the reservations awaiting payment in memory. Reserving emits a tracked
// charge; a paid charge writes the seat's key, a declined one frees it.
type seatsState struct {
	Next    machine.ActionID
	Holding map[machine.ActionID]int // action -> seat awaiting payment
	Sold    int
	view    *kv.View `phasm:"-"`
}

func (s *seatsState) BindView(v *kv.View) { s.view = v }

type seatsInput struct {
	Reserve int // seat to reserve (>= 0), or -1 to release the lowest sold seat
}

type charge struct{ Seat int }

type charged struct{ OK bool }

var errSeatTaken = machine.NewError("seats.taken", "seats: seat taken")

type seatsDefect int

const (
	seatsCorrect seatsDefect = iota
	seatsHiddenGlobal
	seatsWriteThenFail
)

type seats struct{ defect seatsDefect }

var seatsCounter int

func seatKey(n int) []byte { return []byte(fmt.Sprintf("seat/%04d", n)) }

func (m seats) Transition(s *seatsState, in machine.Input[seatsInput, charged], out *machine.Actions[charge, machine.None]) error {
	if c := in.Completion; c != nil {
		seat := s.Holding[c.ActionID]
		delete(s.Holding, c.ActionID)
		if !c.Result.OK {
			return s.view.Delete(seatKey(seat))
		}
		s.Sold++
		value := []byte("sold")
		if m.defect == seatsHiddenGlobal {
			seatsCounter++
			value = []byte(fmt.Sprint(seatsCounter))
		}
		return s.view.Set(seatKey(seat), value)
	}
	if in.Value.Reserve < 0 {
		// Release the lowest sold seat: an ordered scan.
		pairs, _, err := s.view.Scan([]byte("seat/"), kv.PrefixEnd([]byte("seat/")), 10)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if string(p.Value) != "held" {
				s.Sold--
				return s.view.Delete(p.Key)
			}
		}
		return nil
	}
	key := seatKey(in.Value.Reserve)
	if m.defect == seatsWriteThenFail {
		// Writing before failing is fine with a view: the writes are
		// discarded with the transaction (this is not a defect the
		// simulator reports; it must not leak either).
		if err := s.view.Set([]byte("scratch"), []byte("x")); err != nil {
			return err
		}
	}
	_, taken, err := s.view.Get(key)
	if err != nil {
		return err
	}
	if taken {
		return errSeatTaken
	}
	if err := s.view.Set(key, []byte("held")); err != nil {
		return err
	}
	s.Next++
	if s.Holding == nil {
		s.Holding = map[machine.ActionID]int{}
	}
	s.Holding[s.Next] = in.Value.Reserve
	return out.Track(s.Next, charge{Seat: in.Value.Reserve})
}

func (seats) Restore(s *seatsState, out *machine.Actions[charge, machine.None]) error {
	ids := make([]machine.ActionID, 0, len(s.Holding))
	for id := range s.Holding {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := out.Track(id, charge{Seat: s.Holding[id]}); err != nil {
			return err
		}
	}
	return nil
}

// Invariants reads the keyspace: sold seats in the view match the count.
func (seats) Invariants(s *seatsState) error {
	pairs, more, err := s.view.Scan([]byte("seat/"), kv.PrefixEnd([]byte("seat/")), kv.MaxScanLimit)
	if err != nil || more {
		return fmt.Errorf("scan: %v (more %v)", err, more)
	}
	sold, held := 0, 0
	for _, p := range pairs {
		if string(p.Value) == "held" {
			held++
		} else {
			sold++
		}
	}
	if sold != s.Sold || held != len(s.Holding) {
		return fmt.Errorf("keyspace has %d sold and %d held seats, memory says %d and %d", sold, held, s.Sold, len(s.Holding))
	}
	return nil
}

type seatsModel struct{}

func (seatsModel) Input(r *rand.Rand, w *sim.World[seatsState, seatsInput, charge, charged, machine.None]) (int, seatsInput) {
	if r.IntN(5) == 0 {
		return r.IntN(w.Entities()), seatsInput{Reserve: -1}
	}
	return r.IntN(w.Entities()), seatsInput{Reserve: r.IntN(60)}
}

func (seatsModel) Result(r *rand.Rand, _ int, _ machine.Tracked[charge]) charged {
	return charged{OK: r.IntN(4) > 0}
}

func (seatsModel) Failure(machine.Tracked[charge]) charged { return charged{} }

func newSeatsSim(t *testing.T, d seatsDefect, faults sim.Faults) *sim.Sim[seatsState, seatsInput, charge, charged, machine.None] {
	k, err := machine.NewKind("seats", machine.Machine[seatsState, seatsInput, charge, charged, machine.None](seats{defect: d}),
		machine.Options[seatsState, seatsInput, charge, charged, machine.None]{})
	require.NoError(t, err)
	s, err := sim.New(k, sim.Model[seatsState, seatsInput, charge, charged, machine.None](seatsModel{}),
		sim.Config{Seeds: []uint64{1, 2, 3, 4}, Steps: 2000, Entities: 3, Faults: faults, SnapshotEveryRecords: 16})
	require.NoError(t, err)
	return s
}

func viewFaults() sim.Faults {
	f := sim.DefaultFaults
	f.CrashProb = 0.03
	f.ReadFailProb = 0.1
	return f
}

func TestDatabaseBackedMachinePassesEveryCheck(t *testing.T) {
	for _, d := range []seatsDefect{seatsCorrect, seatsWriteThenFail} {
		s := newSeatsSim(t, d, viewFaults())
		rep, err := s.RunAll()
		require.NoError(t, err)
		t.Log(rep)
		assert.NotZero(t, rep.Crashes)
		assert.NotZero(t, rep.ReadFailures)
		assert.NotZero(t, rep.RecoveryReadFailures)
		assert.NotZero(t, rep.ReplayedRecords)
		assert.NotZero(t, rep.Rejected)
	}
}

func TestDatabaseBackedNondeterminismIsCaught(t *testing.T) {
	s := newSeatsSim(t, seatsHiddenGlobal, viewFaults())
	_, err := s.RunAll()
	var f *sim.Failure
	require.True(t, errors.As(err, &f), "want a *sim.Failure, got %v", err)
	assert.Equal(t, "determinism", f.Check)
	assert.Contains(t, f.Err.Error(), "write set")
}
