package account_test

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/machine"
)

// BenchmarkTransferSteps measures machine.Driver.Step alone on the account
// machine: one op is a whole transfer, three steps. The source steps a
// Transfer with a fresh request ID (as actor.Ask stamps one), the
// destination steps the Credit with the action's idempotency key as request
// ID, and the source steps the completion. Effects are reset after each
// step, like an entity that persists one input per batch.
//
//   - window=full: both request windows hold their default 1,000 IDs, so
//     every step with a request ID misses the index and evicts the oldest.
//   - window=young: a fresh pair of accounts every 40 transfers, so windows
//     stay small and grow (the actor bank benchmark spreads 200,000
//     transfers over 10,000 accounts: each sees a few dozen IDs).
//   - digest=every: window=full with the default kind, a state digest in
//     every record; the others disable digests, as the actor benchmarks do.
func BenchmarkTransferSteps(b *testing.B) {
	for _, c := range []struct {
		name   string
		digest int
		fresh  int // transfers per pair of accounts; 0: one pair for the run
	}{
		{"window=full", -1, 0},
		{"window=young", -1, 40},
		{"digest=every", 0, 0},
	} {
		b.Run(c.name, func(b *testing.B) { benchTransferSteps(b, c.digest, c.fresh) })
	}
}

func benchTransferSteps(b *testing.B, digest, fresh int) {
	k, err := account.NewKindWith(account.Options{DigestEveryRecords: digest})
	require.NoError(b, err)
	// Request IDs are made up front (the caller's, not the driver's cost);
	// a pool larger than the window never repeats an ID the window holds.
	const pool = 4096
	asks := make([]string, pool)
	keys := make([]string, pool)
	for i := range asks {
		var raw [16]byte
		binary.LittleEndian.PutUint64(raw[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(raw[8:], uint64(i))
		asks[i] = base64.RawURLEncoding.EncodeToString(raw[:])
		keys[i] = fmt.Sprintf("%s/%s/%d", account.KindName, "acct-000", 1_000_000+i)
	}
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	var src, dst *account.Driver
	var fx machine.Effects[account.Action, machine.None]
	step := func(d *account.Driver, in account.In) machine.Outcome {
		fx.Reset()
		out, err := d.Step(in, &fx)
		if err != nil || out.Status != machine.Accepted {
			b.Fatalf("step %+v: %v, %v", in, out, err)
		}
		return out
	}
	newPair := func() {
		var err error
		if src, err = k.NewDriver("acct-000"); err != nil {
			b.Fatal(err)
		}
		if dst, err = k.NewDriver("acct-001"); err != nil {
			b.Fatal(err)
		}
		step(src, account.In{Time: now, Value: account.Input{Kind: account.Deposit, AmountCents: account.MaxAmountCents}})
	}
	transfer := func(i int) {
		if fresh > 0 && i%fresh == 0 {
			newPair()
		}
		now = now.Add(time.Millisecond)
		step(src, account.In{Time: now, RequestID: asks[i%pool],
			Value: account.Input{Kind: account.Transfer, To: "acct-001", AmountCents: 1, Ref: uint64(i)}})
		t := fx.Tracked[0]
		step(dst, account.In{Time: now, RequestID: keys[i%pool], Value: account.CreditInput("acct-000", t)})
		step(src, account.In{Time: now, Completion: &machine.Completion[account.Result]{ActionID: t.ID, Result: account.CreditResult(nil)}})
	}
	newPair()
	i := 0
	if fresh == 0 {
		for ; i < 2*machine.DefaultRequestWindow; i++ { // fill the windows
			transfer(i)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		transfer(i)
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(3*b.N), "ns/step")
}
