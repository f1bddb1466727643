package load

import (
	"context"
	"fmt"

	"github.com/phasm-go/phasm/examples/counter/counter"
)

// CounterID is the entity ID of counter i of the counter workload, after
// Config.IDPrefix.
func CounterID(i int) string { return fmt.Sprintf("counter-%06d", i) }

// Ledger quantities of the counter workload.
const (
	qValue = iota
	qIncrements
)

type counterLoad struct {
	r    *runner
	summ string
}

func (*counterLoad) quantities() []string { return []string{"value", "increments"} }

func (c *counterLoad) op(w *worker) {
	e := w.r.IntN(c.r.cfg.Entities)
	add := 1 + w.r.Uint64N(100)
	o := w.ask(func(ctx context.Context) error {
		return c.r.set.Counters.Ref(c.r.counterID(e)).Ask(ctx, counter.Input{Add: add})
	})
	c.r.led.add(e, qValue, int64(add), o)
	c.r.led.add(e, qIncrements, 1, o)
}

func (c *counterLoad) summary() string { return c.summ }

func (c *counterLoad) check(ctx context.Context, _ bool) []string {
	r := c.r
	n := r.cfg.Entities
	states, readable, v := readAll(ctx, n, c.r.counterID, func(ctx context.Context, id string) (counter.State, error) {
		return r.set.Counters.Ref(id).Query(ctx)
	})
	var total, incs uint64
	for i := range states {
		if !readable[i] {
			continue
		}
		s := &states[i]
		for _, q := range []struct {
			q    int
			v    uint64
			what string
		}{{qValue, s.Value, "value"}, {qIncrements, s.Increments, "increments"}} {
			if msg := r.led.within(c.r.counterID(i), i, q.q, int64(q.v), q.what); msg != "" {
				v = append(v, msg)
			}
		}
		total += s.Value
		incs += s.Increments
	}
	c.summ = fmt.Sprintf("%d counters read back; total %d from %d increments, each counter equal to its acknowledged increments", n, total, incs)
	return v
}
