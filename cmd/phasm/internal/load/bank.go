package load

import (
	"context"
	"fmt"

	"github.com/phasm-go/phasm/examples/bank/account"
)

// workload is one of bank, dentist, counter.
type workload interface {
	// quantities names the ledger's quantities.
	quantities() []string
	// op performs one operation for worker w.
	op(w *worker)
	// check reads every entity back and returns the violations; thisRun
	// says the run's client records (transfers sent, gateway holds) are
	// available.
	check(ctx context.Context, thisRun bool) []string
	// summary describes what a passed check verified.
	summary() string
}

func newWorkload(name string, r *runner) workload {
	switch name {
	case Dentist:
		return &dentistLoad{r: r}
	case Counter:
		return &counterLoad{r: r}
	default:
		return &bankLoad{r: r}
	}
}

// AccountID is the entity ID of account i of the bank workload, after
// Config.IDPrefix.
func AccountID(i int) string { return fmt.Sprintf("acct-%06d", i) }

// Ledger quantities of the bank workload.
const (
	qDeposited = iota
	qWithdrawn
	qTransfers
	qTransferred
	qCredits
	qCredited
)

type sentTransfer struct {
	from, to int
	amount   int64
}

type bankLoad struct {
	r    *runner
	summ string
}

func (*bankLoad) quantities() []string {
	return []string{"deposited_cents", "withdrawn_cents", "transfers", "transferred_cents", "credits", "credited_cents"}
}

func (b *bankLoad) op(w *worker) {
	n := b.r.cfg.Entities
	accts := b.r.set.Accounts
	e := w.r.IntN(n)
	led := b.r.led
	x := w.r.Float64()
	switch {
	case x < 0.15:
		amt := 1 + w.r.Int64N(10_000)
		o := w.ask(func(ctx context.Context) error {
			return accts.Ref(b.r.accountID(e)).Ask(ctx, account.Input{Kind: account.Deposit, AmountCents: amt})
		})
		led.add(e, qDeposited, amt, o)
	case x < 0.20:
		amt := 1 + w.r.Int64N(5_000)
		o := w.ask(func(ctx context.Context) error {
			return accts.Ref(b.r.accountID(e)).Ask(ctx, account.Input{Kind: account.Withdraw, AmountCents: amt})
		})
		led.add(e, qWithdrawn, amt, o)
	default:
		to := w.r.IntN(n - 1)
		if to >= e {
			to++
		}
		amt := 1 + w.r.Int64N(2_000)
		ref := w.ref()
		o := w.ask(func(ctx context.Context) error {
			return accts.Ref(b.r.accountID(e)).Ask(ctx, account.Input{Kind: account.Transfer, AmountCents: amt, To: b.r.accountID(to), Ref: ref})
		})
		led.add(e, qTransfers, 1, o)
		led.add(e, qTransferred, amt, o)
		led.add(to, qCredits, 1, o)
		led.add(to, qCredited, amt, o)
		if o != rejected {
			if w.sent == nil {
				w.sent = map[uint64]sentTransfer{}
			}
			w.sent[ref] = sentTransfer{from: e, to: to, amount: amt}
		}
	}
}

func (b *bankLoad) summary() string { return b.summ }

func (b *bankLoad) check(ctx context.Context, thisRun bool) []string {
	r := b.r
	n := r.cfg.Entities
	states, readable, v := readAll(ctx, n, b.r.accountID, func(ctx context.Context, id string) (account.State, error) {
		return r.set.Accounts.Ref(id).Query(ctx)
	})
	var sent map[uint64]sentTransfer
	if thisRun {
		sent = map[uint64]sentTransfer{}
		for _, w := range r.workers {
			for k, t := range w.sent {
				sent[k] = t
			}
		}
	}
	closed := false
	for i := range states {
		closed = closed || states[i].Closed
	}
	var balances, held, deposited, withdrawn, debited, credited int64
	var debits, credits, transfers uint64
	for i := range states {
		if !readable[i] {
			continue
		}
		s := &states[i]
		id := b.r.accountID(i)
		t := &s.Totals
		bad := func(format string, args ...any) { v = append(v, id+": "+fmt.Sprintf(format, args...)) }
		if s.BalanceCents < 0 || s.HeldCents < 0 {
			bad("negative money: balance %d, held %d", s.BalanceCents, s.HeldCents)
		}
		if s.HeldCents != 0 || len(s.Outgoing) != 0 {
			bad("%d transfers still in flight (%d cents held) after the node became quiet", len(s.Outgoing), s.HeldCents)
		}
		if s.BalanceCents+s.HeldCents != t.DepositedCents+t.CreditedCents-t.WithdrawnCents-t.DebitedCents {
			bad("balance %d + held %d != deposited %d + credited %d - withdrawn %d - debited %d",
				s.BalanceCents, s.HeldCents, t.DepositedCents, t.CreditedCents, t.WithdrawnCents, t.DebitedCents)
		}
		if t.TransferredCents != t.DebitedCents+t.RefundedCents+s.HeldCents {
			bad("transferred %d != debited %d + refunded %d + held %d", t.TransferredCents, t.DebitedCents, t.RefundedCents, s.HeldCents)
		}
		if t.Refunds > 0 && !closed {
			bad("%d transfers refunded although no account is closed (every credit should have been accepted)", t.Refunds)
		}
		for _, c := range []struct {
			q    int
			v    int64
			what string
		}{
			{qDeposited, t.DepositedCents, "deposited cents"}, {qWithdrawn, t.WithdrawnCents, "withdrawn cents"},
			{qTransfers, int64(t.Transfers), "outgoing transfers"}, {qTransferred, t.TransferredCents, "transferred cents"},
			{qCredits, int64(t.Credits), "credits received"}, {qCredited, t.CreditedCents, "credited cents"},
		} {
			if c.what == "credits received" || c.what == "credited cents" {
				if closed {
					continue // a closed destination refuses credits
				}
			}
			if msg := r.led.within(id, i, c.q, c.v, c.what); msg != "" {
				v = append(v, msg)
			}
		}
		// The Recent ring: each transfer of this run appears once per
		// role, between the accounts and with the amount it was sent with.
		seen := map[[2]uint64]bool{}
		for _, rec := range s.RecentRecords() {
			if sent == nil || rec.Ref>>40 != r.nonce || rec.Ref == 0 {
				continue
			}
			key := [2]uint64{rec.Ref, uint64(rec.Outcome)}
			if seen[key] {
				bad("transfer ref %d recorded twice as %s", rec.Ref, rec.Outcome)
			}
			seen[key] = true
			st, found := sent[rec.Ref]
			if !found {
				bad("transfer ref %d (%s, peer %s) was never sent by this run", rec.Ref, rec.Outcome, rec.Peer)
				continue
			}
			from, to := b.r.accountID(st.from), b.r.accountID(st.to)
			switch {
			case rec.AmountCents != st.amount:
				bad("transfer ref %d recorded with %d cents, sent with %d", rec.Ref, rec.AmountCents, st.amount)
			case rec.Outcome == account.Credited && (to != id || from != rec.Peer):
				bad("transfer ref %d from %s to %s credited here from %s", rec.Ref, from, to, rec.Peer)
			case rec.Outcome != account.Credited && (from != id || to != rec.Peer):
				bad("transfer ref %d from %s to %s settled here with %s", rec.Ref, from, to, rec.Peer)
			}
		}
		balances += s.BalanceCents
		held += s.HeldCents
		deposited += t.DepositedCents
		withdrawn += t.WithdrawnCents
		debited += t.DebitedCents
		credited += t.CreditedCents
		debits += t.Debits
		credits += t.Credits
		transfers += t.Transfers
	}
	if len(v) > 0 && len(v) == n {
		return v
	}
	if balances+held != deposited-withdrawn {
		v = append(v, fmt.Sprintf("money not conserved: balances %d + held %d = %d, but deposits %d - withdrawals %d = %d",
			balances, held, balances+held, deposited, withdrawn, deposited-withdrawn))
	}
	if debited != credited || debits != credits {
		v = append(v, fmt.Sprintf("settled transfers debited %d cents in %d transfers, but credits applied %d cents in %d: a transfer applied twice or lost",
			debited, debits, credited, credits))
	}
	b.summ = fmt.Sprintf("%d accounts read back; money conserved (%d cents in balances = deposits - withdrawals); %d transfers, %d settled and credited exactly once (%d cents); no negative balance; every account within the client's ledger",
		n, balances, transfers, debits, debited)
	return v
}
