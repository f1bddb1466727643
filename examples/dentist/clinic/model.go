package clinic

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// World is the simulated set of clinics.
type World = sim.World[State, Input, Action, Result, machine.None]

// Model drives clinics in simulation: patients ask for exact slots and for
// the earliest slot matching their preferences, cancel bookings, and the
// payment provider answers pre-authorisations, status checks and releases.
// Its knobs shape the traffic; zero means the default. A Model has no
// mutable state: one value may serve many simulators at once.
type Model struct {
	// CancelProb is the chance an input cancels a random confirmed booking
	// (default 0.4), which keeps the calendar churning.
	CancelProb float64
	// EarliestShare is the share of requests that ask for the earliest
	// matching slot rather than an exact one (default 0.4).
	EarliestShare float64
	// InvalidProb is the chance an input is deliberately invalid: bad day,
	// time, range or type, a weekend, a duplicate or unknown reference
	// (default 0.02).
	InvalidProb float64
	// DeclineProb is the chance the provider declines a pre-authorisation
	// or reports a status check as failed (default 0.1).
	DeclineProb float64
	// ReleaseFailProb is the chance a release fails (default 0.02).
	ReleaseFailProb float64
	// HotSlots, when positive, makes exact requests ask for one of the
	// first HotSlots starts of Monday morning (at most 9), so requests race
	// for the same slots.
	HotSlots int
	// Days limits generated requests to the first Days working days
	// (default 5), for a sparse week.
	Days int
	// MaxPrefDays bounds the preferred days of an earliest-slot request
	// (default 3).
	MaxPrefDays int
	// MaxPrefRanges bounds its preferred time ranges (default 2).
	MaxPrefRanges int
	// PrefRangeQuarters is the width of each preferred range in
	// quarter-hours (default 12: three hours).
	PrefRangeQuarters int
	// FullCheckEvery runs CheckState on every clinic every so many
	// operations (default 512; 1 means every step), on top of the
	// incremental Invariants after every step.
	FullCheckEvery int
}

var (
	_ sim.Model[State, Input, Action, Result, machine.None]        = Model{}
	_ sim.WorldChecker[State, Input, Action, Result, machine.None] = Model{}
	_ sim.FinalChecker[State, Input, Action, Result, machine.None] = Model{}
)

func or[T int | float64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Input generates the next request for a random clinic.
func (m Model) Input(r *rand.Rand, w *World) (int, Input) {
	e := r.IntN(w.Entities())
	s := w.State(e)
	ref := uint64(w.Ops()) + 1 // unique within a run
	x := r.Float64()
	inv := or(m.InvalidProb, 0.02)
	if x < inv {
		return e, m.invalid(r, s, ref)
	}
	if x < inv+or(m.CancelProb, 0.4) {
		if n := len(s.Requests); n > 0 {
			off := r.IntN(n)
			for i := range n {
				req := &s.Requests[(off+i)%n]
				if req.Status == Confirmed {
					return e, Input{Kind: Cancel, Ref: req.Ref}
				}
			}
		}
		// Nothing to cancel: ask for a slot instead.
	}
	typ := AppointmentType(1 + r.IntN(4))
	days := min(max(or(m.Days, WorkDays), 1), WorkDays)
	if r.Float64() < or(m.EarliestShare, 0.4) {
		in := Input{Kind: RequestEarliest, Ref: ref, Type: typ}
		nd := 1 + r.IntN(min(or(m.MaxPrefDays, 3), days))
		used := 0
		for i := 0; i < nd; i++ {
			d := r.IntN(days)
			if used&(1<<d) != 0 {
				continue
			}
			used |= 1 << d
			in.Prefer.Days[bits.OnesCount(uint(used))-1] = Weekday(d + 1)
		}
		width := or(m.PrefRangeQuarters, 12)
		nr := r.IntN(min(or(m.MaxPrefRanges, 2), MaxRanges) + 1) // 0: any time
		for i := 0; i < nr; i++ {
			lo := r.IntN(QuartersPerDay)
			hi := min(lo+width, QuartersPerDay)
			in.Prefer.Ranges[i] = TimeRange{From: clockOf(uint8(lo)), To: clockOf(uint8(hi))}
		}
		return e, in
	}
	if m.HotSlots > 0 {
		q := uint8(r.IntN(min(m.HotSlots, 9)))
		return e, Input{Kind: RequestExact, Ref: ref, Type: typ, Day: Monday, Start: clockOf(q)}
	}
	d := r.IntN(days)
	starts := validStarts[d][typ]
	q := nthSetBit(starts, r.IntN(bits.OnesCount64(starts)))
	return e, Input{Kind: RequestExact, Ref: ref, Type: typ, Day: Weekday(d + 1), Start: clockOf(q)}
}

func nthSetBit(m uint64, n int) uint8 {
	for range n {
		m &= m - 1
	}
	return uint8(bits.TrailingZeros64(m))
}

// invalid returns an input the clinic must reject with a typed error.
func (m Model) invalid(r *rand.Rand, s *State, ref uint64) Input {
	in := Input{Kind: RequestExact, Ref: ref, Type: Checkup, Day: Tuesday, Start: At(9, 30)}
	switch r.IntN(10) {
	case 0:
		in.Day = Weekday(r.IntN(2) * 9) // 0 or 9
	case 1:
		in.Day = Saturday + Weekday(r.IntN(2))
	case 2:
		in.Start = At(9, 7)
	case 3:
		in.Start = At(12, 30) // Tuesday lunch
	case 4:
		in.Type = AppointmentType(5 + r.IntN(3))
	case 5:
		in = Input{Kind: RequestEarliest, Ref: ref, Type: Filling}
		in.Prefer.Ranges[0] = TimeRange{From: At(15, 0), To: At(14, 0)}
	case 6:
		in.Ref = 0
	case 7:
		if len(s.Requests) > 0 {
			in.Ref = s.Requests[r.IntN(len(s.Requests))].Ref // in use
		} else {
			in.Kind = InputKind(9)
		}
	case 8:
		in = Input{Kind: Cancel, Ref: ref} // unknown
	default:
		in.Kind = InputKind(9)
	}
	return in
}

// Result answers a payment action.
func (m Model) Result(r *rand.Rand, _ int, a machine.Tracked[Action]) Result {
	if a.Action.Kind == Release {
		if r.Float64() < or(m.ReleaseFailProb, 0.02) {
			return Result{OK: false, Reason: Declined}
		}
		return Result{OK: true}
	}
	if r.Float64() < or(m.DeclineProb, 0.1) {
		return Result{OK: false, Reason: Declined}
	}
	return Result{OK: true}
}

// Failure is what the runtime delivers when the provider never answers.
func (Model) Failure(machine.Tracked[Action]) Result {
	return Result{OK: false, Reason: Unavailable}
}

// CheckWorld checks, after every step, that every clinic has exactly as
// many outstanding tracked actions as requests awaiting payment or a
// release (one each: the state's action IDs are unique, Invariants
// checks), and every FullCheckEvery operations runs CheckState on every
// clinic.
func (m Model) CheckWorld(w *World) error {
	full := w.Ops()%or(m.FullCheckEvery, 512) == 0
	for e := range w.Entities() {
		s := w.State(e)
		if n := w.Outstanding(e); n != int(s.Pending) {
			return fmt.Errorf("%w: clinic %s has %d requests awaiting payment or release but %d outstanding actions",
				ErrInvariant, w.EntityID(e), s.Pending, n)
		}
		if full {
			if err := CheckState(s); err != nil {
				return fmt.Errorf("clinic %s: %w", w.EntityID(e), err)
			}
		}
	}
	return nil
}

// CheckFinal checks every clinic once the run has quiesced: nothing
// pending, and the full invariants.
func (m Model) CheckFinal(w *World) error {
	for e := range w.Entities() {
		s := w.State(e)
		if s.Pending != 0 {
			return fmt.Errorf("clinic %s: %d requests still pending after quiescence", w.EntityID(e), s.Pending)
		}
		if err := CheckState(s); err != nil {
			return fmt.Errorf("clinic %s: %w", w.EntityID(e), err)
		}
	}
	return nil
}
