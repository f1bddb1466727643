package actor_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

type bankRef = actor.Ref[account.State, account.Input]

// registerBank registers the account kind with its credit delivered as the
// built-in entity-to-entity action.
func registerBank(h *actor.Host, opts account.Options) (*actor.KindRef[account.State, account.Input], error) {
	k, err := account.NewKindWith(opts)
	if err != nil {
		return nil, err
	}
	return actor.Register(h, k, actor.KindOptions[account.State, account.Input, account.Action, account.Result, machine.None]{
		Deliver: func(from machine.Entity, t machine.Tracked[account.Action]) (actor.Delivery, bool) {
			if t.Action.Kind != account.RequestCredit {
				return actor.Delivery{}, false
			}
			return actor.Delivery{To: machine.Entity{Kind: account.KindName, ID: t.Action.To}, Input: account.CreditInput(from.ID, t)}, true
		},
		Reply: func(_ account.Action, err error) account.Result { return account.CreditResult(err) },
	})
}

// waitQuiet waits until the host has no requests pending and no tracked
// actions queued, and the store lists no entity with outstanding actions.
func waitQuiet(ctx context.Context, h *actor.Host, store persistence.Store, shards int) error {
	for {
		st := h.Stats()
		if st.Pending == 0 && st.ActionsQueued == 0 {
			busy := false
			for s := 0; s < shards && !busy; s++ {
				ents, err := store.Pending(ctx, uint32(s))
				if err != nil {
					return err
				}
				busy = len(ents) > 0
			}
			if !busy {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not quiet: %+v: %w", h.Stats(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// bankTotals reads every account and checks the bank's invariants: no
// negative balance, nothing held once quiet, money conserved, and every
// settled transfer credited exactly once.
type bankTotals struct {
	balance, held, deposited, withdrawn     int64
	transferred, debited, refunded, credits int64
	transfers                               uint64
}

func readBank(ctx context.Context, ref func(string) bankRef, names []string) (bankTotals, map[string]account.State, error) {
	var t bankTotals
	states := make(map[string]account.State, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	sem := make(chan struct{}, 64)
	for _, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := ref(n).Query(ctx)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", n, err)
				return
			}
			mu.Lock()
			states[n] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return t, nil, err
	}
	for _, s := range states {
		t.balance += s.BalanceCents
		t.held += s.HeldCents
		t.deposited += s.Totals.DepositedCents
		t.withdrawn += s.Totals.WithdrawnCents
		t.transferred += s.Totals.TransferredCents
		t.debited += s.Totals.DebitedCents
		t.refunded += s.Totals.RefundedCents
		t.credits += s.Totals.CreditedCents
		t.transfers += s.Totals.Transfers
	}
	return t, states, nil
}

func (t bankTotals) check(states map[string]account.State) []string {
	var v []string
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := states[n]
		if s.BalanceCents < 0 || s.HeldCents < 0 {
			v = append(v, fmt.Sprintf("%s: negative balance %d or held %d", n, s.BalanceCents, s.HeldCents))
		}
		if s.HeldCents != 0 || len(s.Outgoing) != 0 {
			v = append(v, fmt.Sprintf("%s: %d transfers still in flight (%d held) after quiescence", n, len(s.Outgoing), s.HeldCents))
		}
		if s.Totals.TransferredCents != s.Totals.DebitedCents+s.Totals.RefundedCents+s.HeldCents {
			v = append(v, fmt.Sprintf("%s: transferred %d != debited %d + refunded %d + held %d", n, s.Totals.TransferredCents, s.Totals.DebitedCents, s.Totals.RefundedCents, s.HeldCents))
		}
	}
	if t.balance+t.held != t.deposited-t.withdrawn {
		v = append(v, fmt.Sprintf("money not conserved: balances %d + held %d != deposited %d - withdrawn %d", t.balance, t.held, t.deposited, t.withdrawn))
	}
	if t.credits != t.debited {
		v = append(v, fmt.Sprintf("credits applied %d != transfers settled %d (a transfer applied twice or lost)", t.credits, t.debited))
	}
	return v
}
