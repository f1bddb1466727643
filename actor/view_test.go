package actor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
	"github.com/phasm-go/phasm/persistence/pebblestore"
)

type yearOpts = actor.KindOptions[clinic.YearState, clinic.YearInput, clinic.Action, clinic.Result, machine.None]

func startYearHost(t *testing.T, store persistence.Store, paid *atomic.Int64, gate <-chan struct{}) (*actor.Host, *actor.KindRef[clinic.YearState, clinic.YearInput]) {
	t.Helper()
	k, err := clinic.NewYearKind()
	require.NoError(t, err)
	h, err := actor.New(actor.Config{Store: store, SnapshotEveryRecords: 4})
	require.NoError(t, err)
	ref, err := actor.Register(h, k, yearOpts{
		Execute: func(_ context.Context, c actor.Call[clinic.Action]) (clinic.Result, error) {
			if gate != nil {
				<-gate
			}
			if c.Action.Kind != clinic.Release {
				paid.Add(c.Action.AmountCents)
			}
			return clinic.Result{OK: true}, nil
		},
		Failure:          func(clinic.Action, error) clinic.Result { return clinic.Result{Reason: clinic.Unavailable} },
		ViewCacheEntries: 64,
	})
	require.NoError(t, err)
	require.NoError(t, h.Start(ctx(t)))
	return h, ref
}

// TestDatabaseBackedEntityOnPebble hosts the database-backed year calendar
// on Pebble: bookings land in the entity's keyspace with the journal, a
// conflicting request is rejected by reading it, and after a restart the
// entity recovers from its snapshot, journal tail and keyspace.
func TestDatabaseBackedEntityOnPebble(t *testing.T) {
	dir := t.TempDir()
	store, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	var paid atomic.Int64
	h, cals := startYearHost(t, store, &paid, nil)
	cal := cals.Ref("downtown")
	e := machine.Entity{Kind: clinic.YearKindName, ID: "downtown"}
	settled := func(bookings uint32) func() bool {
		return func() bool {
			s, err := cal.Query(ctx(t))
			return err == nil && s.Bookings == bookings && len(s.Requests) == 0
		}
	}
	for i := range 10 {
		require.NoError(t, cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.RequestExact, Ref: uint64(100 + i), Type: clinic.Checkup,
			Day: uint16(7 * i), Chair: 2, Start: clinic.At(9, 30)}))
	}
	eventually(t, "ten bookings confirmed", settled(10))
	// The slot is taken: the request is rejected after reading the keyspace.
	err = cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.RequestExact, Ref: 200, Type: clinic.Cleaning, Day: 0, Chair: 2, Start: clinic.At(9, 45)})
	require.ErrorIs(t, err, clinic.ErrSlotTaken)
	// An earliest-slot request scans for a free one.
	require.NoError(t, cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.RequestEarliest, Ref: 201, Type: clinic.RootCanal, Day: 0, WindowDays: 1}))
	require.NoError(t, cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.Cancel, Ref: 105}))
	eventually(t, "the cancellation released", settled(10))
	s, err := cal.Query(ctx(t))
	require.NoError(t, err)
	assert.Nil(t, s.Keys(), "a query's copy has no live view")
	require.NoError(t, clinic.CheckYear(&s.YearCore, persistence.Source(store, e, 0)))
	assert.Equal(t, int64(10*7500+20000), paid.Load())

	require.NoError(t, h.Stop(ctx(t)))
	require.NoError(t, store.Close())
	store, err = pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	defer store.Close()
	h, cals = startYearHost(t, store, &paid, nil)
	defer h.Stop(ctx(t))
	cal = cals.Ref("downtown")
	s2, err := cal.Query(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, s.YearCore, s2.YearCore)
	require.NoError(t, clinic.CheckYear(&s2.YearCore, persistence.Source(store, e, 0)))
	err = cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.RequestExact, Ref: 300, Type: clinic.Cleaning, Day: 7, Chair: 2, Start: clinic.At(9, 30)})
	require.ErrorIs(t, err, clinic.ErrSlotTaken)
	require.NoError(t, cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.RequestExact, Ref: 301, Type: clinic.Cleaning, Day: 35, Chair: 2, Start: clinic.At(9, 30)}))
	eventually(t, "the freed slot booked again", settled(11))
}

// TestDatabaseBackedReadFailureIsRetryable: with the store's reads
// failing, an input fails with ErrUnavailable and changes nothing; once
// reads work the same input succeeds.
func TestDatabaseBackedReadFailureIsRetryable(t *testing.T) {
	store := memstore.New()
	var paid atomic.Int64
	gate := make(chan struct{})
	h, cals := startYearHost(t, store, &paid, gate)
	defer h.Stop(ctx(t))
	cal := cals.Ref("c")
	require.NoError(t, cal.Ask(ctx(t), clinic.YearInput{Kind: clinic.RequestExact, Ref: 1, Type: clinic.Cleaning, Day: 1, Chair: 0, Start: clinic.At(9, 0)}))
	store.FailReads(nil)
	// The payment's completion arrives while reads fail: it is retried,
	// not lost.
	reads := store.Reads()
	close(gate)
	eventually(t, "the completion retried", func() bool { return store.Reads() >= reads+3 })
	s, err := cal.Query(ctx(t))
	require.NoError(t, err)
	require.Equal(t, uint16(1), s.Payments, "nothing applied while reads fail")
	in := clinic.YearInput{Kind: clinic.RequestExact, Ref: 2, Type: clinic.Cleaning, Day: 2, Chair: 0, Start: clinic.At(9, 0)}
	// The client retries an unavailable entity until its deadline.
	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	err = cal.Ask(short, in)
	require.ErrorIs(t, err, actor.ErrUnavailable)
	require.ErrorIs(t, err, memstore.ErrReadFailed)
	store.StopFailingReads()
	require.NoError(t, cal.Ask(ctx(t), in))
	eventually(t, "both booked", func() bool {
		s, err := cal.Query(ctx(t))
		return err == nil && s.Bookings == 2
	})
}

type storeWithoutKeyspace struct{ persistence.Store }

func TestDatabaseBackedKindNeedsKeyspaces(t *testing.T) {
	k, err := clinic.NewYearKind()
	require.NoError(t, err)
	h, err := actor.New(actor.Config{Store: storeWithoutKeyspace{memstore.New()}})
	require.NoError(t, err)
	_, err = actor.Register(h, k, yearOpts{})
	require.True(t, errors.Is(err, actor.ErrInvalidKind), "%v", err)
}
