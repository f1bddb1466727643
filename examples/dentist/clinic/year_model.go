package clinic

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

// YearWorld is the simulated set of year calendars.
type YearWorld = sim.World[YearState, YearInput, Action, Result, machine.None]

// YearModel drives database-backed year calendars in simulation: exact and
// earliest-slot requests over the year, cancellations of bookings found in
// the keyspace, and the payment provider's answers. Zero fields take their
// defaults. A YearModel has no mutable state.
type YearModel struct {
	// CancelProb is the chance an input cancels a booking (default 0.35).
	CancelProb float64
	// EarliestShare is the share of earliest-slot requests (default 0.4).
	EarliestShare float64
	// InvalidProb is the chance of a deliberately invalid input (0.02).
	InvalidProb float64
	// DeclineProb is the chance a payment is declined (default 0.1).
	DeclineProb float64
	// ReleaseFailProb is the chance a release fails (default 0.02).
	ReleaseFailProb float64
	// Days limits requests to the first Days days (default YearDays);
	// ChairsUsed limits exact requests to the first chairs (default
	// Chairs). Small values make requests race for slots.
	Days, ChairsUsed int
	// FullCheckEvery runs CheckYear over every calendar's keyspace every so
	// many operations (default 256).
	FullCheckEvery int
}

var (
	_ sim.Model[YearState, YearInput, Action, Result, machine.None]        = YearModel{}
	_ sim.WorldChecker[YearState, YearInput, Action, Result, machine.None] = YearModel{}
	_ sim.FinalChecker[YearState, YearInput, Action, Result, machine.None] = YearModel{}
)

// Input generates the next request for a random calendar.
func (m YearModel) Input(r *rand.Rand, w *YearWorld) (int, YearInput) {
	e := r.IntN(w.Entities())
	ref := uint64(w.Ops()) + 1
	days := min(max(or(m.Days, YearDays), 7), YearDays)
	x := r.Float64()
	inv := or(m.InvalidProb, 0.02)
	if x < inv {
		return e, m.invalid(r, w, e, ref)
	}
	if x < inv+or(m.CancelProb, 0.35) {
		// A booking from the keyspace, from a random point of the index.
		ks := w.Keyspace(e)
		start := refKey(r.Uint64N(ref) + 1)
		pairs, _, _ := ks.Scan(start, []byte{refPrefix + 1}, 1)
		if len(pairs) == 0 {
			pairs, _, _ = ks.Scan([]byte{refPrefix}, []byte{refPrefix + 1}, 1)
		}
		if len(pairs) == 1 {
			return e, YearInput{Kind: Cancel, Ref: bigEndian64(pairs[0].Key[1:])}
		}
	}
	typ := AppointmentType(1 + r.IntN(4))
	if r.Float64() < or(m.EarliestShare, 0.4) {
		window := 1 + r.IntN(7)
		in := YearInput{Kind: RequestEarliest, Ref: ref, Type: typ, WindowDays: uint8(window), Day: uint16(r.IntN(days - window + 1))}
		for i := range r.IntN(3) {
			lo := r.IntN(QuartersPerDay)
			hi := min(lo+4+r.IntN(12), QuartersPerDay)
			in.Ranges[i] = TimeRange{From: clockOf(uint8(lo)), To: clockOf(uint8(hi))}
		}
		return e, in
	}
	day := uint16(r.IntN(days))
	for YearWeekday(day) > Friday {
		day = (day + 1) % uint16(days)
	}
	starts := validStarts[YearWeekday(day)-1][typ]
	q := nthSetBit(starts, r.IntN(bits.OnesCount64(starts)))
	chair := uint8(r.IntN(min(max(or(m.ChairsUsed, Chairs), 1), Chairs)))
	return e, YearInput{Kind: RequestExact, Ref: ref, Type: typ, Day: day, Chair: chair, Start: clockOf(q)}
}

func bigEndian64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// invalid returns an input the calendar must reject with a typed error.
func (m YearModel) invalid(r *rand.Rand, w *YearWorld, e int, ref uint64) YearInput {
	in := YearInput{Kind: RequestExact, Ref: ref, Type: Checkup, Day: 1, Start: At(9, 30)}
	switch r.IntN(9) {
	case 0:
		in.Day = YearDays + uint16(r.IntN(3))
	case 1:
		in.Day = 5 // a Saturday
	case 2:
		in.Start = At(9, 7)
	case 3:
		in.Start = At(12, 30) // Tuesday lunch
	case 4:
		in.Type = AppointmentType(5 + r.IntN(3))
	case 5:
		in = YearInput{Kind: RequestEarliest, Ref: ref, Type: Filling, WindowDays: uint8(MaxWindowDays + 1)}
	case 6:
		in.Ref = 0
	case 7:
		if s := w.State(e); len(s.Requests) > 0 {
			in.Ref = s.Requests[r.IntN(len(s.Requests))].Ref // in use
		} else {
			in = YearInput{Kind: Cancel, Ref: ref} // unknown
		}
	default:
		in.Kind = InputKind(9)
	}
	return in
}

// Result answers a payment action.
func (m YearModel) Result(r *rand.Rand, _ int, a machine.Tracked[Action]) Result {
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
func (YearModel) Failure(machine.Tracked[Action]) Result {
	return Result{OK: false, Reason: Unavailable}
}

// CheckWorld checks after every step that every calendar has one
// outstanding action per request in flight, and every FullCheckEvery
// operations runs CheckYear over every keyspace.
func (m YearModel) CheckWorld(w *YearWorld) error {
	full := w.Ops()%or(m.FullCheckEvery, 256) == 0
	for e := range w.Entities() {
		s := w.State(e)
		if n, want := w.Outstanding(e), int(s.Payments)+int(s.Releases); n != want {
			return fmt.Errorf("%w: calendar %s has %d requests in flight but %d outstanding actions", ErrInvariant, w.EntityID(e), want, n)
		}
		if full {
			if err := CheckYear(&s.YearCore, w.Keyspace(e)); err != nil {
				return fmt.Errorf("calendar %s: %w", w.EntityID(e), err)
			}
		}
	}
	return nil
}

// CheckFinal checks every calendar once the run has quiesced: nothing in
// flight, and CheckYear.
func (m YearModel) CheckFinal(w *YearWorld) error {
	for e := range w.Entities() {
		s := w.State(e)
		if len(s.Requests) != 0 {
			return fmt.Errorf("calendar %s: %d requests still in flight after quiescence", w.EntityID(e), len(s.Requests))
		}
		if err := CheckYear(&s.YearCore, w.Keyspace(e)); err != nil {
			return fmt.Errorf("calendar %s: %w", w.EntityID(e), err)
		}
	}
	return nil
}
