package actor_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
)

// instantStore acknowledges appends at once without keeping them: it
// measures the runtime's own cost, without any storage.
type instantStore struct{ *memstore.Store }

func (instantStore) AppendAsync(_ persistence.AppendRequest, done func(error)) { go done(nil) }

func BenchmarkBankNoStore(b *testing.B) {
	store := instantStore{memstore.New()}
	h, err := actor.New(actor.Config{Store: store, IdleTimeout: -1})
	require.NoError(b, err)
	bank, err := registerBank(h, account.Options{DigestEveryRecords: benchDigestEvery})
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, h.Start(ctx))
	defer h.Stop(ctx)
	for i := 0; i < benchAccounts; i++ {
		require.NoError(b, bank.Ref(account.AccountName(i)).Ask(ctx, account.Input{Kind: account.Deposit, AmountCents: benchFunds}))
	}
	before := h.Stats().Accepted
	lat := newLatencies()
	b.ResetTimer()
	start := time.Now()
	drive(b.N, benchConcurrency, lat, func(r *rand.Rand) error {
		from, to := r.IntN(benchAccounts), r.IntN(benchAccounts-1)
		if to >= from {
			to++
		}
		return bank.Ref(benchNames[from]).Ask(ctx, account.Input{Kind: account.Transfer, To: benchNames[to], AmountCents: 1 + r.Int64N(100)})
	})
	for h.Stats().ActionsQueued > 0 || h.Stats().Pending > 0 {
		time.Sleep(time.Millisecond)
	}
	all := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(h.Stats().Accepted-before)/all.Seconds(), "transitions/s")
	lat.report(b)
	b.ReportMetric(0, "ns/op")
}
