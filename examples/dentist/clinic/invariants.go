package clinic

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// ErrInvariant marks a broken invariant of a clinic's state; the errors
// Invariants and CheckState return wrap it.
var ErrInvariant = errors.New("clinic: invariant violated")

func broken(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...)
}

// touchedNone marks a transition that left no request to re-check (the
// last request was removed); 0 means "unknown: check everything".
const touchedNone = 1<<16 - 1

// Invariants checks the clinic's invariants after a step, in time that
// does not grow with the calendar:
//
//   - every booking lies inside the schedule, and no two overlap: the
//     booked quarter-hours (the Busy bit masks) lie inside the opening
//     hours and number exactly the quarter-hours of the confirmed
//     requests, whose own slots are booked (an overlap would leave fewer
//     bits than quarter-hours);
//   - bookings and confirmed requests correspond one to one, pending and
//     confirmed requests add up to the requests held;
//   - the amount paid equals the price, per booking and in total;
//   - every request awaiting payment or a release has an action ID, unique
//     and no greater than the counter (and exactly one outstanding tracked
//     action: the simulation model compares the count with the driver's);
//   - a booked slot honours what was asked: the preferred days and ranges
//     of an earliest-slot request, exactly the slot of an exact one.
//
// The aggregates are checked whole; requests are checked where the last
// transition changed them (the state remembers which). After a reload it
// checks everything once, as CheckState does.
func (Machine) Invariants(s *State) error {
	if s.touched == 0 {
		return CheckState(s)
	}
	if err := checkAggregates(s); err != nil {
		return err
	}
	if i := int(s.touched) - 1; s.touched != touchedNone && i < len(s.Requests) {
		if err := checkRequest(s, i); err != nil {
			return err
		}
		r := &s.Requests[i]
		for j := range s.Requests {
			o := &s.Requests[j]
			if j != i && (o.Ref == r.Ref || o.Action == r.Action) {
				return broken("requests %d and %d share a reference or action ID: %+v and %+v", r.Ref, o.Ref, *r, *o)
			}
		}
	}
	return nil
}

func checkAggregates(s *State) error {
	booked := 0
	for d := range WorkDays {
		if extra := s.Busy[d] &^ scheduleMask[d]; extra != 0 {
			return broken("%s: booked quarter-hours outside the schedule (mask %#x)", Weekday(d+1), extra)
		}
		booked += bits.OnesCount64(s.Busy[d])
	}
	if booked != int(s.BookedQuarters) {
		return broken("%d quarter-hours booked, but confirmed requests occupy %d: bookings overlap or do not match the confirmed requests", booked, s.BookedQuarters)
	}
	if int(s.Pending)+int(s.Bookings) != len(s.Requests) {
		return broken("%d pending + %d confirmed != %d requests held", s.Pending, s.Bookings, len(s.Requests))
	}
	if s.PaidCents != s.PriceCents {
		return broken("bookings paid %d cents but cost %d", s.PaidCents, s.PriceCents)
	}
	if len(s.Requests) > MaxRequests {
		return broken("%d requests held, limit %d", len(s.Requests), MaxRequests)
	}
	return nil
}

// checkRequest checks request i on its own.
func checkRequest(s *State, i int) error {
	r := &s.Requests[i]
	if r.Ref == 0 {
		return broken("request %d without a reference", i)
	}
	if !r.Type.valid() || r.Day < Monday || r.Day > Friday || r.Start >= QuartersPerDay {
		return broken("request %d malformed: %+v", r.Ref, *r)
	}
	d := r.Day - 1
	if validStarts[d][r.Type]&(1<<r.Start) == 0 {
		return broken("request %d: %s %s-%s is not inside one schedule range", r.Ref, r.Day, r.SlotStart(), r.SlotEnd())
	}
	if r.Action == 0 || r.Action > s.NextAction {
		return broken("request %d: action ID %d not in 1..%d", r.Ref, r.Action, s.NextAction)
	}
	if err := checkHonoured(r); err != nil {
		return err
	}
	price := r.Type.PriceCents()
	switch r.Status {
	case AwaitingPayment:
		if r.PaidCents != 0 {
			return broken("request %d awaits payment but paid %d", r.Ref, r.PaidCents)
		}
	case Confirmed:
		if m := r.mask(); s.Busy[d]&m != m {
			return broken("confirmed request %d: its slot %s %s is not booked", r.Ref, r.Day, r.SlotStart())
		}
		fallthrough
	case SlotTaken, Cancelling:
		if r.PaidCents != price {
			return broken("request %d (%s) paid %d cents, the price is %d", r.Ref, r.Status, r.PaidCents, price)
		}
	default:
		return broken("request %d has status %d", r.Ref, r.Status)
	}
	return nil
}

// checkHonoured checks that r's slot honours what was asked.
func checkHonoured(r *Request) error {
	k := uint8(types[r.Type].quarters)
	if r.PrefDays&(1<<(r.Day-1)) == 0 {
		return broken("request %d booked on %s, not a preferred day (%05b)", r.Ref, r.Day, r.PrefDays)
	}
	if !r.Auto {
		if r.PrefDays != 1<<(r.Day-1) || r.PrefRanges[0] != [2]uint8{r.Start, r.Start + k} || r.PrefRanges[1] != [2]uint8{} {
			return broken("exact request %d got %s %s, not the slot it asked for", r.Ref, r.Day, r.SlotStart())
		}
		return nil
	}
	for _, pr := range r.PrefRanges {
		if pr == [2]uint8{} {
			break
		}
		if pr[0] <= r.Start && r.Start+k <= pr[1] {
			return nil
		}
	}
	return broken("request %d booked at %s-%s, outside its preferred ranges %v", r.Ref, r.SlotStart(), r.SlotEnd(), r.PrefRanges)
}

// CheckState checks every invariant over the whole state, recomputing the
// calendar and the aggregates from the requests. Invariants does the same
// work incrementally; tests and the simulation model also run this one.
func CheckState(s *State) error {
	if err := checkAggregates(s); err != nil {
		return err
	}
	var busy [WorkDays]uint64
	var pending, bookings, quarters int
	var paid, price int64
	refs := make([]uint64, 0, len(s.Requests))
	ids := make([]uint64, 0, len(s.Requests))
	for i := range s.Requests {
		if err := checkRequest(s, i); err != nil {
			return err
		}
		r := &s.Requests[i]
		refs = append(refs, r.Ref)
		ids = append(ids, uint64(r.Action))
		if r.Status.open() {
			pending++
			continue
		}
		m := r.mask()
		if busy[r.Day-1]&m != 0 {
			return broken("confirmed request %d at %s %s overlaps another booking", r.Ref, r.Day, r.SlotStart())
		}
		busy[r.Day-1] |= m
		bookings++
		quarters += types[r.Type].quarters
		paid += r.PaidCents
		price += r.Type.PriceCents()
	}
	if busy != s.Busy {
		return broken("the calendar %x does not match the confirmed requests %x", s.Busy, busy)
	}
	if pending != int(s.Pending) || bookings != int(s.Bookings) || quarters != int(s.BookedQuarters) || paid != s.PaidCents || price != s.PriceCents {
		return broken("aggregates (%d pending, %d bookings, %d quarters, %d paid, %d price) do not match the requests (%d, %d, %d, %d, %d)",
			s.Pending, s.Bookings, s.BookedQuarters, s.PaidCents, s.PriceCents, pending, bookings, quarters, paid, price)
	}
	slices.Sort(refs)
	slices.Sort(ids)
	for i := 1; i < len(refs); i++ {
		if refs[i] == refs[i-1] {
			return broken("reference %d held twice", refs[i])
		}
		if ids[i] == ids[i-1] {
			return broken("action ID %d held twice", ids[i])
		}
	}
	return nil
}
