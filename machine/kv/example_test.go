package kv_test

import (
	"fmt"

	"github.com/phasm-go/phasm/machine/kv"
)

// A view is a transaction over a keyspace: reads see its own writes in key
// order, and nothing reaches the keyspace until the writes are committed.
func ExampleView() {
	keyspace := kv.NewMem()
	keyspace.Set([]byte("slot/0900"), []byte("ann"))
	keyspace.Set([]byte("slot/1000"), []byte("bob"))

	v := kv.NewView(0)
	v.Reset(keyspace) // the driver does this before each transition
	_ = v.Set([]byte("slot/0930"), []byte("cat"))
	_ = v.Delete([]byte("slot/1000"))
	pairs, more, _ := v.Scan([]byte("slot/"), kv.PrefixEnd([]byte("slot/")), 10)
	for _, p := range pairs {
		fmt.Printf("%s=%s ", p.Key, p.Value)
	}
	fmt.Println("more:", more, "| committed keys:", keyspace.Len())

	keyspace.Commit(1, v.Writes()) // after a successful transition
	fmt.Println("after commit:", keyspace.Len())
	// Output:
	// slot/0900=ann slot/0930=cat more: false | committed keys: 2
	// after commit: 2
}

// Before-images journaled with each write let recovery see the keyspace
// as it was before a journal tail.
func ExampleOverlay_Undo() {
	keyspace := kv.NewMem()
	keyspace.Set([]byte("a"), []byte("old"))
	v := kv.NewView(0)
	v.Reset(keyspace)
	_ = v.Set([]byte("a"), []byte("new"))
	changes, _ := kv.Changes(keyspace, v.Writes())
	keyspace.Commit(1, v.Writes())

	undo := kv.NewOverlay(keyspace)
	undo.Undo(changes)
	before, _, _ := undo.Get([]byte("a"))
	now, _, _ := keyspace.Get([]byte("a"))
	fmt.Printf("before: %s, now: %s\n", before, now)
	// Output: before: old, now: new
}
