package clinic

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// The year calendar: a clinic with several chairs over a whole year, too
// large to be a plain value (tens of thousands of bookings). Two kinds run
// the same logic: YearKind keeps the bookings in the entity's keyspace
// (database-backed state, package machine/kv), one key per booked slot,
// and scans it for free slots; PlainYearKind keeps them in the state value
// (a Table encoded whole), to compare. The in-memory part (YearCore) holds
// only what is in flight: requests awaiting payment or a release.

// Size of the year calendar.
const (
	// YearDays is the length of the year calendar: 52 weeks; day 0 is a
	// Monday, and day d is weekday d%7 (Monday to Friday open).
	YearDays = 52 * 7
	// Chairs is the number of chairs; each has its own calendar.
	Chairs = 32
	// MaxYearPayments bounds the requests awaiting payment (ErrBusy).
	MaxYearPayments = 32
	// MaxYearReleases bounds the requests awaiting a release (slot taken or
	// cancelled); a cancellation past it is rejected with ErrBusy.
	MaxYearReleases = 64
	// MaxWindowDays bounds the days an earliest-slot request searches.
	MaxWindowDays = 14
)

// YearInput is a request to a year calendar.
type YearInput struct {
	Kind InputKind
	// Ref is the client's booking reference: non-zero, unique among the
	// requests and bookings the calendar holds.
	Ref  uint64
	Type AppointmentType // RequestExact, RequestEarliest
	// Day is the day of the slot (RequestExact) or the first day searched
	// (RequestEarliest), 0 to YearDays-1.
	Day   uint16
	Chair uint8 // RequestExact: 0 to Chairs-1
	Start Clock // RequestExact
	// WindowDays is how many days from Day a RequestEarliest searches, in
	// order (1 to MaxWindowDays), each day chair by chair.
	WindowDays uint8
	// Ranges are the preferred time ranges of a RequestEarliest; none means
	// any time. The list ends at its first zero range.
	Ranges [MaxRanges]TimeRange
}

// YearRequest is a request in flight: awaiting its payment or the release
// of its pre-authorisation. Confirmed bookings live in the calendar's
// keyspace, not here.
type YearRequest struct {
	Ref       uint64
	Action    machine.ActionID
	PaidCents int64
	Day       uint16
	Chair     uint8
	Start     uint8 // quarter-hour of the day
	Type      AppointmentType
	Status    Status // AwaitingPayment, SlotTaken or Cancelling
	Auto      bool
	// What the slot had to honour: the search window and the preferred
	// quarter-hour ranges (for an exact request, exactly its slot).
	WindowFrom uint16
	WindowDays uint8
	PrefRanges [MaxRanges][2]uint8
}

// YearCore is the in-memory part of a year calendar: small and bounded
// however many bookings the calendar holds.
type YearCore struct {
	NextAction machine.ActionID
	Requests   []YearRequest
	Payments   uint16 // requests awaiting payment
	Releases   uint16 // requests awaiting a release
	// Aggregates over the bookings in the keyspace, kept so the invariants
	// are checked in constant time after each step.
	Bookings       uint32
	BookedQuarters uint32
	PaidCents      int64
	PriceCents     int64
	Stats          Stats
}

// YearState is the database-backed year calendar: the core in memory, the
// bookings in the entity's keyspace, read and written through the view.
type YearState struct {
	YearCore
	view *kv.View `phasm:"-"`
}

// BindView implements machine.ViewState.
func (s *YearState) BindView(v *kv.View) { s.view = v }

// Keys returns the calendar's view, for queries: it reads the committed
// keyspace between transitions.
func (s *YearState) Keys() *kv.View { return s.view }

// PlainYearState is the same calendar as a plain value: the bookings are
// a Table inside the state, encoded whole in snapshots and digests and
// copied on every commit.
type PlainYearState struct {
	YearCore
	Slots Table
}

// calendar is what the year logic reads and writes: a *kv.View, or the
// plain state's Table.
type calendar interface {
	Get(key []byte) ([]byte, bool, error)
	Set(key, value []byte) error
	Delete(key []byte) error
	Scan(start, end []byte, limit int) ([]kv.Pair, bool, error)
}

// Keys of the calendar's keyspace:
//
//	"b" day(2) chair(1) quarter(1) -> ref(8) type(1) paid(varint): a booking
//	"r" ref(8)                     -> day(2) chair(1) quarter(1): its index
const (
	bookingPrefix = 'b'
	refPrefix     = 'r'
)

func slotKey(day uint16, chair, q uint8) []byte {
	return []byte{bookingPrefix, byte(day >> 8), byte(day), chair, q}
}

func refKey(ref uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{refPrefix}, ref)
}

func bookingValue(ref uint64, t AppointmentType, paid int64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), ref)
	b = append(b, byte(t))
	return binary.AppendVarint(b, paid)
}

// YearBooking is a booking as the keyspace stores it.
type YearBooking struct {
	Day       uint16
	Chair     uint8
	Start     uint8
	Ref       uint64
	Type      AppointmentType
	PaidCents int64
}

// decodeBooking decodes a booking key and value.
func decodeBooking(k, v []byte) (YearBooking, error) {
	if len(k) != 5 || k[0] != bookingPrefix || len(v) < 10 {
		return YearBooking{}, fmt.Errorf("%w: malformed booking %x=%x", ErrInvariant, k, v)
	}
	b := YearBooking{Day: binary.BigEndian.Uint16(k[1:]), Chair: k[3], Start: k[4], Ref: binary.BigEndian.Uint64(v), Type: AppointmentType(v[8])}
	paid, n := binary.Varint(v[9:])
	if n <= 0 || 9+n != len(v) || !b.Type.valid() {
		return YearBooking{}, fmt.Errorf("%w: malformed booking value %x", ErrInvariant, v)
	}
	b.PaidCents = paid
	return b, nil
}

// Weekday returns the weekday of calendar day d.
func YearWeekday(d uint16) Weekday { return Weekday(d%7 + 1) }

// chairBusy returns the booked quarters of one chair on one day.
func chairBusy(cal calendar, day uint16, chair uint8) (uint64, error) {
	start := slotKey(day, chair, 0)
	pairs, more, err := cal.Scan(start, kv.PrefixEnd(start[:4]), QuartersPerDay+1)
	if err != nil {
		return 0, err
	}
	if more {
		return 0, fmt.Errorf("%w: more than %d bookings for chair %d on day %d", ErrInvariant, QuartersPerDay, chair, day)
	}
	var busy uint64
	for _, p := range pairs {
		b, err := decodeBooking(p.Key, p.Value)
		if err != nil {
			return 0, err
		}
		busy |= span(b.Start, types[b.Type].quarters)
	}
	return busy, nil
}

// dayBusy returns the booked quarters of every chair on one day, with one
// scan.
func dayBusy(cal calendar, day uint16) ([Chairs]uint64, error) {
	var busy [Chairs]uint64
	start := slotKey(day, 0, 0)
	pairs, more, err := cal.Scan(start, kv.PrefixEnd(start[:3]), Chairs*QuartersPerDay+1)
	if err != nil {
		return busy, err
	}
	if more {
		return busy, fmt.Errorf("%w: too many bookings on day %d", ErrInvariant, day)
	}
	for _, p := range pairs {
		b, err := decodeBooking(p.Key, p.Value)
		if err != nil {
			return busy, err
		}
		if int(b.Chair) >= Chairs {
			return busy, fmt.Errorf("%w: booking on chair %d", ErrInvariant, b.Chair)
		}
		busy[b.Chair] |= span(b.Start, types[b.Type].quarters)
	}
	return busy, nil
}

// YearMachine is the database-backed year calendar machine.
type YearMachine struct{}

// PlainYearMachine is the same calendar as a plain value.
type PlainYearMachine struct{}

var (
	_ machine.Machine[YearState, YearInput, Action, Result, machine.None]      = YearMachine{}
	_ machine.Machine[PlainYearState, YearInput, Action, Result, machine.None] = PlainYearMachine{}
	_ machine.ViewState                                                        = (*YearState)(nil)
)

// Transition applies a request, a cancellation or a payment result. Reads
// of the keyspace may fail; the error is returned as is (the runtime fails
// the step and the input may be retried). Every input is validated before
// anything is written.
func (YearMachine) Transition(s *YearState, in machine.Input[YearInput, Result], out *Actions) error {
	return yearTransition(&s.YearCore, s.view, in, out)
}

// Restore re-emits a status check for every request awaiting payment and
// a release for every request awaiting one.
func (YearMachine) Restore(s *YearState, out *Actions) error { return yearRestore(&s.YearCore, out) }

// Invariants checks the in-memory part after every step, in constant time;
// CheckYear checks the bookings in the keyspace too.
func (YearMachine) Invariants(s *YearState) error { return checkYearCore(&s.YearCore) }

// Transition is YearMachine's, over the state's Table.
func (PlainYearMachine) Transition(s *PlainYearState, in machine.Input[YearInput, Result], out *Actions) error {
	return yearTransition(&s.YearCore, &s.Slots, in, out)
}

// Restore is YearMachine's.
func (PlainYearMachine) Restore(s *PlainYearState, out *Actions) error {
	return yearRestore(&s.YearCore, out)
}

// Invariants is YearMachine's.
func (PlainYearMachine) Invariants(s *PlainYearState) error { return checkYearCore(&s.YearCore) }

func yearTransition(s *YearCore, cal calendar, in machine.Input[YearInput, Result], out *Actions) error {
	if c := in.Completion; c != nil {
		return yearComplete(s, cal, c, out)
	}
	v := &in.Value
	switch v.Kind {
	case RequestExact:
		return yearExact(s, cal, v, out)
	case RequestEarliest:
		return yearEarliest(s, cal, v, out)
	case Cancel:
		return yearCancel(s, cal, v.Ref, out)
	default:
		return ErrUnknownInput
	}
}

func (s *YearCore) find(ref uint64) int {
	for i := range s.Requests {
		if s.Requests[i].Ref == ref {
			return i
		}
	}
	return -1
}

func yearAdmit(s *YearCore, cal calendar, v *YearInput) error {
	switch {
	case v.Ref == 0:
		return ErrBadRef
	case !v.Type.valid():
		return ErrBadType
	case s.find(v.Ref) >= 0:
		return ErrDuplicateRef
	case s.Payments >= MaxYearPayments:
		return ErrBusy
	}
	_, booked, err := cal.Get(refKey(v.Ref))
	if err != nil {
		return err
	}
	if booked {
		return ErrDuplicateRef
	}
	return nil
}

func yearExact(s *YearCore, cal calendar, v *YearInput, out *Actions) error {
	if v.Ref == 0 || !v.Type.valid() {
		return yearAdmit(s, cal, v)
	}
	if v.Day >= YearDays || int(v.Chair) >= Chairs {
		return ErrBadDay
	}
	wd := YearWeekday(v.Day)
	if wd > Friday {
		return ErrClosed
	}
	if v.Start%QuarterMinutes != 0 {
		return ErrBadTime
	}
	if v.Start < DayStart || v.Start >= DayStart+QuartersPerDay*QuarterMinutes {
		return ErrOutsideHours
	}
	q := uint8(quarterOf(v.Start))
	if validStarts[wd-1][v.Type]&(1<<q) == 0 {
		return ErrOutsideHours
	}
	if err := yearAdmit(s, cal, v); err != nil {
		return err
	}
	k := types[v.Type].quarters
	busy, err := chairBusy(cal, v.Day, v.Chair)
	if err != nil {
		return err
	}
	if busy&span(q, k) != 0 {
		return ErrSlotTaken
	}
	r := YearRequest{Ref: v.Ref, Day: v.Day, Chair: v.Chair, Start: q, Type: v.Type, WindowFrom: v.Day, WindowDays: 1}
	r.PrefRanges[0] = [2]uint8{q, q + uint8(k)}
	return yearAccept(s, r, out)
}

func yearEarliest(s *YearCore, cal calendar, v *YearInput, out *Actions) error {
	if v.WindowDays == 0 || v.WindowDays > MaxWindowDays || int(v.Day)+int(v.WindowDays) > YearDays {
		return ErrBadDay
	}
	r := YearRequest{Ref: v.Ref, Type: v.Type, Auto: true, WindowFrom: v.Day, WindowDays: v.WindowDays}
	if !v.Type.valid() {
		return ErrBadType
	}
	k := types[v.Type].quarters
	var prefStarts uint64
	n := 0
	for _, tr := range v.Ranges {
		if tr == (TimeRange{}) {
			break
		}
		if tr.From >= tr.To || tr.To > 24*60 || tr.From%QuarterMinutes != 0 || tr.To%QuarterMinutes != 0 {
			return ErrBadRange
		}
		lo := min(max(int(tr.From)-int(DayStart), 0)/QuarterMinutes, QuartersPerDay)
		hi := min(max(int(tr.To)-int(DayStart), 0)/QuarterMinutes, QuartersPerDay)
		if lo < hi {
			r.PrefRanges[n] = [2]uint8{uint8(lo), uint8(hi)}
			n++
			prefStarts |= startsWithin(lo, hi, k)
		}
	}
	if v.Ranges[0] == (TimeRange{}) {
		r.PrefRanges[0] = [2]uint8{0, QuartersPerDay}
		prefStarts = startsWithin(0, QuartersPerDay, k)
	}
	if err := yearAdmit(s, cal, v); err != nil {
		return err
	}
	for d := v.Day; d < v.Day+uint16(v.WindowDays); d++ {
		wd := YearWeekday(d)
		if wd > Friday {
			continue
		}
		valid := validStarts[wd-1][v.Type] & prefStarts
		if valid == 0 {
			continue
		}
		busy, err := dayBusy(cal, d)
		if err != nil {
			return err
		}
		for c := range Chairs {
			if cand := valid & freeStarts(busy[c], k); cand != 0 {
				r.Day, r.Chair, r.Start = d, uint8(c), uint8(bits.TrailingZeros64(cand))
				return yearAccept(s, r, out)
			}
		}
	}
	return ErrNoSlot
}

func yearAccept(s *YearCore, r YearRequest, out *Actions) error {
	s.NextAction++
	r.Action = s.NextAction
	r.Status = AwaitingPayment
	s.Requests = append(s.Requests, r)
	s.Payments++
	s.Stats.Requests++
	return out.Track(r.Action, Action{Kind: PreAuthorise, Ref: r.Ref, AmountCents: r.Type.PriceCents()})
}

func yearCancel(s *YearCore, cal calendar, ref uint64, out *Actions) error {
	if ref == 0 {
		return ErrBadRef
	}
	loc, found, err := cal.Get(refKey(ref))
	if err != nil {
		return err
	}
	if !found {
		if s.find(ref) >= 0 {
			return ErrNotConfirmed
		}
		return ErrUnknownRef
	}
	if s.Releases >= MaxYearReleases {
		return ErrBusy
	}
	if len(loc) != 4 {
		return fmt.Errorf("%w: malformed index of booking %d", ErrInvariant, ref)
	}
	sk := slotKey(binary.BigEndian.Uint16(loc), loc[2], loc[3])
	val, found, err := cal.Get(sk)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: booking %d indexed at a free slot", ErrInvariant, ref)
	}
	b, err := decodeBooking(sk, val)
	if err != nil {
		return err
	}
	if err := cal.Delete(sk); err != nil {
		return err
	}
	if err := cal.Delete(refKey(ref)); err != nil {
		return err
	}
	s.unbook(b.Type, b.PaidCents)
	s.NextAction++
	r := YearRequest{Ref: ref, Action: s.NextAction, PaidCents: b.PaidCents, Day: b.Day, Chair: b.Chair, Start: b.Start,
		Type: b.Type, Status: Cancelling, WindowFrom: b.Day, WindowDays: 1}
	r.PrefRanges[0] = [2]uint8{b.Start, b.Start + uint8(types[b.Type].quarters)}
	s.Requests = append(s.Requests, r)
	s.Releases++
	s.Stats.Cancelled++
	return out.Track(r.Action, Action{Kind: Release, Ref: ref, AmountCents: b.PaidCents})
}

func (s *YearCore) book(t AppointmentType, paid int64) {
	s.Bookings++
	s.BookedQuarters += uint32(types[t].quarters)
	s.PaidCents += paid
	s.PriceCents += t.PriceCents()
}

func (s *YearCore) unbook(t AppointmentType, paid int64) {
	s.Bookings--
	s.BookedQuarters -= uint32(types[t].quarters)
	s.PaidCents -= paid
	s.PriceCents -= t.PriceCents()
}

func (s *YearCore) remove(i int) {
	last := len(s.Requests) - 1
	s.Requests[i] = s.Requests[last]
	s.Requests[last] = YearRequest{}
	s.Requests = s.Requests[:last]
	if len(s.Requests) == 0 {
		s.Requests = nil // canonical, as after a decode
	}
}

func yearComplete(s *YearCore, cal calendar, c *machine.Completion[Result], out *Actions) error {
	i := -1
	for j := range s.Requests {
		if s.Requests[j].Action == c.ActionID {
			i = j
			break
		}
	}
	if i < 0 {
		return ErrUnexpectedCompletion
	}
	r := &s.Requests[i]
	if r.Status != AwaitingPayment { // the release completed
		if c.Result.OK {
			s.Stats.Released++
		} else {
			s.Stats.ReleaseFailures++
		}
		s.Releases--
		s.remove(i)
		return nil
	}
	if !c.Result.OK {
		s.Payments--
		s.Stats.NoSlot++
		s.remove(i)
		return nil
	}
	busy, err := chairBusy(cal, r.Day, r.Chair)
	if err != nil {
		return err
	}
	paid := r.Type.PriceCents()
	if busy&span(r.Start, types[r.Type].quarters) == 0 {
		if err := cal.Set(slotKey(r.Day, r.Chair, r.Start), bookingValue(r.Ref, r.Type, paid)); err != nil {
			return err
		}
		loc := binary.BigEndian.AppendUint16(nil, r.Day)
		if err := cal.Set(refKey(r.Ref), append(loc, r.Chair, r.Start)); err != nil {
			return err
		}
		s.book(r.Type, paid)
		s.Payments--
		s.Stats.Confirmed++
		s.remove(i)
		return nil
	}
	s.NextAction++
	r.Action = s.NextAction
	r.Status = SlotTaken
	r.PaidCents = paid
	s.Payments--
	s.Releases++
	s.Stats.SlotTaken++
	return out.Track(r.Action, Action{Kind: Release, Ref: r.Ref, AmountCents: paid})
}

func yearRestore(s *YearCore, out *Actions) error {
	for i := range s.Requests {
		r := &s.Requests[i]
		a := Action{Kind: Release, Ref: r.Ref, AmountCents: r.PaidCents}
		if r.Status == AwaitingPayment {
			a = Action{Kind: CheckStatus, Ref: r.Ref, AmountCents: r.Type.PriceCents()}
		}
		if err := out.Track(r.Action, a); err != nil {
			return err
		}
	}
	return nil
}

// YearKind is the kind of the database-backed year calendar.
type YearKind = machine.Kind[YearState, YearInput, Action, Result, machine.None]

// PlainYearKind is the kind of the plain-value year calendar.
type PlainYearKind = machine.Kind[PlainYearState, YearInput, Action, Result, machine.None]

// YearKindName and PlainYearKindName name the two kinds.
const (
	YearKindName      = "clinic-year"
	PlainYearKindName = "clinic-year-plain"
)

// NewYearKind returns the database-backed year calendar kind. Its
// in-memory part is copied with CloneYearState.
func NewYearKind() (*YearKind, error) {
	return machine.NewKind[YearState, YearInput, Action, Result, machine.None](YearKindName, YearMachine{},
		machine.Options[YearState, YearInput, Action, Result, machine.None]{
			Clone: func(dst, src *YearState) {
				cloneCore(&dst.YearCore, &src.YearCore)
				dst.view = src.view
			},
		})
}

// NewPlainYearKind returns the plain-value year calendar kind: every
// commit copies the whole calendar, every digest encodes it.
func NewPlainYearKind() (*PlainYearKind, error) {
	return machine.NewKind[PlainYearState, YearInput, Action, Result, machine.None](PlainYearKindName, PlainYearMachine{},
		machine.Options[PlainYearState, YearInput, Action, Result, machine.None]{
			Clone: func(dst, src *PlainYearState) {
				cloneCore(&dst.YearCore, &src.YearCore)
				dst.Slots = src.Slots.Clone()
			},
		})
}

func cloneCore(dst, src *YearCore) {
	reqs := dst.Requests
	*dst = *src
	if src.Requests == nil {
		dst.Requests = nil
		return
	}
	dst.Requests = append(reqs[:0], src.Requests...)
}

// FillYear books n cleanings (n at most about 190,000), spread evenly over
// the year's bookable quarter-hours of chairs 0 to Chairs-2, by calling set
// with each key and value to store, and returns the in-memory part that
// goes with them. The last chair stays free. It is for benchmarks and load
// tests that need a calendar of a given size without running n payments.
func FillYear(n int, set func(key, value []byte)) (YearCore, error) {
	type slot struct {
		day uint16
		q   uint8
	}
	var slots []slot
	for d := uint16(0); d < YearDays; d++ {
		wd := YearWeekday(d)
		if wd > Friday {
			continue
		}
		for m := validStarts[wd-1][Cleaning]; m != 0; m &= m - 1 {
			slots = append(slots, slot{d, uint8(bits.TrailingZeros64(m))})
		}
	}
	capacity := len(slots) * (Chairs - 1)
	if n < 0 || n > capacity {
		return YearCore{}, fmt.Errorf("clinic: cannot book %d cleanings: the calendar holds %d", n, capacity)
	}
	var s YearCore
	for i := range n {
		// Spread evenly: booking i takes position i*capacity/n.
		pos := i * capacity / n
		sl, chair := slots[pos/(Chairs-1)], uint8(pos%(Chairs-1))
		ref := uint64(1_000_000_000 + i)
		set(slotKey(sl.day, chair, sl.q), bookingValue(ref, Cleaning, Cleaning.PriceCents()))
		loc := binary.BigEndian.AppendUint16(nil, sl.day)
		set(refKey(ref), append(loc, chair, sl.q))
		s.book(Cleaning, Cleaning.PriceCents())
		s.Stats.Requests++
		s.Stats.Confirmed++
	}
	return s, nil
}
