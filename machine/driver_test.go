package machine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
)

// acct is a small machine with commands that misbehave on purpose.
type acctState struct {
	Balance int64
	Next    machine.ActionID
	Holds   map[machine.ActionID]int64
	Last    time.Time
}

type acctCmd struct {
	Op   string
	N    int64
	Blob string
}

type pay struct{ Amount int64 }

type paid struct{ OK bool }

type note struct{ Text string }

var errNoFunds = machine.NewError("acct.no_funds", "insufficient funds")

type acct struct{ bias int64 }

type acctIn = machine.Input[acctCmd, paid]
type acctActions = machine.Actions[pay, note]

func (m acct) Transition(s *acctState, in acctIn, out *acctActions) error {
	s.Last = in.Time
	if c := in.Completion; c != nil {
		amt, ok := s.Holds[c.ActionID]
		if !ok {
			return fmt.Errorf("no hold %d", c.ActionID)
		}
		delete(s.Holds, c.ActionID)
		if !c.Result.OK {
			s.Balance += amt
		}
		return nil
	}
	switch in.Value.Op {
	case "deposit":
		s.Balance += in.Value.N + m.bias
		return out.Emit(note{Text: "deposited"})
	case "withdraw":
		if in.Value.N > s.Balance {
			return errNoFunds
		}
		s.Next++
		s.Balance -= in.Value.N
		if s.Holds == nil {
			s.Holds = map[machine.ActionID]int64{}
		}
		s.Holds[s.Next] = in.Value.N
		return out.Track(s.Next, pay{Amount: in.Value.N})
	case "mutate-fail":
		s.Balance = -999
		s.Holds = nil
		return errNoFunds
	case "panic":
		s.Balance = -1
		panic("boom")
	case "dup-id":
		s.Balance++
		return out.Track(s.Next, pay{Amount: 1}) // the ID of an outstanding hold
	case "twice":
		s.Next++
		_ = out.Track(s.Next, pay{Amount: 1})
		return out.Track(s.Next, pay{Amount: 1})
	case "spam":
		s.Balance++
		for i := 0; i < 100; i++ {
			_ = out.Emit(note{Text: "spam"}) // ignores ErrTooManyActions
		}
		return nil
	case "blob":
		s.Balance++
		return nil
	}
	return fmt.Errorf("unknown op %q", in.Value.Op)
}

func (acct) Restore(s *acctState, out *acctActions) error {
	for id := machine.ActionID(1); id <= s.Next; id++ {
		if amt, ok := s.Holds[id]; ok {
			if err := out.Track(id, pay{Amount: amt}); err != nil {
				return err
			}
		}
	}
	return nil
}

type acctKind = machine.Kind[acctState, acctCmd, pay, paid, note]

func newAcct(t *testing.T, m acct, clone bool, mod func(*machine.Options[acctState, acctCmd, pay, paid, note])) *acctKind {
	t.Helper()
	opts := machine.Options[acctState, acctCmd, pay, paid, note]{MaxActions: 10, MaxPayloadBytes: 256}
	if clone {
		opts.Clone = func(dst, src *acctState) {
			*dst = *src
			dst.Holds = make(map[machine.ActionID]int64, len(src.Holds))
			for k, v := range src.Holds {
				dst.Holds[k] = v
			}
		}
	}
	if mod != nil {
		mod(&opts)
	}
	k, err := machine.NewKind[acctState, acctCmd, pay, paid, note]("acct", m, opts)
	require.NoError(t, err)
	return k
}

func cmd(op string, n int64) acctIn { return acctIn{Value: acctCmd{Op: op, N: n}} }

func done(id machine.ActionID, ok bool) acctIn {
	return acctIn{Completion: &machine.Completion[paid]{ActionID: id, Result: paid{OK: ok}}}
}

func step(t *testing.T, d *machine.Driver[acctState, acctCmd, pay, paid, note], in acctIn, fx *machine.Effects[pay, note]) machine.Outcome {
	t.Helper()
	out, err := d.Step(in, fx)
	require.NoError(t, err)
	return out
}

func bothModes(t *testing.T, f func(t *testing.T, clone bool)) {
	t.Run("codec", func(t *testing.T) { f(t, false) })
	t.Run("clone", func(t *testing.T) { f(t, true) })
}

func TestStepProducesEffectsInOrder(t *testing.T) {
	bothModes(t, func(t *testing.T, clone bool) {
		d, err := newAcct(t, acct{}, clone, nil).NewDriver("a1")
		require.NoError(t, err)
		var fx machine.Effects[pay, note]
		out := step(t, d, cmd("deposit", 100), &fx)
		assert.Equal(t, machine.Outcome{Status: machine.Accepted, Seq: 1, Journaled: true}, out)
		out = step(t, d, cmd("withdraw", 30), &fx)
		assert.Equal(t, uint64(2), out.Seq)
		require.Len(t, fx.Records, 2)
		assert.Equal(t, machine.RecordInput, fx.Records[1].Kind)
		assert.True(t, fx.Records[1].HasDigest)
		assert.Equal(t, []machine.Tracked[pay]{{ID: 1, Action: pay{Amount: 30}}}, fx.Tracked)
		assert.Equal(t, []note{{Text: "deposited"}}, fx.Untracked)
		assert.True(t, d.IsOutstanding(1))
		assert.Equal(t, int64(70), d.State().Balance)
	})
}

func TestRejectionLeavesStateUntouchedEvenAfterMutation(t *testing.T) {
	bothModes(t, func(t *testing.T, clone bool) {
		d, err := newAcct(t, acct{}, clone, nil).NewDriver("a1")
		require.NoError(t, err)
		var fx machine.Effects[pay, note]
		step(t, d, cmd("deposit", 100), &fx)
		step(t, d, cmd("withdraw", 10), &fx)
		before := *d.State()
		before.Holds = map[machine.ActionID]int64{1: 10}
		fx.Reset()

		out := step(t, d, cmd("withdraw", 1000), &fx)
		assert.Equal(t, machine.Rejected, out.Status)
		assert.ErrorIs(t, out.Err, errNoFunds)
		assert.False(t, out.RolledBack)

		out = step(t, d, cmd("mutate-fail", 0), &fx)
		assert.Equal(t, machine.Rejected, out.Status)
		assert.True(t, out.RolledBack, "the machine mutated before failing")
		assert.Equal(t, before.Balance, d.State().Balance)
		assert.Equal(t, before.Holds, d.State().Holds)
		assert.Empty(t, fx.Records, "rejections without request IDs are not journaled")
		assert.Empty(t, fx.Tracked)
		assert.Equal(t, uint64(2), d.Seq())
		assert.Equal(t, uint64(1), d.Stats().RolledBack)
	})
}

func TestRequestIDsAnswerRetriesWithTheOriginalReply(t *testing.T) {
	d, err := newAcct(t, acct{}, false, func(o *machine.Options[acctState, acctCmd, pay, paid, note]) { o.RequestWindow = 3 }).NewDriver("a1")
	require.NoError(t, err)
	var fx machine.Effects[pay, note]
	in := cmd("deposit", 5)
	in.RequestID = "r1"
	step(t, d, in, &fx)
	out := step(t, d, in, &fx)
	assert.Equal(t, machine.Outcome{Status: machine.Duplicate, Seq: 1}, out)
	assert.Equal(t, int64(5), d.State().Balance, "the retry did not run again")

	bad := cmd("withdraw", 50)
	bad.RequestID = "r2"
	out = step(t, d, bad, &fx)
	assert.Equal(t, machine.Rejected, out.Status)
	assert.True(t, out.Journaled, "a rejection with a request ID is journaled")
	require.Len(t, fx.Records, 2)
	assert.Equal(t, machine.RecordRejected, fx.Records[1].Kind)
	step(t, d, cmd("deposit", 100), &fx) // now the withdrawal would succeed
	out = step(t, d, bad, &fx)
	assert.Equal(t, machine.Duplicate, out.Status)
	assert.ErrorIs(t, out.Err, errNoFunds, "the retry gets the original rejection")

	// The window is bounded: the oldest IDs are forgotten.
	for i := 3; i <= 5; i++ {
		in := cmd("deposit", 1)
		in.RequestID = fmt.Sprintf("r%d", i)
		step(t, d, in, &fx)
	}
	out = step(t, d, bad, &fx)
	assert.Equal(t, machine.Accepted, out.Status, "r2 fell out of a window of 3")
}

func TestCompletionsAreEffectivelyOnce(t *testing.T) {
	d, err := newAcct(t, acct{}, false, nil).NewDriver("a1")
	require.NoError(t, err)
	var fx machine.Effects[pay, note]
	step(t, d, cmd("deposit", 100), &fx)
	step(t, d, cmd("withdraw", 40), &fx)
	assert.Equal(t, machine.Stale, step(t, d, done(7, true), &fx).Status, "never emitted")
	assert.Equal(t, machine.Accepted, step(t, d, done(1, false), &fx).Status)
	assert.Equal(t, int64(100), d.State().Balance)
	assert.Equal(t, machine.Stale, step(t, d, done(1, true), &fx).Status, "second result")
	assert.Equal(t, int64(100), d.State().Balance)
	assert.Equal(t, uint64(2), d.Stats().Stale)
	assert.Equal(t, machine.RecordCompletion, fx.Records[len(fx.Records)-1].Kind)
}

func TestDriverFailuresRollBack(t *testing.T) {
	bothModes(t, func(t *testing.T, clone bool) {
		k := newAcct(t, acct{}, clone, func(o *machine.Options[acctState, acctCmd, pay, paid, note]) { o.MaxOutstanding = 2 })
		d, err := k.NewDriver("a1")
		require.NoError(t, err)
		var fx machine.Effects[pay, note]
		step(t, d, cmd("deposit", 100), &fx)
		step(t, d, cmd("withdraw", 1), &fx)
		fx.Reset()
		cases := []struct {
			op   string
			want error
		}{
			{"dup-id", machine.ErrDuplicateAction},
			{"twice", machine.ErrDuplicateAction},
			{"spam", machine.ErrTooManyActions},
			{"panic", machine.ErrPanic},
		}
		for _, c := range cases {
			_, err := d.Step(cmd(c.op, 0), &fx)
			require.ErrorIs(t, err, c.want, c.op)
			assert.Equal(t, int64(99), d.State().Balance, c.op)
			assert.Equal(t, uint64(2), d.Seq(), c.op)
			assert.Empty(t, fx.Records, c.op)
			assert.Empty(t, fx.Tracked, c.op)
		}
		var pe *machine.PanicError
		_, err = d.Step(cmd("panic", 0), &fx)
		require.ErrorAs(t, err, &pe)
		assert.Contains(t, pe.Stack, "driver_test.go")

		step(t, d, cmd("withdraw", 1), &fx)
		_, err = d.Step(cmd("withdraw", 1), &fx)
		require.ErrorIs(t, err, machine.ErrTooManyOutstanding)
		assert.Equal(t, 2, d.NumOutstanding())

		big := cmd("blob", 0)
		big.Value.Blob = strings.Repeat("x", 300)
		_, err = d.Step(big, &fx)
		require.ErrorIs(t, err, machine.ErrTooLarge)
		assert.Equal(t, int64(98), d.State().Balance, "the entity still works")
	})
}

func TestTimeIsNormalised(t *testing.T) {
	d, err := newAcct(t, acct{}, false, nil).NewDriver("a1")
	require.NoError(t, err)
	var fx machine.Effects[pay, note]
	now := time.Now() // has a monotonic reading and a local zone
	step(t, d, acctIn{Time: now, Value: acctCmd{Op: "deposit", N: 1}}, &fx)
	got := d.State().Last
	assert.Equal(t, time.UTC, got.Location())
	assert.True(t, got.Equal(now))
	assert.Equal(t, got, fx.Records[0].InputTime(), "a replay sees exactly what the first run saw")
}

// run drives a few steps and returns the journal.
func run(t *testing.T, k *acctKind) (*machine.Driver[acctState, acctCmd, pay, paid, note], []machine.Record) {
	t.Helper()
	d, err := k.NewDriver("a1")
	require.NoError(t, err)
	var fx machine.Effects[pay, note]
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ins := []acctIn{cmd("deposit", 100), cmd("withdraw", 30), cmd("withdraw", 20), done(1, false), cmd("withdraw", 500)}
	ins[4].RequestID = "rej"
	for i, in := range ins {
		in.Time = t0.Add(time.Duration(i) * time.Minute)
		step(t, d, in, &fx)
	}
	var recs []machine.Record
	for _, r := range fx.Records { // through the binary form, as a store keeps them
		got, err := machine.DecodeRecord(r.AppendBinary(nil))
		require.NoError(t, err)
		recs = append(recs, got)
	}
	return d, recs
}

func TestRecoverReplaysToTheSameState(t *testing.T) {
	k := newAcct(t, acct{}, false, nil)
	d, recs := run(t, k)
	require.Len(t, recs, 5)
	r, err := k.Recover("a1", nil, recs)
	require.NoError(t, err)
	assert.Equal(t, d.State(), r.State())
	assert.Equal(t, d.Seq(), r.Seq())
	var fx machine.Effects[pay, note]
	rep, err := r.Restore(&fx)
	require.NoError(t, err)
	assert.True(t, rep.Known)
	assert.True(t, rep.Complete(), "%+v", rep)
	assert.Equal(t, []machine.Tracked[pay]{{ID: 2, Action: pay{Amount: 20}}}, fx.Tracked)
	// The rejection's request ID survived the reload.
	in := cmd("withdraw", 500)
	in.RequestID = "rej"
	out := step(t, r, in, &fx)
	assert.Equal(t, machine.Duplicate, out.Status)
	assert.ErrorIs(t, out.Err, errNoFunds)
}

func TestReplayReportsNondeterminism(t *testing.T) {
	_, recs := run(t, newAcct(t, acct{}, false, nil))
	// The same journal replayed through a machine that behaves differently.
	_, err := newAcct(t, acct{bias: 1}, false, nil).Recover("a1", nil, recs)
	var nd *machine.NondeterminismError
	require.ErrorAs(t, err, &nd)
	assert.ErrorIs(t, err, machine.ErrNondeterminism)
	assert.Equal(t, uint64(1), nd.Seq)
	assert.Equal(t, "digest", nd.What)
	assert.Equal(t, "acct/a1", nd.Entity.String())

	// Without digests the divergence surfaces as a different outcome later.
	noDigest := func(o *machine.Options[acctState, acctCmd, pay, paid, note]) { o.DigestEveryRecords = -1 }
	_, recs = run(t, newAcct(t, acct{}, false, noDigest))
	assert.False(t, recs[0].HasDigest)
	_, err = newAcct(t, acct{bias: -80}, false, noDigest).Recover("a1", nil, recs)
	require.ErrorAs(t, err, &nd)
	assert.Equal(t, "outcome", nd.What)
	assert.Equal(t, uint64(2), nd.Seq, "the first withdrawal no longer fits")
}

func TestReplayRejectsBadJournals(t *testing.T) {
	k := newAcct(t, acct{}, false, nil)
	_, recs := run(t, k)
	_, err := k.Recover("a1", nil, []machine.Record{recs[0], recs[2]})
	assert.ErrorIs(t, err, machine.ErrSequence)

	bad := recs[0]
	bad.Payload = []byte{0xff}
	_, err = k.Recover("a1", nil, []machine.Record{bad})
	var ce *machine.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, uint64(1), ce.Seq)
	assert.Equal(t, "acct/a1", ce.Entity.String())

	// A completion for an action the replay never emitted.
	_, err = k.Recover("a1", nil, []machine.Record{recs[0], {Seq: 2, Kind: machine.RecordCompletion, ActionID: 9, Payload: recs[3].Payload}})
	assert.ErrorIs(t, err, machine.ErrNondeterminism)
}

func TestRecordsDetectCorruption(t *testing.T) {
	rec := machine.Record{Seq: 7, Kind: machine.RecordRejected, Time: 123, RequestID: "rq", Payload: []byte("in"), Err: machine.AppendError(nil, errNoFunds), Digest: 99, HasDigest: true}
	b := rec.AppendBinary(nil)
	got, err := machine.DecodeRecord(b)
	require.NoError(t, err)
	assert.Equal(t, rec, got)
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		_, err := machine.DecodeRecord(c)
		require.ErrorIs(t, err, machine.ErrCorrupt, "byte %d", i)
	}
	for n := 0; n < len(b); n++ {
		_, err := machine.DecodeRecord(b[:n])
		require.ErrorIs(t, err, machine.ErrCorrupt, "truncated to %d", n)
	}
	snap := machine.Snapshot{Seq: 3, State: []byte("s"), Requests: []byte{0}, Outstanding: []byte{0}}
	sb := snap.AppendBinary(nil)
	gs, err := machine.DecodeSnapshot(sb)
	require.NoError(t, err)
	assert.Equal(t, snap, gs)
	sb[2] ^= 1
	_, err = machine.DecodeSnapshot(sb)
	assert.ErrorIs(t, err, machine.ErrCorrupt)
}

func TestSnapshotRoundTripAndRestoreReport(t *testing.T) {
	bothModes(t, func(t *testing.T, clone bool) {
		k := newAcct(t, acct{}, clone, nil)
		d, recs := run(t, k)
		snap, err := d.Snapshot()
		require.NoError(t, err)
		decoded, err := machine.DecodeSnapshot(snap.AppendBinary(nil))
		require.NoError(t, err)
		r, err := k.Recover("a1", &decoded, nil)
		require.NoError(t, err)
		assert.Equal(t, d.State(), r.State())
		assert.Equal(t, d.Outstanding(nil), r.Outstanding(nil))

		// Snapshot at seq 2, then the journal tail.
		d2, err := k.Recover("a1", nil, recs[:2])
		require.NoError(t, err)
		mid, err := d2.Snapshot()
		require.NoError(t, err)
		r2, err := k.Recover("a1", &mid, recs[2:])
		require.NoError(t, err)
		assert.Equal(t, d.State(), r2.State())

		// A Restore that forgets is reported, not hidden.
		forgetful := newAcct(t, acct{}, clone, nil)
		fd, err := forgetful.Recover("a1", &decoded, nil)
		require.NoError(t, err)
		fd.State().Holds = nil // simulate a Restore that sees nothing
		var fx machine.Effects[pay, note]
		rep, err := fd.Restore(&fx)
		require.NoError(t, err)
		assert.Equal(t, []machine.ActionID{2}, rep.Missing)
		assert.False(t, rep.Complete())
	})
}

func TestKindValidationListsEveryProblem(t *testing.T) {
	type bad struct{ F func() }
	_, err := machine.NewKind[bad, acctCmd, pay, paid, note]("", nil, machine.Options[bad, acctCmd, pay, paid, note]{MaxActions: -1, RequestWindow: -5, DigestEveryRecords: -2})
	require.Error(t, err)
	for _, want := range []string{"name is empty", "machine is nil", "MaxActions is -1", "RequestWindow is -5", "DigestEveryRecords is -2", ".F"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.True(t, errors.Is(err, machine.ErrInvalidConfig))
	assert.True(t, errors.Is(err, machine.ErrUnsupportedType))
}

func TestActionsContainerIsBounded(t *testing.T) {
	a := machine.NewActions[int, string](2)
	require.NoError(t, a.Track(1, 10))
	require.NoError(t, a.Emit("x"))
	assert.ErrorIs(t, a.Track(2, 20), machine.ErrTooManyActions)
	assert.True(t, a.Overflowed())
	assert.Equal(t, 2, a.Len())
	a.Reset()
	assert.Zero(t, a.Len())
	assert.False(t, a.Overflowed())
}
