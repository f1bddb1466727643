package clinic

import (
	"fmt"
	"math/bits"
)

// Weekday is a day of the week, ISO numbering: Monday is 1, Sunday 7. The
// zero value means "no day" (it ends a list of preferred days).
type Weekday uint8

// The days of the week.
const (
	Monday Weekday = iota + 1
	Tuesday
	Wednesday
	Thursday
	Friday
	Saturday
	Sunday
)

var dayNames = [...]string{"", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// String returns the day's short English name ("Mon").
func (d Weekday) String() string {
	if int(d) < len(dayNames) && d != 0 {
		return dayNames[d]
	}
	return fmt.Sprintf("Weekday(%d)", uint8(d))
}

// Clock is a time of day in minutes after midnight (09:15 is 555).
type Clock uint16

// At returns the clock time h:m.
func At(h, m int) Clock { return Clock(h*60 + m) }

// String formats the clock time as "hh:mm".
func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", c/60, c%60) }

// TimeRange is the half-open range of clock times [From, To). The zero
// range ends a list of preferred ranges.
type TimeRange struct {
	From, To Clock
}

// String formats the range as "hh:mm-hh:mm".
func (r TimeRange) String() string { return r.From.String() + "-" + r.To.String() }

// AppointmentType is a kind of appointment, with its duration and price.
type AppointmentType uint8

// The appointment types.
const (
	Cleaning  AppointmentType = iota + 1 // 15 minutes, 50.00
	Checkup                              // 30 minutes, 75.00
	Filling                              // 45 minutes, 150.00
	RootCanal                            // 60 minutes, 200.00
)

var types = [...]struct {
	name     string
	quarters int
	cents    int64
}{
	{},
	{"cleaning", 1, 5000},
	{"checkup", 2, 7500},
	{"filling", 3, 15000},
	{"root canal", 4, 20000},
}

func (t AppointmentType) valid() bool { return t >= Cleaning && t <= RootCanal }

// String names the appointment type.
func (t AppointmentType) String() string {
	if t.valid() {
		return types[t].name
	}
	return fmt.Sprintf("AppointmentType(%d)", uint8(t))
}

// Minutes returns the appointment's duration in minutes (0 for an invalid
// type).
func (t AppointmentType) Minutes() int {
	if !t.valid() {
		return 0
	}
	return types[t].quarters * QuarterMinutes
}

// PriceCents returns the appointment's price in cents (0 for an invalid
// type).
func (t AppointmentType) PriceCents() int64 {
	if !t.valid() {
		return 0
	}
	return types[t].cents
}

// The clinic's calendar grid: quarter-hours from DayStart.
const (
	// QuarterMinutes is the step of appointment starts.
	QuarterMinutes = 15
	// DayStart is the earliest opening time of any day; quarter-hour q of
	// a day starts at DayStart + 15q.
	DayStart Clock = 9 * 60
	// QuartersPerDay spans DayStart to 18:00, the latest closing time.
	QuartersPerDay = 36
	// WorkDays are Monday to Friday; the weekend has no hours.
	WorkDays = 5
)

// hours is the weekly schedule: up to two ranges per working day, Monday
// first. The clinic is closed at the weekend.
var hours = [WorkDays][]TimeRange{
	{{At(9, 0), At(12, 0)}, {At(14, 0), At(17, 0)}},  // Monday
	{{At(9, 0), At(12, 0)}, {At(13, 0), At(16, 0)}},  // Tuesday
	{{At(9, 0), At(12, 0)}, {At(14, 0), At(18, 0)}},  // Wednesday
	{{At(10, 0), At(13, 0)}, {At(14, 0), At(17, 0)}}, // Thursday
	{{At(9, 0), At(15, 0)}},                          // Friday
}

// The schedule as bit masks, derived once from hours and never changed:
// bit q of a day's mask is quarter-hour q.
var (
	// scheduleMask[d] has the open quarter-hours of day d+1.
	scheduleMask [WorkDays]uint64
	// validStarts[d][t] has the quarters at which an appointment of type
	// t fits wholly inside one schedule range of day d+1.
	validStarts [WorkDays][len(types)]uint64
)

func init() {
	for d, ranges := range hours {
		for _, r := range ranges {
			lo, hi := quarterOf(r.From), quarterOf(r.To)
			scheduleMask[d] |= startsWithin(lo, hi, 1)
			for t := Cleaning; t <= RootCanal; t++ {
				validStarts[d][t] |= startsWithin(lo, hi, types[t].quarters)
			}
		}
	}
}

// quarterOf returns the quarter index of clock c, which must be on the
// grid.
func quarterOf(c Clock) int { return (int(c) - int(DayStart)) / QuarterMinutes }

// clockOf returns the clock time of quarter q.
func clockOf(q uint8) Clock { return DayStart + Clock(q)*QuarterMinutes }

// startsWithin returns the starts q with lo <= q and q+k <= hi, as a mask.
func startsWithin(lo, hi, k int) uint64 {
	lo = max(lo, 0)
	hi = min(hi, QuartersPerDay)
	if hi-k < lo {
		return 0
	}
	n := hi - k - lo + 1
	return (uint64(1)<<n - 1) << lo
}

// span returns the quarters [q, q+k) as a mask.
func span(q uint8, k int) uint64 { return (uint64(1)<<k - 1) << q }

// freeStarts returns the starts at which k consecutive quarters are free.
func freeStarts(busy uint64, k int) uint64 {
	free := ^busy
	run := free
	for j := 1; j < k; j++ {
		run &= free >> j
	}
	return run
}

// Schedule returns the opening hours of day d (none at the weekend or for
// an invalid day), earliest first. The result is a copy.
func Schedule(d Weekday) []TimeRange {
	if d < Monday || d > Friday {
		return nil
	}
	return append([]TimeRange(nil), hours[d-1]...)
}

// BookableHours returns the weekly bookable hours (31).
func BookableHours() int {
	n := 0
	for _, m := range scheduleMask {
		n += bits.OnesCount64(m)
	}
	return n * QuarterMinutes / 60
}
