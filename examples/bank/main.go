// Command bank tells the transfer-saga story: Alice sends money to Bob,
// her account crashes after Bob was credited but before his reply came
// back; after recovery the transfer is re-sent under its original ID, Bob
// recognises it, and Alice settles it exactly once. A transfer to a closed
// account is refunded. Money is conserved throughout; then the simulator
// verifies the accounts with lost, duplicated and late deliveries.
//
//	go run ./examples/bank
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

type fx = machine.Effects[account.Action, machine.None]

// bank is a hand-driven runtime: one driver and one journal per account,
// and a queue of entity-to-entity deliveries.
type bank struct {
	kind     *account.Kind
	names    []string
	accounts map[string]*account.Driver
	journals map[string][][]byte
	outbox   []delivery
	clock    time.Time
}

type delivery struct {
	from string
	t    machine.Tracked[account.Action]
}

// step applies one input the way the runtime does: step, make the record
// durable, then reply, then hand out the actions.
func (b *bank) step(name, what string, in account.In) (machine.Outcome, error) {
	var effects fx
	b.clock = b.clock.Add(time.Second)
	in.Time = b.clock
	out, err := b.accounts[name].Step(in, &effects)
	if err != nil {
		return out, err
	}
	for _, r := range effects.Records {
		b.journals[name] = append(b.journals[name], r.AppendBinary(nil))
	}
	reply := "ok"
	switch {
	case out.Status == machine.Duplicate:
		reply = "already done: answered from the request window"
	case out.Status == machine.Stale:
		reply = "dropped: not outstanding any more"
	case out.Err != nil:
		reply = "rejected: " + out.Err.Error()
	}
	st := b.accounts[name].State()
	fmt.Printf("%-6s %-40s %-48s balance %8s held %7s\n", name, what, reply, cents(st.BalanceCents), cents(st.HeldCents))
	for _, t := range effects.Tracked {
		fmt.Printf("%6s -> ask %s to credit %s (action %d)\n", "", t.Action.To, cents(t.Action.AmountCents), t.ID)
		b.outbox = append(b.outbox, delivery{from: name, t: t})
	}
	return out, nil
}

func (b *bank) send(name, what string, v account.Input) error {
	_, err := b.step(name, what, account.In{Value: v})
	return err
}

// deliver hands the oldest queued credit request to its destination, with
// the action's idempotency key as request ID; the reply goes back to the
// source unless it is lost.
func (b *bank) deliver(replyLost bool) error {
	d := b.outbox[0]
	b.outbox = b.outbox[1:]
	key := machine.IdempotencyKey(machine.Entity{Kind: account.KindName, ID: d.from}, d.t.ID)
	out, err := b.step(d.t.Action.To, "credit "+key, account.In{RequestID: key, Value: account.CreditInput(d.from, d.t)})
	if err != nil {
		return err
	}
	if replyLost {
		fmt.Printf("%6s    (the reply to %s is lost)\n", "", d.from)
		return nil
	}
	res := account.CreditResult(out.Err)
	_, err = b.step(d.from, fmt.Sprintf("reply: credited=%v %s", res.Credited, res.Code),
		account.In{Completion: &machine.Completion[account.Result]{ActionID: d.t.ID, Result: res}})
	return err
}

// audit prints the conservation check a load driver would run by reading
// states.
func (b *bank) audit() error {
	var balances, held, deposited, withdrawn, debited, credited int64
	for _, n := range b.names {
		s := b.accounts[n].State()
		if err := (account.Machine{}).Invariants(s); err != nil {
			return fmt.Errorf("account %s: %w", n, err)
		}
		balances += s.BalanceCents
		held += s.HeldCents
		deposited += s.Totals.DepositedCents
		withdrawn += s.Totals.WithdrawnCents
		debited += s.Totals.DebitedCents
		credited += s.Totals.CreditedCents
	}
	inFlightCredited := credited - debited // applied at the destination, still held at the source
	ok := balances+held-inFlightCredited == deposited-withdrawn
	fmt.Printf("audit: balances %s + held %s - credited in flight %s = deposits - withdrawals %s: %v\n",
		cents(balances), cents(held), cents(inFlightCredited), cents(deposited-withdrawn), ok)
	if !ok {
		return fmt.Errorf("money not conserved")
	}
	return nil
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func run() error {
	kind, err := account.NewKind()
	if err != nil {
		return err
	}
	b := &bank{kind: kind, names: []string{"alice", "bob", "carol"}, accounts: map[string]*account.Driver{},
		journals: map[string][][]byte{}, clock: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	for _, n := range b.names {
		if b.accounts[n], err = kind.NewDriver(n); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		who, what string
		in        account.Input
	}{
		{"alice", "deposit 100.00", account.Input{Kind: account.Deposit, AmountCents: 10_000}},
		{"alice", "transfer 250.00 to bob", account.Input{Kind: account.Transfer, AmountCents: 25_000, To: "bob"}},
		{"alice", "transfer 30.00 to bob", account.Input{Kind: account.Transfer, AmountCents: 3_000, To: "bob", Ref: 1001}},
		{"carol", "close (empty) account", account.Input{Kind: account.Close}},
		{"alice", "transfer 20.00 to carol", account.Input{Kind: account.Transfer, AmountCents: 2_000, To: "carol", Ref: 1002}},
	} {
		if err := b.send(s.who, s.what, s.in); err != nil {
			return err
		}
	}
	if err := b.audit(); err != nil {
		return err
	}
	if err := b.deliver(true); err != nil { // bob is credited; alice never hears
		return err
	}
	if err := b.audit(); err != nil {
		return err
	}

	fmt.Println("-- alice crashes: her live state and in-flight deliveries are lost --")
	records := make([]machine.Record, len(b.journals["alice"]))
	for i, raw := range b.journals["alice"] {
		if records[i], err = machine.DecodeRecord(raw); err != nil {
			return err
		}
	}
	if b.accounts["alice"], err = kind.Recover("alice", nil, records); err != nil {
		return err
	}
	var effects fx
	rep, err := b.accounts["alice"].Restore(&effects)
	if err != nil {
		return err
	}
	fmt.Printf("alice recovered from %d records; Restore re-emitted everything outstanding: %v\n", len(records), rep.Complete())
	b.outbox = nil
	for _, t := range effects.Tracked {
		fmt.Printf("%6s -> ask %s again to credit %s (original action %d)\n", "", t.Action.To, cents(t.Action.AmountCents), t.ID)
		b.outbox = append(b.outbox, delivery{from: "alice", t: t})
	}
	for len(b.outbox) > 0 {
		if err := b.deliver(false); err != nil {
			return err
		}
	}
	if err := b.audit(); err != nil {
		return err
	}
	fmt.Printf("bob was credited %d time(s); alice settled %d and refunded %d transfer(s)\n",
		b.accounts["bob"].State().Totals.Credits, b.accounts["alice"].State().Totals.Debits, b.accounts["alice"].State().Totals.Refunds)
	for _, r := range b.accounts["alice"].State().RecentRecords() {
		fmt.Printf("alice recent: ref %d, %s to %s, action %d, %s\n", r.Ref, cents(r.AmountCents), r.Peer, r.TransferID, r.Outcome)
	}

	model := &account.Model{}
	sm, err := sim.New(kind, sim.Model[account.State, account.Input, account.Action, account.Result, machine.None](model),
		sim.Config{Seeds: []uint64{1, 2}, Steps: 6_000, Entities: 16, Faults: sim.DefaultFaults, EntityID: account.AccountName})
	if err != nil {
		return err
	}
	start := time.Now()
	total, err := sm.RunAll()
	if err != nil {
		return err
	}
	fmt.Println("simulation: 16 accounts, money conserved and every transfer applied exactly once on each side after every step")
	fmt.Println(total.Summary(time.Since(start)))
	return nil
}
