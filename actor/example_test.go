package actor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// An application process that is not a node: given the remote address of
// any node, the client learns the cluster's view from it (and then from
// the members it lists), and its typed references send each request
// straight to the owner of the entity's shard, retrying across moves and
// failovers within the context's deadline. (Not run here: it needs a
// cluster; cmd/phasm's load driver and actor's remote tests run one.)
func ExampleNewClient() {
	client, err := actor.NewClient(actor.ClientConfig{ClusterConfig: actor.ClusterConfig{
		Listen: "127.0.0.1:0",                  // where replies come back (port 0: any)
		Seeds:  []string{"node1.example:7400"}, // any node's Listen/Advertise address
		// TLS: the cluster's mutual TLS config, when it has one.
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	kind, _ := counter.NewKind(100)
	counters, err := actor.RegisterClient(client, kind)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer client.Stop(ctx)
	if err := counters.Ref("visits").Ask(ctx, counter.Input{Add: 1}); err != nil {
		fmt.Println(err)
		return
	}
	s, err := counters.Ref("visits").Query(ctx)
	fmt.Println(s.Value, err)
}
