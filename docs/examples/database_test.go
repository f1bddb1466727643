package examples_test

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// snippet: ledger-state
// LedgerState is a database-backed state: the entries live in the entity's
// keyspace, read and written through the view; the in-memory part holds
// what is small and hot.
type LedgerState struct {
	Balance int64    // in memory: encoded in snapshots and digests
	view    *kv.View `phasm:"-"` // the keyspace: never encoded
}

// BindView implements machine.ViewState: the driver binds the view before
// every Transition and Restore.
func (s *LedgerState) BindView(v *kv.View) { s.view = v }

// endsnippet

type Post struct {
	ID     uint64
	Amount int64
}

var ErrDuplicatePost = machine.NewError("ledger.duplicate", "ledger: entry already posted")

type Ledger struct{}

// snippet: ledger-transition
func entryKey(id uint64) []byte { return fmt.Appendf(nil, "entry/%016x", id) }

func (Ledger) Transition(s *LedgerState, in machine.Input[Post, machine.None], _ *machine.Actions[machine.None, machine.None]) error {
	key := entryKey(in.Value.ID)
	// A read may fail (the database is unreachable): return the error.
	_, posted, err := s.view.Get(key)
	if err != nil {
		return err
	}
	// Validate before writing anything, as for plain state.
	if posted {
		return ErrDuplicatePost
	}
	if err := s.view.Set(key, fmt.Appendf(nil, "%d", in.Value.Amount)); err != nil {
		return err // a key, value or write-count limit
	}
	s.Balance += in.Value.Amount
	return nil
}

// endsnippet

func (Ledger) Restore(*LedgerState, *machine.Actions[machine.None, machine.None]) error { return nil }

// snippet: ledger-scan
// Recent returns up to n entries from id on, in key order: scans are
// ordered and bounded, and see the transaction's own writes.
func Recent(v *kv.View, id uint64, n int) ([]kv.Pair, error) {
	pairs, _, err := v.Scan(entryKey(id), kv.PrefixEnd([]byte("entry/")), n)
	return pairs, err
}

// endsnippet

type down struct{ kv.Source }

func (down) Get([]byte) ([]byte, bool, error) { return nil, false, errors.New("connection refused") }

// The ledger on an in-memory keyspace: accepted posts journal their write
// sets, a rejected one writes nothing, a failed read fails the step, and
// recovery replays the journal over the keyspace.
func Example_databaseBackedState() {
	// snippet: ledger-driver
	kind, _ := machine.NewKind("ledger", machine.Machine[LedgerState, Post, machine.None, machine.None, machine.None](Ledger{}),
		machine.Options[LedgerState, Post, machine.None, machine.None, machine.None]{})
	keyspace := kv.NewMem() // in production: a kv.Cache over the store
	d, _ := kind.NewDriver("acct-1")
	d.SetSource(keyspace)
	var fx machine.Effects[machine.None, machine.None]
	post := func(id uint64, amount int64) machine.Input[Post, machine.None] {
		return machine.Input[Post, machine.None]{Value: Post{ID: id, Amount: amount}}
	}
	d.Step(post(1, 500), &fx)
	d.Step(post(2, -200), &fx)
	out, _ := d.Step(post(1, 500), &fx) // rejected: nothing written
	fmt.Println(out.Status, out.Err, "| keys:", keyspace.Len(), "| balance:", d.State().Balance)

	changes, _ := kv.DecodeChanges(fx.Records[0].Writes) // what the store applies with the record
	fmt.Printf("record 1 writes %s = %s\n", changes[0].Key, changes[0].Value)
	// endsnippet

	entries, _ := Recent(d.State().view, 0, 10)
	fmt.Println("entries:", len(entries))

	// snippet: ledger-read-failure
	d.SetSource(down{keyspace})
	_, err := d.Step(post(3, 100), &fx)
	fmt.Println("read failure:", errors.Is(err, kv.ErrRead), "| balance:", d.State().Balance)
	// endsnippet

	// snippet: ledger-recover
	d2, err := kind.RecoverFrom("acct-1", nil, fx.Records, keyspace)
	fmt.Println("recovered:", err, d2.State().Balance, d2.Seq())
	// endsnippet

	// Output:
	// rejected ledger: entry already posted | keys: 2 | balance: 300
	// record 1 writes entry/0000000000000001 = 500
	// entries: 2
	// read failure: true | balance: 300
	// recovered: <nil> 300 2
}
