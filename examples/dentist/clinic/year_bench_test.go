package clinic_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/pebblestore"
)

// BenchmarkYearTransition measures the cost of one transition of the year
// calendar holding 1,000, 10,000 and 100,000 bookings, as a plain value
// (the whole calendar is copied on every commit and encoded for every
// digest) and database-backed (the bookings are in the keyspace; the
// in-memory part stays small). Each op is one transition of a cycle of
// four: an exact request for a free slot, its payment, its cancellation and
// the release; so the calendar's size stays put. The database-backed
// calendar runs the runtime's read path: a kv.Cache whose pending writes
// are applied to the store (a kv.Mem) after each step, as a durable append
// would, then released with Durable.
//
//	go test -run '^$' -bench BenchmarkYearTransition -benchtime 2000x ./examples/dentist/clinic
func BenchmarkYearTransition(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("plain/bookings=%d", n), func(b *testing.B) { benchPlainYear(b, n) })
		b.Run(fmt.Sprintf("view/bookings=%d", n), func(b *testing.B) { benchViewYear(b, n) })
	}
}

// BenchmarkYearTransitionPebble is the database-backed calendar on
// Pebble: each op is a transition plus its durable append (a synced
// batch carrying the record and its writes), reads going through the
// entity's kv.Cache to Pebble.
//
//	go test -run '^$' -bench BenchmarkYearTransitionPebble -benchtime 2000x ./examples/dentist/clinic
func BenchmarkYearTransitionPebble(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("bookings=%d", n), func(b *testing.B) { benchPebbleYear(b, n) })
	}
}

func benchPebbleYear(b *testing.B, n int) {
	k, err := clinic.NewYearKind()
	require.NoError(b, err)
	store, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	require.NoError(b, err)
	defer store.Close()
	e := machine.Entity{Kind: k.Name(), ID: "c"}
	ctx := context.Background()
	// Fill the keyspace through appends (records carrying the bookings),
	// then start the entity from a snapshot of the matching in-memory part.
	var batch []kv.Change
	var seq uint64
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ws := make([]kv.Write, len(batch))
		for i, c := range batch {
			ws[i] = c.Write
		}
		net := kv.Net(ws)
		cs := make([]kv.Change, len(net))
		for i, w := range net {
			cs[i] = kv.Change{Write: w}
		}
		seq++
		rec := machine.Record{Seq: seq, Kind: machine.RecordInput, Payload: []byte("fill"), Writes: kv.AppendChanges(nil, cs)}
		require.NoError(b, store.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: seq - 1, Records: []machine.Record{rec}}))
		batch = batch[:0]
	}
	var st clinic.YearState
	st.YearCore, err = clinic.FillYear(n, func(key, v []byte) {
		batch = append(batch, kv.Change{Write: kv.Write{Key: append([]byte(nil), key...), Value: append([]byte(nil), v...)}})
		if len(batch) == 20_000 {
			flush()
		}
	})
	require.NoError(b, err)
	flush()
	snap := yearSnapshot(b, k, &st)
	snap.Seq = seq
	require.NoError(b, store.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: seq, Snapshot: &snap}))
	l, err := store.Load(ctx, e)
	require.NoError(b, err)
	cache := kv.NewCache(persistence.Source(store, e, 0), 0, 0)
	d, err := k.RecoverFrom(e.ID, l.Snapshot, l.Records, cache)
	require.NoError(b, err)
	require.Equal(b, uint32(n), d.State().Bookings)
	runYearCycle[clinic.YearState](b, d.Step, func(fx *machine.Effects[clinic.Action, machine.None]) {
		req := persistence.AppendRequest{Entity: e, ExpectedSeq: fx.Records[0].Seq - 1, Records: fx.Records, Pending: d.NumOutstanding() > 0}
		if err := store.Append(ctx, req); err != nil {
			b.Fatal(err)
		}
		cache.Durable(d.Seq())
	})
}

// yearCycle returns the i-th input of the benchmark's cycle; last holds
// the tracked action of the previous step.
func yearCycle(i int, r *rand.Rand, ref uint64, last machine.ActionID) machine.Input[clinic.YearInput, clinic.Result] {
	switch i % 4 {
	case 0:
		day := uint16(r.IntN(clinic.YearDays))
		for clinic.YearWeekday(day) > clinic.Friday {
			day = (day + 1) % clinic.YearDays
		}
		start := clinic.At(10, 15*r.IntN(4)) // open every weekday
		return machine.Input[clinic.YearInput, clinic.Result]{Value: clinic.YearInput{
			Kind: clinic.RequestExact, Ref: ref, Type: clinic.Checkup, Day: day, Chair: clinic.Chairs - 1, Start: start}}
	case 2:
		return machine.Input[clinic.YearInput, clinic.Result]{Value: clinic.YearInput{Kind: clinic.Cancel, Ref: ref}}
	default:
		return machine.Input[clinic.YearInput, clinic.Result]{Completion: &machine.Completion[clinic.Result]{ActionID: last, Result: clinic.Result{OK: true}}}
	}
}

func runYearCycle[S any](b *testing.B, step func(machine.Input[clinic.YearInput, clinic.Result], *machine.Effects[clinic.Action, machine.None]) (machine.Outcome, error), after func(*machine.Effects[clinic.Action, machine.None])) {
	r := rand.New(rand.NewPCG(1, 2))
	var fx machine.Effects[clinic.Action, machine.None]
	var last machine.ActionID
	ref := uint64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%4 == 0 {
			ref++
		}
		fx.Reset()
		out, err := step(yearCycle(i, r, ref, last), &fx)
		if err != nil || out.Status != machine.Accepted {
			b.Fatalf("step %d: %v %v %v", i, out.Status, out.Err, err)
		}
		if len(fx.Tracked) > 0 {
			last = fx.Tracked[0].ID
		}
		if after != nil {
			after(&fx)
		}
	}
}

func yearSnapshot[S any](b *testing.B, k *machine.Kind[S, clinic.YearInput, clinic.Action, clinic.Result, machine.None], s *S) machine.Snapshot {
	d, err := k.NewDriver("c")
	require.NoError(b, err)
	snap, err := d.Snapshot()
	require.NoError(b, err)
	snap.Seq = 1
	snap.State, err = k.StateCodec().Append(nil, s)
	require.NoError(b, err)
	return snap
}

func benchPlainYear(b *testing.B, n int) {
	k, err := clinic.NewPlainYearKind()
	require.NoError(b, err)
	var st clinic.PlainYearState
	st.YearCore, err = clinic.FillYear(n, func(key, v []byte) { _ = st.Slots.Set(key, v) })
	require.NoError(b, err)
	snap := yearSnapshot(b, k, &st)
	d, err := k.RecoverFrom("c", &snap, nil, nil)
	require.NoError(b, err)
	require.Equal(b, uint32(n), d.State().Bookings)
	runYearCycle[clinic.PlainYearState](b, d.Step, nil)
}

func benchViewYear(b *testing.B, n int) {
	k, err := clinic.NewYearKind()
	require.NoError(b, err)
	store := kv.NewMem()
	var st clinic.YearState
	st.YearCore, err = clinic.FillYear(n, store.Set)
	require.NoError(b, err)
	snap := yearSnapshot(b, k, &st)
	cache := kv.NewCache(store, 0, 0)
	d, err := k.RecoverFrom("c", &snap, nil, cache)
	require.NoError(b, err)
	require.Equal(b, uint32(n), d.State().Bookings)
	runYearCycle[clinic.YearState](b, d.Step, func(fx *machine.Effects[clinic.Action, machine.None]) {
		// The append: the store applies the record's writes, then the
		// cache lets go of them.
		for _, rec := range fx.Records {
			cs, err := kv.DecodeChanges(rec.Writes)
			if err != nil {
				b.Fatal(err)
			}
			store.Apply(kv.WritesOf(cs))
			cache.Durable(rec.Seq)
		}
	})
}
