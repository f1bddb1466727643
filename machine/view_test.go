package machine_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// ledger is a database-backed machine: its entries live in the view, the
// in-memory part counts them.
type ledgerState struct {
	Count int
	Sum   int
	view  *kv.View `phasm:"-"`
}

func (s *ledgerState) BindView(v *kv.View) { s.view = v }

type ledgerCmd struct {
	Put     []string // keys to set to "x"
	Del     []string
	Fail    bool // reject after writing
	Swallow bool // ignore read errors and succeed
	Restore bool // make Restore write (a bug)
}

type ledger struct{}

var errLedgerRejected = machine.NewError("ledger.rejected", "rejected")

func (ledger) Transition(s *ledgerState, in machine.Input[ledgerCmd, machine.None], _ *machine.Actions[machine.None, machine.None]) error {
	for _, k := range in.Value.Put {
		if _, found, err := s.view.Get([]byte(k)); err != nil {
			if !in.Value.Swallow {
				return err
			}
		} else if !found {
			s.Count++
		}
		if err := s.view.Set([]byte(k), []byte("x")); err != nil {
			return err
		}
	}
	for _, k := range in.Value.Del {
		_, found, err := s.view.Get([]byte(k))
		if err != nil && !in.Value.Swallow {
			return err
		}
		if found {
			s.Count--
		}
		if err := s.view.Delete([]byte(k)); err != nil {
			return err
		}
	}
	// Read-your-writes: the scan sees this transition's writes.
	pairs, _, err := s.view.Scan([]byte("a"), nil, 1000)
	if err != nil && !in.Value.Swallow {
		return err
	}
	if err == nil && len(pairs) != s.Count {
		return fmt.Errorf("scan saw %d keys, count is %d", len(pairs), s.Count)
	}
	s.Sum += s.Count
	if in.Value.Fail {
		return errLedgerRejected
	}
	return nil
}

func (ledger) Restore(s *ledgerState, _ *machine.Actions[machine.None, machine.None]) error {
	if s.Count == 99 {
		return s.view.Set([]byte("zz"), nil)
	}
	return nil
}

type flaky struct {
	kv.Source
	fail bool
}

var errDown = errors.New("store unreachable")

func (f *flaky) Get(k []byte) ([]byte, bool, error) {
	if f.fail {
		return nil, false, errDown
	}
	return f.Source.Get(k)
}

func (f *flaky) Scan(s, e []byte, n int) ([]kv.Pair, bool, error) {
	if f.fail {
		return nil, false, errDown
	}
	return f.Source.Scan(s, e, n)
}

func (f *flaky) Commit(seq uint64, ws []kv.Write) { f.Source.(kv.Committer).Commit(seq, ws) }

func newLedger(t *testing.T, clone bool) *machine.Kind[ledgerState, ledgerCmd, machine.None, machine.None, machine.None] {
	opts := machine.Options[ledgerState, ledgerCmd, machine.None, machine.None, machine.None]{MaxWrites: 4}
	if clone {
		opts.Clone = func(dst, src *ledgerState) { *dst = *src }
	}
	k, err := machine.NewKind("ledger", machine.Machine[ledgerState, ledgerCmd, machine.None, machine.None, machine.None](ledger{}), opts)
	require.NoError(t, err)
	require.True(t, k.HasView())
	return k
}

func TestViewDriver(t *testing.T) {
	for _, clone := range []bool{false, true} {
		t.Run(fmt.Sprintf("clone=%v", clone), func(t *testing.T) {
			k := newLedger(t, clone)
			store := kv.NewMem()
			src := &flaky{Source: store}
			d, err := k.NewDriver("l1")
			require.NoError(t, err)
			d.SetSource(src)
			var fx machine.Effects[machine.None, machine.None]
			step := func(c ledgerCmd, rid string) machine.Outcome {
				t.Helper()
				out, err := d.Step(machine.Input[ledgerCmd, machine.None]{Value: c, RequestID: rid}, &fx)
				require.NoError(t, err)
				return out
			}
			out := step(ledgerCmd{Put: []string{"b", "a"}}, "")
			require.Equal(t, machine.Accepted, out.Status)
			require.Equal(t, 2, store.Len(), "committed writes reach the keyspace")
			rec := fx.Records[0]
			cs, err := kv.DecodeChanges(rec.Writes)
			require.NoError(t, err)
			require.Len(t, cs, 2)
			require.Equal(t, "a", string(cs[0].Key), "write set sorted")
			require.False(t, cs[0].PrevFound)

			// A rejection discards the writes (and rolls back memory).
			digest := store.Digest()
			out = step(ledgerCmd{Put: []string{"c"}, Del: []string{"a"}, Fail: true}, "r1")
			require.Equal(t, machine.Rejected, out.Status)
			require.Equal(t, digest, store.Digest())
			require.Equal(t, 2, d.State().Count)
			require.Empty(t, fx.Records[1].Writes)

			// A read failure fails the step, even when the machine swallows it.
			src.fail = true
			for _, swallow := range []bool{false, true} {
				before := d.Seq()
				out, err := d.Step(machine.Input[ledgerCmd, machine.None]{Value: ledgerCmd{Put: []string{"d"}, Swallow: swallow}, RequestID: "rf"}, &fx)
				require.ErrorIs(t, err, kv.ErrRead)
				require.ErrorIs(t, err, errDown)
				require.Equal(t, before, out.Seq)
				require.Equal(t, 2, d.State().Count)
				require.Len(t, fx.Records, 2, "nothing journaled")
			}
			src.fail = false

			// The write limit is a typed error.
			out = step(ledgerCmd{Put: []string{"e", "f", "g", "h", "i"}}, "")
			require.Equal(t, machine.Rejected, out.Status)
			require.ErrorIs(t, out.Err, kv.ErrTooManyWrites)

			snap, err := d.Snapshot()
			require.NoError(t, err)
			snapAt := len(fx.Records)
			step(ledgerCmd{Put: []string{"c"}, Del: []string{"a"}}, "")
			step(ledgerCmd{Put: []string{"a", "e"}, Del: []string{"c"}}, "")
			step(ledgerCmd{Del: []string{"e", "zz"}}, "")
			tail := append([]machine.Record(nil), fx.Records[snapAt:]...)

			_, err = k.Recover("l1", &snap, tail)
			require.ErrorIs(t, err, machine.ErrInvalidConfig)

			// Recovery replays the tail over the keyspace as of the snapshot.
			d2, err := k.RecoverFrom("l1", &snap, tail, store)
			require.NoError(t, err)
			require.Equal(t, *d.State(), withView(*d2.State(), d.State().view))
			require.Equal(t, d.Seq(), d2.Seq())

			// So does a full journal without a snapshot.
			d3, err := k.RecoverFrom("l1", nil, fx.Records, store)
			require.NoError(t, err)
			require.Equal(t, d.State().Sum, d3.State().Sum)

			// A journal whose writes disagree with the replay is nondeterminism.
			bad := append([]machine.Record(nil), tail...)
			cs, _ = kv.DecodeChanges(bad[0].Writes)
			cs[len(cs)-1].Value = []byte("y")
			bad[0].Writes = kv.AppendChanges(nil, cs)
			_, err = k.RecoverFrom("l1", &snap, bad, store)
			var nd *machine.NondeterminismError
			require.ErrorAs(t, err, &nd)
			require.Equal(t, "writes", nd.What)

			// Reads failing during recovery are retryable errors.
			src.fail = true
			_, err = k.RecoverFrom("l1", &snap, tail, src)
			require.ErrorIs(t, err, kv.ErrRead)
			src.fail = false

			// The record round-trips with its writes.
			b := tail[0].AppendBinary(nil)
			got, err := machine.DecodeRecord(b)
			require.NoError(t, err)
			require.Equal(t, tail[0].Writes, got.Writes)
		})
	}
}

func withView(s ledgerState, v *kv.View) ledgerState { s.view = v; return s }

func TestViewRestoreMustNotWrite(t *testing.T) {
	k := newLedger(t, false)
	d, err := k.NewDriver("l2")
	require.NoError(t, err)
	var fx machine.Effects[machine.None, machine.None]
	for i := 0; i < 99; i++ {
		_, err := d.Step(machine.Input[ledgerCmd, machine.None]{Value: ledgerCmd{Put: []string{fmt.Sprintf("k%02d", i)}}}, &fx)
		require.NoError(t, err)
	}
	_, err = d.Restore(&fx)
	require.ErrorIs(t, err, machine.ErrInvalidConfig)
}
