package clinic

import (
	"fmt"
	"math/bits"

	"github.com/phasm-go/phasm/machine"
)

// KindName is the name of the clinic kind.
const KindName = "clinic"

// Limits of one clinic's calendar.
const (
	// MaxPending bounds the requests awaiting payment or a release: a new
	// request is rejected with ErrBusy when MaxPending are pending, a
	// cancellation when MaxPending+MaxBookings are (cancelled bookings
	// awaiting their release count as pending).
	MaxPending = 32
	// MaxBookings is the most bookings a week can hold (every bookable
	// quarter-hour a separate cleaning).
	MaxBookings = 124
	// MaxRequests bounds the requests a clinic holds: pending ones, bookings,
	// and cancelled bookings awaiting their release.
	MaxRequests = MaxPending + 2*MaxBookings
	// MaxRanges is the number of preferred time ranges a request may give.
	MaxRanges = 4
)

// InputKind says what an input asks for.
type InputKind uint8

// The inputs.
const (
	// RequestExact asks for the slot Day at Start for an appointment of Type.
	RequestExact InputKind = iota + 1
	// RequestEarliest asks for the earliest free slot that matches Prefer:
	// the preferred days in the order given, and in each day the earliest
	// start (15-minute steps) at which the appointment lies wholly inside
	// one schedule range and one preferred time range.
	RequestEarliest
	// Cancel cancels the confirmed booking Ref: the slot is freed at once
	// and the payment's pre-authorisation released.
	Cancel
)

// String names the input kind.
func (k InputKind) String() string {
	switch k {
	case RequestExact:
		return "exact"
	case RequestEarliest:
		return "earliest"
	case Cancel:
		return "cancel"
	default:
		return fmt.Sprintf("InputKind(%d)", uint8(k))
	}
}

// Preferences of a RequestEarliest. Lists end at their first zero entry;
// no days means Monday to Friday in order, no ranges means any time.
type Preferences struct {
	Days   [WorkDays]Weekday
	Ranges [MaxRanges]TimeRange
}

// Input is a request to a clinic. Ref is the client's booking reference:
// non-zero and unique among the requests the clinic holds (a reference
// can be reused once its request has ended).
type Input struct {
	Kind   InputKind
	Ref    uint64
	Type   AppointmentType // RequestExact, RequestEarliest
	Day    Weekday         // RequestExact
	Start  Clock           // RequestExact
	Prefer Preferences     // RequestEarliest
}

// ActionKind says what a tracked action asks the payment provider.
type ActionKind uint8

// The tracked actions.
const (
	// PreAuthorise asks for a pre-authorisation of AmountCents for Ref.
	PreAuthorise ActionKind = iota + 1
	// CheckStatus asks whether the pre-authorisation for Ref went through;
	// Restore emits it instead of a second pre-authorisation.
	CheckStatus
	// Release releases the pre-authorisation for Ref (its slot was taken,
	// or the booking was cancelled).
	Release
)

// String names the action kind.
func (k ActionKind) String() string {
	switch k {
	case PreAuthorise:
		return "pre-authorise"
	case CheckStatus:
		return "check status"
	case Release:
		return "release"
	default:
		return fmt.Sprintf("ActionKind(%d)", uint8(k))
	}
}

// Action is a tracked action for the payment provider. Its executor passes
// machine.IdempotencyKey to the provider, so a retried pre-authorisation
// is never charged twice.
type Action struct {
	Kind        ActionKind
	Ref         uint64
	AmountCents int64
}

// Reason says why a payment action failed.
type Reason uint8

// The failure reasons.
const (
	// Declined: the provider refused (card declined, limit reached).
	Declined Reason = iota + 1
	// Unavailable: the runtime gave up (no answer before the timeout, or
	// retries exhausted).
	Unavailable
)

// Result is the payment provider's answer: for PreAuthorise and
// CheckStatus, whether the amount is authorised; for Release, whether the
// hold was released.
type Result struct {
	OK     bool
	Reason Reason
}

// Status is where a request stands.
type Status uint8

// The statuses of requests a clinic holds. Requests that end (payment
// failed: "no slot"; released after losing the slot; released after a
// cancellation) leave the state and are counted in Stats.
const (
	// AwaitingPayment: the pre-authorisation (or, after a crash, its status
	// check) is outstanding.
	AwaitingPayment Status = iota + 1
	// Confirmed: paid and booked.
	Confirmed
	// SlotTaken: paid, but the slot was booked by another request first;
	// the release is outstanding.
	SlotTaken
	// Cancelling: a cancelled booking whose release is outstanding; its
	// slot is already free.
	Cancelling
)

// String names the status.
func (s Status) String() string {
	switch s {
	case AwaitingPayment:
		return "awaiting payment"
	case Confirmed:
		return "confirmed"
	case SlotTaken:
		return "slot taken"
	case Cancelling:
		return "cancelling"
	default:
		return fmt.Sprintf("Status(%d)", uint8(s))
	}
}

// open reports whether a request with status s has a tracked action
// outstanding.
func (s Status) open() bool { return s == AwaitingPayment || s == SlotTaken || s == Cancelling }

// Request is one request the clinic holds.
type Request struct {
	Ref uint64
	// Action is the outstanding action (pre-authorisation, status check or
	// release); for a confirmed request, the pre-authorisation's ID, kept
	// as the payment reference.
	Action machine.ActionID
	// PaidCents is the amount pre-authorised (confirmed, cancelling).
	PaidCents int64
	Day       Weekday
	// Start is the slot's quarter-hour (see DayStart); SlotStart gives it
	// as a clock time.
	Start  uint8
	Type   AppointmentType
	Status Status
	// Auto marks a RequestEarliest; otherwise the request asked for
	// exactly this slot.
	Auto bool
	// PrefDays (bit d-1 for day d) and PrefRanges (quarter-hour ranges
	// [lo, hi), ending at the first empty one) are what the slot had to
	// honour: the preferences of an earliest-slot request, or exactly the
	// slot asked for.
	PrefDays   uint8
	PrefRanges [MaxRanges][2]uint8
}

// SlotStart returns the start of the request's slot.
func (r *Request) SlotStart() Clock { return clockOf(r.Start) }

// SlotEnd returns the end of the request's slot.
func (r *Request) SlotEnd() Clock { return clockOf(r.Start) + Clock(r.Type.Minutes()) }

func (r *Request) mask() uint64 { return span(r.Start, types[r.Type].quarters) }

// Stats count what a clinic has done, for reports and outside checks.
type Stats struct {
	Requests        uint64 // requests accepted
	Confirmed       uint64 // payments that booked their slot
	NoSlot          uint64 // requests whose payment failed
	SlotTaken       uint64 // payments whose slot was taken meanwhile
	Cancelled       uint64 // bookings cancelled
	Released        uint64 // releases completed
	ReleaseFailures uint64 // releases that failed (for staff follow-up)
}

// State is one clinic's weekly calendar.
type State struct {
	// NextAction is the last action ID used; IDs are never reused.
	NextAction machine.ActionID
	// Busy has the booked quarter-hours of each working day (bit q of
	// Busy[d] is quarter q of day d+1).
	Busy [WorkDays]uint64
	// Requests are the requests the clinic holds, in no particular order.
	Requests []Request

	// Running aggregates over Requests, kept so invariants are checked in
	// constant time after each step.
	Pending        uint16 // requests awaiting payment or a release
	Bookings       uint16 // confirmed requests
	BookedQuarters uint16 // quarter-hours they occupy
	PaidCents      int64  // what they paid
	PriceCents     int64  // what they cost

	Stats Stats

	// touched is 1 + the index of the request the last transition changed
	// (0: none, or unknown). It is not state: the codec skips it, so after
	// a reload it is 0 and Invariants checks everything once.
	touched uint16
}

// Find returns the request with reference ref, or nil.
func (s *State) Find(ref uint64) *Request {
	if i := s.find(ref); i >= 0 {
		return &s.Requests[i]
	}
	return nil
}

func (s *State) find(ref uint64) int {
	for i := range s.Requests {
		if s.Requests[i].Ref == ref {
			return i
		}
	}
	return -1
}

// The vocabulary, for brevity.
type (
	// In is a clinic's input as Transition receives it.
	In = machine.Input[Input, Result]
	// Actions collects a clinic's actions.
	Actions = machine.Actions[Action, machine.None]
	// Kind is the clinic kind.
	Kind = machine.Kind[State, Input, Action, Result, machine.None]
	// Driver runs one clinic.
	Driver = machine.Driver[State, Input, Action, Result, machine.None]
	// Options configure the clinic kind.
	Options = machine.Options[State, Input, Action, Result, machine.None]
)

// Errors a clinic rejects inputs with. Check them with errors.Is.
var (
	ErrBadRef               = machine.NewError("clinic.bad_ref", "clinic: booking reference must be non-zero")
	ErrDuplicateRef         = machine.NewError("clinic.duplicate_ref", "clinic: booking reference already in use")
	ErrUnknownRef           = machine.NewError("clinic.unknown_ref", "clinic: no such booking")
	ErrNotConfirmed         = machine.NewError("clinic.not_confirmed", "clinic: only a confirmed booking can be cancelled")
	ErrBadType              = machine.NewError("clinic.bad_type", "clinic: unknown appointment type")
	ErrBadDay               = machine.NewError("clinic.bad_day", "clinic: invalid day")
	ErrClosed               = machine.NewError("clinic.closed", "clinic: closed on that day")
	ErrBadTime              = machine.NewError("clinic.bad_time", "clinic: start must be on a 15-minute step")
	ErrOutsideHours         = machine.NewError("clinic.outside_hours", "clinic: appointment does not fit inside opening hours")
	ErrBadRange             = machine.NewError("clinic.bad_range", "clinic: invalid preferred time range")
	ErrSlotTaken            = machine.NewError("clinic.slot_taken", "clinic: slot already booked")
	ErrNoSlot               = machine.NewError("clinic.no_slot", "clinic: no free slot matches the preferences")
	ErrBusy                 = machine.NewError("clinic.busy", "clinic: too many requests pending")
	ErrUnknownInput         = machine.NewError("clinic.unknown_input", "clinic: unknown input kind")
	ErrUnexpectedCompletion = machine.NewError("clinic.unexpected_completion", "clinic: completion for no outstanding action")
)

// defect plants a bug for the simulation tests (export_test.go); the zero
// value is the correct machine.
type defect uint8

const (
	noDefect defect = iota
	// defectDuplicateSuccessFlips treats a confirmed request's payment as
	// still in play: Restore re-checks it, and a success for it re-runs
	// the "is the slot still free?" decision, flipping the booking.
	defectDuplicateSuccessFlips
	// defectRestoreForgetsRelease: Restore re-emits no release for a
	// request whose slot was taken.
	defectRestoreForgetsRelease
	// defectMutateBeforeError: an exact request for a booked slot bumps
	// the action counter before it is rejected.
	defectMutateBeforeError
)

// Machine is the clinic-calendar machine. Its zero value is ready to use.
type Machine struct {
	defect defect
}

var _ machine.Machine[State, Input, Action, Result, machine.None] = Machine{}

// Transition applies a request, a cancellation or a payment result. Every
// input is validated before anything changes.
func (m Machine) Transition(s *State, in In, out *Actions) error {
	if c := in.Completion; c != nil {
		return m.complete(s, c, out)
	}
	v := &in.Value
	switch v.Kind {
	case RequestExact:
		return m.requestExact(s, v, out)
	case RequestEarliest:
		return requestEarliest(s, v, out)
	case Cancel:
		return cancel(s, v.Ref, out)
	default:
		return ErrUnknownInput
	}
}

// admit checks what every request needs: a fresh reference, a valid type
// and room for one more pending request.
func admit(s *State, v *Input) error {
	switch {
	case v.Ref == 0:
		return ErrBadRef
	case !v.Type.valid():
		return ErrBadType
	case s.find(v.Ref) >= 0:
		return ErrDuplicateRef
	case s.Pending >= MaxPending:
		return ErrBusy
	}
	return nil
}

func checkDay(d Weekday) error {
	switch {
	case d < Monday || d > Sunday:
		return ErrBadDay
	case d > Friday:
		return ErrClosed
	}
	return nil
}

func (m Machine) requestExact(s *State, v *Input, out *Actions) error {
	if err := admit(s, v); err != nil {
		return err
	}
	if err := checkDay(v.Day); err != nil {
		return err
	}
	if v.Start%QuarterMinutes != 0 {
		return ErrBadTime
	}
	if v.Start < DayStart || v.Start >= DayStart+QuartersPerDay*QuarterMinutes {
		return ErrOutsideHours
	}
	q := uint8(quarterOf(v.Start))
	d := v.Day - 1
	if validStarts[d][v.Type]&(1<<q) == 0 {
		return ErrOutsideHours
	}
	k := types[v.Type].quarters
	if s.Busy[d]&span(q, k) != 0 {
		if m.defect == defectMutateBeforeError {
			s.NextAction++
		}
		return ErrSlotTaken
	}
	r := Request{Ref: v.Ref, Day: v.Day, Start: q, Type: v.Type, PrefDays: 1 << d}
	r.PrefRanges[0] = [2]uint8{q, q + uint8(k)}
	return accept(s, r, out)
}

func requestEarliest(s *State, v *Input, out *Actions) error {
	if err := admit(s, v); err != nil {
		return err
	}
	r := Request{Ref: v.Ref, Type: v.Type, Auto: true}
	k := types[v.Type].quarters
	// The starts that honour some preferred range, the same on every day.
	var prefStarts uint64
	n := 0
	for _, tr := range v.Prefer.Ranges {
		if tr == (TimeRange{}) {
			break
		}
		if tr.From >= tr.To || tr.To > 24*60 || tr.From%QuarterMinutes != 0 || tr.To%QuarterMinutes != 0 {
			return ErrBadRange
		}
		lo := min(max(int(tr.From)-int(DayStart), 0)/QuarterMinutes, QuartersPerDay)
		hi := min(max(int(tr.To)-int(DayStart), 0)/QuarterMinutes, QuartersPerDay)
		if lo < hi { // a range outside the clinic's day matches nothing
			r.PrefRanges[n] = [2]uint8{uint8(lo), uint8(hi)}
			n++
			prefStarts |= startsWithin(lo, hi, k)
		}
	}
	if v.Prefer.Ranges[0] == (TimeRange{}) {
		r.PrefRanges[0] = [2]uint8{0, QuartersPerDay}
		prefStarts = startsWithin(0, QuartersPerDay, k)
	}
	days := v.Prefer.Days
	if days[0] == 0 {
		days = [WorkDays]Weekday{Monday, Tuesday, Wednesday, Thursday, Friday}
	}
	for _, d := range days {
		if d == 0 {
			break
		}
		if d > Sunday {
			return ErrBadDay
		}
		if d <= Friday {
			r.PrefDays |= 1 << (d - 1)
		}
	}
	for _, d := range days {
		if d == 0 {
			break
		}
		if d > Friday {
			continue
		}
		cand := validStarts[d-1][v.Type] & prefStarts & freeStarts(s.Busy[d-1], k)
		if cand != 0 {
			r.Day = d
			r.Start = uint8(bits.TrailingZeros64(cand))
			return accept(s, r, out)
		}
	}
	return ErrNoSlot
}

// accept adds a validated request and emits its pre-authorisation.
func accept(s *State, r Request, out *Actions) error {
	s.NextAction++
	r.Action = s.NextAction
	r.Status = AwaitingPayment
	s.Requests = append(s.Requests, r)
	s.Pending++
	s.Stats.Requests++
	s.touched = uint16(len(s.Requests))
	return out.Track(r.Action, Action{Kind: PreAuthorise, Ref: r.Ref, AmountCents: r.Type.PriceCents()})
}

func cancel(s *State, ref uint64, out *Actions) error {
	i := s.find(ref)
	if i < 0 {
		return ErrUnknownRef
	}
	r := &s.Requests[i]
	if r.Status != Confirmed {
		return ErrNotConfirmed
	}
	if s.Pending >= MaxPending+MaxBookings {
		return ErrBusy
	}
	s.unbook(r)
	s.NextAction++
	r.Action = s.NextAction
	r.Status = Cancelling
	s.Pending++
	s.Stats.Cancelled++
	s.touched = uint16(i + 1)
	return out.Track(r.Action, Action{Kind: Release, Ref: r.Ref, AmountCents: r.PaidCents})
}

func (s *State) book(r *Request) {
	s.Busy[r.Day-1] |= r.mask()
	s.Bookings++
	s.BookedQuarters += uint16(types[r.Type].quarters)
	s.PaidCents += r.PaidCents
	s.PriceCents += r.Type.PriceCents()
}

func (s *State) unbook(r *Request) {
	s.Busy[r.Day-1] &^= r.mask()
	s.Bookings--
	s.BookedQuarters -= uint16(types[r.Type].quarters)
	s.PaidCents -= r.PaidCents
	s.PriceCents -= r.Type.PriceCents()
}

// complete applies a payment result to the request whose action it is.
func (m Machine) complete(s *State, c *machine.Completion[Result], out *Actions) error {
	i := -1
	for j := range s.Requests {
		r := &s.Requests[j]
		if r.Action == c.ActionID && (r.Status.open() || m.defect == defectDuplicateSuccessFlips) {
			i = j
			break
		}
	}
	if i < 0 {
		// The driver delivers only outstanding actions, and each open
		// request has exactly one; so this is visible, never silent.
		return ErrUnexpectedCompletion
	}
	r := &s.Requests[i]
	switch r.Status {
	case AwaitingPayment, Confirmed: // Confirmed only with the planted defect
		if !c.Result.OK {
			s.Pending--
			s.Stats.NoSlot++
			s.remove(i)
			return nil
		}
		if r.Status == AwaitingPayment {
			s.Pending--
		}
		r.PaidCents = r.Type.PriceCents()
		if s.Busy[r.Day-1]&r.mask() == 0 {
			r.Status = Confirmed
			s.book(r)
			s.Stats.Confirmed++
			s.touched = uint16(i + 1)
			return nil
		}
		s.NextAction++
		r.Action = s.NextAction
		r.Status = SlotTaken
		s.Pending++
		s.Stats.SlotTaken++
		s.touched = uint16(i + 1)
		return out.Track(r.Action, Action{Kind: Release, Ref: r.Ref, AmountCents: r.PaidCents})
	default: // SlotTaken, Cancelling: the release completed
		if c.Result.OK {
			s.Stats.Released++
		} else {
			s.Stats.ReleaseFailures++
		}
		s.Pending--
		s.remove(i)
		return nil
	}
}

// remove drops request i, moving the last request into its place.
func (s *State) remove(i int) {
	last := len(s.Requests) - 1
	s.Requests[i] = s.Requests[last]
	s.Requests[last] = Request{}
	s.Requests = s.Requests[:last]
	if len(s.Requests) == 0 {
		s.Requests = nil // canonical: an empty list is nil, as after a decode
	}
	s.touched = touchedNone
	if i < last {
		s.touched = uint16(i + 1)
	}
}

// Restore re-emits, under the original IDs, a status check for every
// request awaiting payment (asking again is safe, pre-authorising again is
// not) and a release for every request awaiting one.
func (m Machine) Restore(s *State, out *Actions) error {
	for i := range s.Requests {
		r := &s.Requests[i]
		var a Action
		switch r.Status {
		case AwaitingPayment:
			a = Action{Kind: CheckStatus, Ref: r.Ref, AmountCents: r.Type.PriceCents()}
		case Confirmed:
			if m.defect != defectDuplicateSuccessFlips {
				continue
			}
			a = Action{Kind: CheckStatus, Ref: r.Ref, AmountCents: r.PaidCents}
		case SlotTaken:
			if m.defect == defectRestoreForgetsRelease {
				continue
			}
			a = Action{Kind: Release, Ref: r.Ref, AmountCents: r.PaidCents}
		case Cancelling:
			a = Action{Kind: Release, Ref: r.Ref, AmountCents: r.PaidCents}
		default:
			continue
		}
		if err := out.Track(r.Action, a); err != nil {
			return err
		}
	}
	return nil
}

// NewKind returns the clinic kind with its fast codecs and state copy.
func NewKind() (*Kind, error) { return NewKindWith(Options{}) }

// NewKindWith returns the clinic kind with opts; nil codecs and Clone get
// the clinic's own (StateCodec, InputCodec, ActionCodec, ResultCodec,
// CloneState).
func NewKindWith(opts Options) (*Kind, error) { return newKind(Machine{}, opts) }

func newKind(m Machine, opts Options) (*Kind, error) {
	if opts.StateCodec == nil {
		opts.StateCodec = StateCodec{}
	}
	if opts.InputCodec == nil {
		opts.InputCodec = InputCodec{}
	}
	if opts.ActionCodec == nil {
		opts.ActionCodec = ActionCodec{}
	}
	if opts.ResultCodec == nil {
		opts.ResultCodec = ResultCodec{}
	}
	if opts.Clone == nil {
		opts.Clone = CloneState
	}
	return machine.NewKind[State, Input, Action, Result, machine.None](KindName, m, opts)
}

// CloneState deep-copies a clinic's state into dst, reusing dst's memory.
// dst and src must not share their Requests list.
func CloneState(dst, src *State) {
	reqs := dst.Requests
	*dst = *src
	if src.Requests == nil {
		dst.Requests = nil
		return
	}
	dst.Requests = append(reqs[:0], src.Requests...)
}
