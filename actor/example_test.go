package actor_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence/memstore"
)

// A node hosting counters: register the kind, start, and talk to an entity
// through its typed reference.
func Example() {
	kind, _ := counter.NewKind(100)
	host, err := actor.New(actor.Config{Store: memstore.New()})
	if err != nil {
		fmt.Println(err)
		return
	}
	counters, _ := actor.Register(host, kind, actor.KindOptions[counter.State, counter.Input, machine.None, machine.None, machine.None]{})
	ctx := context.Background()
	if err := host.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer host.Stop(ctx)

	visits := counters.Ref("visits")
	fmt.Println("add 60:", visits.Ask(ctx, counter.Input{Add: 60}))
	err = visits.Ask(ctx, counter.Input{Add: 50})
	fmt.Println("add 50:", err, "| overflow:", errors.Is(err, counter.ErrOverflow))
	// The same request ID twice: the second gets the first reply, no second transition.
	fmt.Println("add 5:", visits.Ask(ctx, counter.Input{Add: 5}, actor.WithRequestID("order-17")))
	fmt.Println("add 5 again:", visits.Ask(ctx, counter.Input{Add: 5}, actor.WithRequestID("order-17")))
	s, _ := visits.Query(ctx)
	fmt.Println("value:", s.Value)

	// Output:
	// add 60: <nil>
	// add 50: counter: increment would exceed the limit | overflow: true
	// add 5: <nil>
	// add 5 again: <nil>
	// value: 65
}
