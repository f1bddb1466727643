package examples_test

import (
	"fmt"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// The pure driver, by hand: what the actor host does for every input.
func Example_driver() {
	// snippet: driver
	kind, _ := newKind(Wallet{})
	d, _ := kind.NewDriver("alice")
	var fx machine.Effects[Charge, Notice]
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

	// Step returns effects as data: the record to make durable, then the
	// actions to run. The caller persists fx.Records, replies, then executes.
	out, _ := d.Step(In{Time: now, RequestID: "r1", Value: Input{TopUp: 500}}, &fx)
	fmt.Println(out.Status, len(fx.Records), fx.Tracked)

	// The same request ID again: the original reply, no second transition.
	out, _ = d.Step(In{Time: now, RequestID: "r1", Value: Input{TopUp: 500}}, &fx)
	fmt.Println(out.Status, len(fx.Records))

	// A rejection: the machine's error, the state untouched.
	out, _ = d.Step(In{Time: now, Value: Input{Spend: 900}}, &fx)
	fmt.Println(out.Status, out.Err)

	// Crash: rebuild from the journal (digests verified), then Restore.
	d2, _ := kind.Recover("alice", nil, fx.Records)
	var after machine.Effects[Charge, Notice]
	rep, _ := d2.Restore(&after)
	fmt.Println(after.Tracked, rep.Complete())

	// The result comes back as a completion; a second one is stale.
	paid := In{Time: now, Completion: &machine.Completion[Paid]{ActionID: 1, Result: Paid{OK: true, Cents: 500}}}
	out, _ = d2.Step(paid, &after)
	fmt.Println(out.Status, d2.State().Balance)
	out, _ = d2.Step(paid, &after)
	fmt.Println(out.Status)
	// endsnippet

	// Output:
	// accepted 1 [{1 {500 false}}]
	// duplicate 1
	// rejected wallet: insufficient funds
	// [{1 {500 true}}] true
	// accepted 500
	// stale
}
