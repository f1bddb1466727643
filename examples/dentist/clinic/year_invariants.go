package clinic

import (
	"bytes"
	"encoding/binary"

	"github.com/phasm-go/phasm/machine/kv"
)

// checkYearCore checks the in-memory part of a year calendar, in time
// bounded by the requests in flight (never by the bookings):
//
//   - the counters of requests awaiting payment and releases match the
//     requests, within their limits;
//   - references and action IDs are unique, action IDs non-zero and no
//     greater than the counter;
//   - each request's slot lies inside the schedule and honours what was
//     asked (the window and preferred ranges of an earliest-slot request,
//     exactly the slot of an exact one);
//   - the amount paid equals the price, per request awaiting a release and
//     over all bookings.
func checkYearCore(s *YearCore) error {
	var payments, releases int
	for i := range s.Requests {
		r := &s.Requests[i]
		switch r.Status {
		case AwaitingPayment:
			payments++
		case SlotTaken, Cancelling:
			releases++
			if r.PaidCents != r.Type.PriceCents() {
				return broken("request %d paid %d for a %s", r.Ref, r.PaidCents, r.Type)
			}
		default:
			return broken("request %d in flight with status %s", r.Ref, r.Status)
		}
		if r.Ref == 0 || r.Action == 0 || r.Action > s.NextAction {
			return broken("request %d has action %d (counter %d)", r.Ref, r.Action, s.NextAction)
		}
		for j := range s.Requests[:i] {
			if o := &s.Requests[j]; o.Ref == r.Ref || o.Action == r.Action {
				return broken("requests %d and %d share a reference or action ID", r.Ref, o.Ref)
			}
		}
		if err := checkYearSlot(r.Day, r.Chair, r.Start, r.Type); err != nil {
			return err
		}
		if r.Day < r.WindowFrom || r.Day >= r.WindowFrom+uint16(r.WindowDays) {
			return broken("request %d got day %d outside its window %d+%d", r.Ref, r.Day, r.WindowFrom, r.WindowDays)
		}
		k := uint8(types[r.Type].quarters)
		inRange := false
		for _, pr := range r.PrefRanges {
			if pr == [2]uint8{} {
				break
			}
			if r.Start >= pr[0] && r.Start+k <= pr[1] {
				inRange = true
			}
		}
		if !inRange {
			return broken("request %d got quarter %d outside its preferred ranges %v", r.Ref, r.Start, r.PrefRanges)
		}
		if !r.Auto && (r.WindowDays != 1 || r.PrefRanges[0] != [2]uint8{r.Start, r.Start + k}) {
			return broken("exact request %d did not get exactly its slot", r.Ref)
		}
	}
	switch {
	case payments != int(s.Payments) || releases != int(s.Releases):
		return broken("counters say %d payments and %d releases, requests say %d and %d", s.Payments, s.Releases, payments, releases)
	case payments > MaxYearPayments || releases > MaxYearReleases:
		return broken("%d payments and %d releases in flight, limits %d and %d", payments, releases, MaxYearPayments, MaxYearReleases)
	case s.PaidCents != s.PriceCents:
		return broken("bookings paid %d for a price of %d", s.PaidCents, s.PriceCents)
	case s.BookedQuarters < s.Bookings || s.BookedQuarters > 4*s.Bookings:
		return broken("%d bookings occupy %d quarters", s.Bookings, s.BookedQuarters)
	}
	return nil
}

func checkYearSlot(day uint16, chair, q uint8, t AppointmentType) error {
	if day >= YearDays || int(chair) >= Chairs || !t.valid() {
		return broken("slot day %d chair %d type %d out of range", day, chair, t)
	}
	wd := YearWeekday(day)
	if wd > Friday || q >= QuartersPerDay || validStarts[wd-1][t]&(1<<q) == 0 {
		return broken("a %s on day %d (%s) at quarter %d lies outside the schedule", t, day, wd, q)
	}
	return nil
}

// CheckYear checks a year calendar whole, reading every booking from src
// (its keyspace, or a plain state's Table): bookings lie inside the
// schedule and never overlap on a chair, each is paid its price, the
// reference index and the bookings correspond one to one, and the
// aggregates of the in-memory part match. It also runs the in-memory
// checks. It reads in pages of at most kv.MaxScanLimit pairs.
func CheckYear(s *YearCore, src kv.Source) error {
	if err := checkYearCore(s); err != nil {
		return err
	}
	var bookings, quarters uint32
	var paid, price int64
	refs := map[uint64][4]byte{}
	var busy uint64
	var lastDay uint16
	var lastChair uint8 = 255
	err := scanPrefix(src, []byte{bookingPrefix}, func(k, v []byte) error {
		b, err := decodeBooking(k, v)
		if err != nil {
			return err
		}
		if err := checkYearSlot(b.Day, b.Chair, b.Start, b.Type); err != nil {
			return err
		}
		if b.Day != lastDay || b.Chair != lastChair {
			busy, lastDay, lastChair = 0, b.Day, b.Chair
		}
		m := span(b.Start, types[b.Type].quarters)
		if busy&m != 0 {
			return broken("booking %d overlaps another on day %d chair %d", b.Ref, b.Day, b.Chair)
		}
		busy |= m
		if b.PaidCents != b.Type.PriceCents() {
			return broken("booking %d paid %d for a %s", b.Ref, b.PaidCents, b.Type)
		}
		if _, dup := refs[b.Ref]; dup || b.Ref == 0 {
			return broken("booking reference %d used twice", b.Ref)
		}
		refs[b.Ref] = [4]byte(k[1:5])
		bookings++
		quarters += uint32(types[b.Type].quarters)
		paid += b.PaidCents
		price += b.Type.PriceCents()
		return nil
	})
	if err != nil {
		return err
	}
	indexed := 0
	err = scanPrefix(src, []byte{refPrefix}, func(k, v []byte) error {
		if len(k) != 9 {
			return broken("malformed index key %x", k)
		}
		ref := binary.BigEndian.Uint64(k[1:])
		loc, ok := refs[ref]
		if !ok || !bytes.Equal(loc[:], v) {
			return broken("index entry %d points at %x, the booking is at %x (found %v)", ref, v, loc, ok)
		}
		indexed++
		return nil
	})
	if err != nil {
		return err
	}
	for i := range s.Requests {
		if _, ok := refs[s.Requests[i].Ref]; ok {
			return broken("reference %d is both booked and in flight", s.Requests[i].Ref)
		}
	}
	switch {
	case indexed != len(refs):
		return broken("%d bookings but %d index entries", len(refs), indexed)
	case bookings != s.Bookings || quarters != s.BookedQuarters || paid != s.PaidCents || price != s.PriceCents:
		return broken("keyspace holds %d bookings (%d quarters, paid %d, price %d), the state counts %d (%d, %d, %d)",
			bookings, quarters, paid, price, s.Bookings, s.BookedQuarters, s.PaidCents, s.PriceCents)
	}
	return nil
}

// scanPrefix calls fn for every pair under prefix, in key order.
func scanPrefix(src kv.Source, prefix []byte, fn func(k, v []byte) error) error {
	end := kv.PrefixEnd(prefix)
	cursor := prefix
	for {
		pairs, more, err := src.Scan(cursor, end, kv.MaxScanLimit)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if err := fn(p.Key, p.Value); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
		cursor = append(bytes.Clone(pairs[len(pairs)-1].Key), 0)
	}
}
