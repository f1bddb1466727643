package clinic_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
)

type effects = machine.Effects[clinic.Action, machine.None]

// desk drives one clinic by hand and keeps its journal.
type desk struct {
	t       *testing.T
	d       *clinic.Driver
	records []machine.Record
	actions []machine.Tracked[clinic.Action] // emitted, in order
}

func newDesk(t *testing.T) *desk {
	t.Helper()
	k, err := clinic.NewKind()
	require.NoError(t, err)
	d, err := k.NewDriver("smile")
	require.NoError(t, err)
	return &desk{t: t, d: d}
}

func (k *desk) step(in clinic.In) machine.Outcome {
	k.t.Helper()
	var fx effects
	out, err := k.d.Step(in, &fx)
	require.NoError(k.t, err)
	for _, r := range fx.Records {
		rec, err := machine.DecodeRecord(r.AppendBinary(nil))
		require.NoError(k.t, err)
		k.records = append(k.records, rec)
	}
	k.actions = append(k.actions, fx.Tracked...)
	require.NoError(k.t, clinic.Machine{}.Invariants(k.d.State()))
	require.NoError(k.t, clinic.CheckState(k.d.State()))
	return out
}

func (k *desk) send(v clinic.Input) machine.Outcome {
	k.t.Helper()
	return k.step(clinic.In{Value: v})
}

func (k *desk) pay(id machine.ActionID, ok bool) machine.Outcome {
	k.t.Helper()
	return k.step(clinic.In{Completion: &machine.Completion[clinic.Result]{ActionID: id, Result: clinic.Result{OK: ok}}})
}

func (k *desk) last() machine.Tracked[clinic.Action] { return k.actions[len(k.actions)-1] }

func exact(ref uint64, t clinic.AppointmentType, d clinic.Weekday, at clinic.Clock) clinic.Input {
	return clinic.Input{Kind: clinic.RequestExact, Ref: ref, Type: t, Day: d, Start: at}
}

func TestBasicFlow(t *testing.T) {
	k := newDesk(t)
	out := k.send(exact(1, clinic.Filling, clinic.Monday, clinic.At(9, 30)))
	require.Equal(t, machine.Accepted, out.Status)
	pre := k.last()
	assert.Equal(t, machine.ActionID(1), pre.ID)
	assert.Equal(t, clinic.Action{Kind: clinic.PreAuthorise, Ref: 1, AmountCents: 15000}, pre.Action)
	assert.Equal(t, clinic.AwaitingPayment, k.d.State().Find(1).Status)
	assert.Zero(t, k.d.State().Busy[0], "a pending request holds no slot")

	k.pay(pre.ID, true)
	r := k.d.State().Find(1)
	assert.Equal(t, clinic.Confirmed, r.Status)
	assert.Equal(t, int64(15000), r.PaidCents)
	assert.Equal(t, clinic.At(9, 30), r.SlotStart())
	assert.Equal(t, clinic.At(10, 15), r.SlotEnd())
	assert.Zero(t, k.d.NumOutstanding())
	assert.Equal(t, uint64(1), k.d.State().Stats.Confirmed)

	// A failed payment ends the request ("no slot") and drops it.
	k.send(exact(2, clinic.Cleaning, clinic.Friday, clinic.At(14, 45)))
	k.pay(k.last().ID, false)
	assert.Nil(t, k.d.State().Find(2))
	assert.Equal(t, uint64(1), k.d.State().Stats.NoSlot)
}

func TestConflictAtRequestTime(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.RootCanal, clinic.Wednesday, clinic.At(14, 0)))
	k.pay(k.last().ID, true)
	out := k.send(exact(2, clinic.Cleaning, clinic.Wednesday, clinic.At(14, 45)))
	assert.ErrorIs(t, out.Err, clinic.ErrSlotTaken)
	assert.Nil(t, k.d.State().Find(2))
	assert.Equal(t, machine.Accepted, k.send(exact(3, clinic.Cleaning, clinic.Wednesday, clinic.At(15, 0))).Status, "the next quarter is free")
}

func TestTwoRequestsRaceForOneSlot(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.Checkup, clinic.Tuesday, clinic.At(13, 0)))
	first := k.last()
	k.send(exact(2, clinic.Checkup, clinic.Tuesday, clinic.At(13, 0)))
	second := k.last()
	require.NotEqual(t, first.ID, second.ID)

	k.pay(second.ID, true)
	k.pay(first.ID, true)
	s := k.d.State()
	assert.Equal(t, clinic.Confirmed, s.Find(2).Status, "the first payment to succeed wins")
	assert.Equal(t, clinic.SlotTaken, s.Find(1).Status)
	release := k.last()
	assert.Equal(t, clinic.Release, release.Action.Kind)
	assert.Equal(t, uint64(1), release.Action.Ref)
	assert.Equal(t, int64(7500), release.Action.AmountCents)
	assert.Greater(t, release.ID, second.ID, "a release gets its own new action ID")
	assert.NotEqual(t, first.ID, release.ID)

	k.pay(release.ID, true)
	assert.Nil(t, s.Find(1))
	assert.Equal(t, uint64(1), k.d.State().Stats.Released)
	assert.Equal(t, 1, len(k.d.State().Requests))
}

func TestEarliestSlotHonoursPreferences(t *testing.T) {
	k := newDesk(t)
	// Book Thursday 14:00-15:00 so the first fit moves on.
	k.send(exact(1, clinic.RootCanal, clinic.Thursday, clinic.At(14, 0)))
	k.pay(k.last().ID, true)

	in := clinic.Input{Kind: clinic.RequestEarliest, Ref: 2, Type: clinic.Filling}
	in.Prefer.Days = [5]clinic.Weekday{clinic.Thursday, clinic.Monday}
	in.Prefer.Ranges = [4]clinic.TimeRange{{From: clinic.At(13, 30), To: clinic.At(16, 0)}, {From: clinic.At(11, 0), To: clinic.At(12, 0)}}
	require.Equal(t, machine.Accepted, k.send(in).Status)
	r := k.d.State().Find(2)
	assert.Equal(t, clinic.Thursday, r.Day, "days in the order given")
	assert.Equal(t, clinic.At(11, 0), r.SlotStart(), "the earliest start inside one preferred range: 11:00-11:45 fits 11-12 and 10-13")

	// Nothing fits 45 minutes into 11:00-11:30: Thursday fails, Monday too.
	in2 := clinic.Input{Kind: clinic.RequestEarliest, Ref: 3, Type: clinic.Filling}
	in2.Prefer.Days = [5]clinic.Weekday{clinic.Thursday, clinic.Monday}
	in2.Prefer.Ranges[0] = clinic.TimeRange{From: clinic.At(11, 0), To: clinic.At(11, 30)}
	assert.ErrorIs(t, k.send(in2).Err, clinic.ErrNoSlot)

	// No preferences: Monday 09:00 first.
	require.Equal(t, machine.Accepted, k.send(clinic.Input{Kind: clinic.RequestEarliest, Ref: 4, Type: clinic.Cleaning}).Status)
	assert.Equal(t, clinic.Monday, k.d.State().Find(4).Day)
	assert.Equal(t, clinic.At(9, 0), k.d.State().Find(4).SlotStart())

	// Wednesday afternoon only, the range crossing the lunch break: the
	// appointment must lie inside one schedule range, so 14:00.
	in5 := clinic.Input{Kind: clinic.RequestEarliest, Ref: 5, Type: clinic.RootCanal}
	in5.Prefer.Days[0] = clinic.Wednesday
	in5.Prefer.Ranges[0] = clinic.TimeRange{From: clinic.At(11, 30), To: clinic.At(15, 0)}
	require.Equal(t, machine.Accepted, k.send(in5).Status)
	assert.Equal(t, clinic.At(14, 0), k.d.State().Find(5).SlotStart())
}

func TestCancellationFreesTheSlot(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.Cleaning, clinic.Friday, clinic.At(9, 0)))
	k.pay(k.last().ID, true)
	assert.ErrorIs(t, k.send(exact(2, clinic.Cleaning, clinic.Friday, clinic.At(9, 0))).Err, clinic.ErrSlotTaken)

	require.Equal(t, machine.Accepted, k.send(clinic.Input{Kind: clinic.Cancel, Ref: 1}).Status)
	rel := k.last()
	assert.Equal(t, clinic.Action{Kind: clinic.Release, Ref: 1, AmountCents: 5000}, rel.Action)
	assert.Equal(t, clinic.Cancelling, k.d.State().Find(1).Status)
	assert.Zero(t, k.d.State().Busy[4], "freed at once")
	assert.ErrorIs(t, k.send(clinic.Input{Kind: clinic.Cancel, Ref: 1}).Err, clinic.ErrNotConfirmed)

	require.Equal(t, machine.Accepted, k.send(exact(3, clinic.Cleaning, clinic.Friday, clinic.At(9, 0))).Status)
	k.pay(k.last().ID, true)
	assert.Equal(t, clinic.Confirmed, k.d.State().Find(3).Status)
	k.pay(rel.ID, true)
	assert.Nil(t, k.d.State().Find(1))
	assert.ErrorIs(t, k.send(clinic.Input{Kind: clinic.Cancel, Ref: 1}).Err, clinic.ErrUnknownRef)
}

func TestCrashWhilePaymentsArePending(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.Checkup, clinic.Monday, clinic.At(10, 0)))
	k.send(exact(2, clinic.Checkup, clinic.Monday, clinic.At(10, 0)))
	k.send(exact(3, clinic.Cleaning, clinic.Monday, clinic.At(14, 0)))
	k.pay(1, true) // request 1 confirmed
	k.pay(2, true) // request 2 lost the slot: release 4 outstanding
	require.Equal(t, clinic.SlotTaken, k.d.State().Find(2).Status)

	kind := k.d.Kind()
	d, err := kind.Recover("smile", nil, k.records)
	require.NoError(t, err)
	var fx effects
	rep, err := d.Restore(&fx)
	require.NoError(t, err)
	assert.True(t, rep.Complete(), "%+v", rep)
	got := map[machine.ActionID]clinic.Action{}
	for _, t := range fx.Tracked {
		got[t.ID] = t.Action
	}
	assert.Equal(t, map[machine.ActionID]clinic.Action{
		3: {Kind: clinic.CheckStatus, Ref: 3, AmountCents: 5000}, // under the original ID, never a second pre-authorisation
		4: {Kind: clinic.Release, Ref: 2, AmountCents: 7500},
	}, got)

	// The status check answers; the original answer arrives late and is
	// dropped by the driver.
	k.d = d
	k.pay(3, true)
	assert.Equal(t, clinic.Confirmed, d.State().Find(3).Status)
	assert.Equal(t, machine.Stale, k.pay(3, false).Status)
	assert.Equal(t, clinic.Confirmed, d.State().Find(3).Status)
}

func TestBadInputsAreTypedErrors(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.Cleaning, clinic.Monday, clinic.At(9, 0)))
	bad := []struct {
		in   clinic.Input
		want error
	}{
		{exact(0, clinic.Cleaning, clinic.Monday, clinic.At(9, 0)), clinic.ErrBadRef},
		{exact(1, clinic.Cleaning, clinic.Monday, clinic.At(11, 0)), clinic.ErrDuplicateRef},
		{exact(2, 0, clinic.Monday, clinic.At(9, 0)), clinic.ErrBadType},
		{exact(2, 9, clinic.Monday, clinic.At(9, 0)), clinic.ErrBadType},
		{exact(2, clinic.Cleaning, 0, clinic.At(9, 0)), clinic.ErrBadDay},
		{exact(2, clinic.Cleaning, 8, clinic.At(9, 0)), clinic.ErrBadDay},
		{exact(2, clinic.Cleaning, clinic.Sunday, clinic.At(9, 0)), clinic.ErrClosed},
		{exact(2, clinic.Cleaning, clinic.Monday, clinic.At(9, 5)), clinic.ErrBadTime},
		{exact(2, clinic.Cleaning, clinic.Monday, clinic.At(8, 45)), clinic.ErrOutsideHours},
		{exact(2, clinic.Cleaning, clinic.Monday, clinic.At(12, 0)), clinic.ErrOutsideHours},
		{exact(2, clinic.RootCanal, clinic.Monday, clinic.At(11, 15)), clinic.ErrOutsideHours},
		{exact(2, clinic.Cleaning, clinic.Friday, clinic.At(15, 0)), clinic.ErrOutsideHours},
		{exact(2, clinic.Cleaning, clinic.Monday, clinic.Clock(65534)), clinic.ErrBadTime},
		{exact(2, clinic.Cleaning, clinic.Monday, clinic.Clock(65535)), clinic.ErrOutsideHours},
		{clinic.Input{Kind: clinic.RequestEarliest, Ref: 2, Type: clinic.Cleaning, Prefer: clinic.Preferences{Ranges: [4]clinic.TimeRange{{From: clinic.At(10, 0), To: clinic.At(10, 0)}}}}, clinic.ErrBadRange},
		{clinic.Input{Kind: clinic.RequestEarliest, Ref: 2, Type: clinic.Cleaning, Prefer: clinic.Preferences{Ranges: [4]clinic.TimeRange{{From: clinic.At(10, 10), To: clinic.At(11, 0)}}}}, clinic.ErrBadRange},
		{clinic.Input{Kind: clinic.RequestEarliest, Ref: 2, Type: clinic.Cleaning, Prefer: clinic.Preferences{Days: [5]clinic.Weekday{clinic.Monday, 12}}}, clinic.ErrBadDay},
		{clinic.Input{Kind: clinic.RequestEarliest, Ref: 2, Type: clinic.Cleaning, Prefer: clinic.Preferences{Days: [5]clinic.Weekday{clinic.Saturday}}}, clinic.ErrNoSlot},
		{clinic.Input{Kind: clinic.Cancel, Ref: 77}, clinic.ErrUnknownRef},
		{clinic.Input{Kind: clinic.Cancel, Ref: 1}, clinic.ErrNotConfirmed},
		{clinic.Input{Kind: 42, Ref: 2}, clinic.ErrUnknownInput},
	}
	for _, c := range bad {
		out := k.send(c.in)
		assert.Equal(t, machine.Rejected, out.Status, "%+v", c.in)
		assert.ErrorIs(t, out.Err, c.want, "%+v", c.in)
		var me *machine.Error
		assert.True(t, errors.As(out.Err, &me), "typed: %v", out.Err)
	}
	// A completion that matches no outstanding action is visible, not
	// silently ignored (the driver never delivers one).
	var s clinic.State
	err := clinic.Machine{}.Transition(&s, clinic.In{Completion: &machine.Completion[clinic.Result]{ActionID: 5}}, machine.NewActions[clinic.Action, machine.None](0))
	assert.ErrorIs(t, err, clinic.ErrUnexpectedCompletion)
}

func TestPendingRequestsAreBounded(t *testing.T) {
	k := newDesk(t)
	for i := range clinic.MaxPending {
		require.Equal(t, machine.Accepted, k.send(exact(uint64(i+1), clinic.Cleaning, clinic.Monday, clinic.At(9, 0))).Status)
	}
	assert.ErrorIs(t, k.send(exact(999, clinic.Cleaning, clinic.Monday, clinic.At(9, 0))).Err, clinic.ErrBusy)
}

func TestScheduleHas31BookableHours(t *testing.T) {
	assert.Equal(t, 31, clinic.BookableHours())
	assert.Nil(t, clinic.Schedule(clinic.Saturday))
	assert.Equal(t, []clinic.TimeRange{{From: clinic.At(9, 0), To: clinic.At(15, 0)}}, clinic.Schedule(clinic.Friday))
}

func TestCodecsRoundTripAndRejectGarbage(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.Cleaning, clinic.Monday, clinic.At(9, 0)))
	k.pay(1, true)
	k.send(exact(2, clinic.Checkup, clinic.Monday, clinic.At(9, 0)))
	in := clinic.Input{Kind: clinic.RequestEarliest, Ref: 3, Type: clinic.Filling}
	in.Prefer.Days[0] = clinic.Friday
	k.send(in)
	var c clinic.StateCodec
	b, err := c.Append(nil, k.d.State())
	require.NoError(t, err)
	var s clinic.State
	require.NoError(t, c.Decode(b, &s))
	b2, err := c.Append(nil, &s)
	require.NoError(t, err)
	assert.Equal(t, b, b2)
	assert.Equal(t, k.d.State().Requests, s.Requests)
	require.NoError(t, clinic.CheckState(&s))

	for cut := range len(b) {
		assert.Error(t, c.Decode(b[:cut], &s))
	}
	bad := append([]byte(nil), b...)
	bad[len(bad)-10] = 99 // a request's type
	err = c.Decode(bad, &s)
	assert.ErrorIs(t, err, machine.ErrCorrupt)

	var ic clinic.InputCodec
	ib, _ := ic.Append(nil, &in)
	var in2 clinic.Input
	require.NoError(t, ic.Decode(ib, &in2))
	assert.Equal(t, in, in2)
	assert.ErrorIs(t, ic.Decode(ib[1:], &in2), machine.ErrCorrupt)
	var rc clinic.ResultCodec
	assert.ErrorIs(t, rc.Decode([]byte{7, 0}, &clinic.Result{}), machine.ErrCorrupt)
}

// TestInvariantsCatchCorruption breaks a valid state in one place at a time
// and checks that both the incremental Invariants and CheckState notice.
func TestInvariantsCatchCorruption(t *testing.T) {
	k := newDesk(t)
	k.send(exact(1, clinic.Filling, clinic.Monday, clinic.At(9, 0)))
	k.pay(1, true)
	in := clinic.Input{Kind: clinic.RequestEarliest, Ref: 2, Type: clinic.Checkup}
	in.Prefer.Days[0] = clinic.Tuesday
	in.Prefer.Ranges[0] = clinic.TimeRange{From: clinic.At(13, 0), To: clinic.At(14, 0)}
	k.send(in)
	k.pay(2, true)
	k.send(exact(3, clinic.Cleaning, clinic.Friday, clinic.At(9, 0)))

	find := func(s *clinic.State, ref uint64) int {
		for i := range s.Requests {
			if s.Requests[i].Ref == ref {
				return i
			}
		}
		t.Fatalf("no request %d", ref)
		return -1
	}
	cases := []struct {
		name    string
		corrupt func(s *clinic.State)
	}{
		{"booking outside the schedule", func(s *clinic.State) { s.Busy[0] |= 1 << 13 }},
		{"overlapping bookings", func(s *clinic.State) {
			r := &s.Requests[find(s, 2)]
			r.Day, r.Start = clinic.Monday, 1 // inside Ann's filling
			r.PrefDays, r.PrefRanges[0] = 1, [2]uint8{0, 12}
		}},
		{"paid less than the price", func(s *clinic.State) { s.Requests[find(s, 1)].PaidCents = 100 }},
		{"auto slot outside its preferences", func(s *clinic.State) { s.Requests[find(s, 2)].PrefRanges[0] = [2]uint8{0, 4} }},
		{"exact request moved", func(s *clinic.State) {
			r := &s.Requests[find(s, 3)]
			r.Start = 4
		}},
		{"duplicate action IDs", func(s *clinic.State) { s.Requests[find(s, 3)].Action = s.Requests[find(s, 1)].Action }},
		{"action ID above the counter", func(s *clinic.State) { s.Requests[find(s, 3)].Action = s.NextAction + 1 }},
		{"pending count off", func(s *clinic.State) { s.Pending++ }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s clinic.State
			clinic.CloneState(&s, k.d.State())
			require.NoError(t, clinic.CheckState(&s))
			c.corrupt(&s)
			assert.ErrorIs(t, clinic.CheckState(&s), clinic.ErrInvariant)
		})
	}
	// The incremental check looks where the last transition wrote: break
	// the request it just added.
	var s clinic.State
	clinic.CloneState(&s, k.d.State())
	s.Requests[find(&s, 3)].Action = s.NextAction + 1
	assert.ErrorIs(t, clinic.Machine{}.Invariants(&s), clinic.ErrInvariant)
	clinic.CloneState(&s, k.d.State())
	s.Busy[4] |= 1 << 30
	assert.ErrorIs(t, clinic.Machine{}.Invariants(&s), clinic.ErrInvariant, "aggregates are checked whole")
}
