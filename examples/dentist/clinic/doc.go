// Package clinic is the dentist-booking example: one entity per clinic,
// holding the clinic's weekly calendar, taking bookings that are paid by a
// pre-authorisation at an outside payment provider.
//
// # The domain
//
// The clinic opens Monday 09-12 and 14-17, Tuesday 09-12 and 13-16,
// Wednesday 09-12 and 14-18, Thursday 10-13 and 14-17, Friday 09-15 (31
// bookable hours; no weekend hours). Appointments are a cleaning (15
// minutes, 50.00), a checkup (30, 75.00), a filling (45, 150.00) or a root
// canal (60, 200.00); they start on 15-minute steps and lie wholly inside
// one schedule range. Money is in integer cents.
//
// A patient asks for an exact slot (RequestExact) or for the earliest slot
// matching preferred days and time ranges (RequestEarliest: first fit,
// days in the order given, 15-minute steps, the appointment wholly inside
// one preferred range). The request names a booking reference chosen by the
// client. A request for a slot already booked is rejected at once
// (ErrSlotTaken, ErrNoSlot).
//
// An accepted request does not hold its slot: it emits a tracked payment
// pre-authorisation (its own action ID, from a counter in the state). When
// the payment succeeds, the request is confirmed if its slot is still
// free; if another request was confirmed there first, it becomes "slot
// taken" and a tracked release of the pre-authorisation is emitted, under
// a new action ID. When the payment fails, the request ends ("no slot").
// Cancelling a confirmed booking frees its slot at once and releases the
// pre-authorisation. Ended requests leave the state (they are counted in
// Stats), so the state stays bounded however long the calendar churns.
//
// Each request awaiting payment or a release holds the ID of its one
// outstanding action, so a completion is matched by ID and status; one that
// matches nothing is rejected with ErrUnexpectedCompletion (the runtime never
// delivers one: it passes only outstanding IDs, each once). After a crash
// Restore re-emits, under the original IDs, a status check for every
// request awaiting payment (never a second pre-authorisation) and a
// release for every request awaiting one.
//
// # Checking it
//
// Invariants checks, after every step and in time independent of the
// calendar's size, that bookings never overlap and lie inside the
// schedule, bookings and confirmed requests correspond one to one, the
// amount paid equals the price, pending requests hold unique action IDs
// below the counter, and each booked slot honours what was asked
// (preferences, or exactly the slot). CheckState checks the same by
// recomputing everything; the simulation Model runs it periodically and
// at the end, and compares pending requests with the driver's outstanding
// actions after every step.
//
// # The year calendar: database-backed state
//
// YearMachine is a clinic with Chairs chairs over YearDays days, too large
// for a plain value: its bookings live in the entity's keyspace (package
// machine/kv), one key per booked slot plus an index by booking reference,
// and requests scan one chair's day (exact requests, payments) or one day
// of all chairs (earliest-slot requests) for free slots. Its in-memory
// part, YearCore, holds only the requests awaiting payment or a release.
// PlainYearMachine runs the same logic with the bookings in a Table inside
// the state value, for comparison (BenchmarkYearTransition). YearModel
// drives it in simulation (with keyspace read failures and crashes), and
// CheckYear verifies a whole calendar against its keyspace.
//
// # Speed
//
// The state is flat: one bit mask of quarter-hours per working day, and a
// slice of fixed-size requests. Hand-written codecs (StateCodec,
// InputCodec, ActionCodec, ResultCodec) and CloneState make the driver's
// and the simulator's per-step copies and encodings cheap; NewKind
// installs them.
package clinic
