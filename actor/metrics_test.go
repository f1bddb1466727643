package actor_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/persistence/memstore"
)

func TestMetricsMoveWithTheWork(t *testing.T) {
	reg := prometheus.NewRegistry()
	th := startHost(t, memstore.New(), func(c *actor.Config) { c.Metrics = reg })
	c := th.ctrs.Ref("m")
	for i := 0; i < 3; i++ {
		require.NoError(t, c.Ask(ctx(t), counter.Input{Add: 10}))
	}
	require.ErrorIs(t, c.Ask(ctx(t), counter.Input{Add: 1000}), counter.ErrOverflow)
	w := th.wallets.Ref("w")
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "deposit", Amount: 10}))
	require.NoError(t, w.Ask(ctx(t), walletIn{Op: "payout", Amount: 5}))
	eventually(t, "the payout", func() bool { return query(t, w).Paid == 5 })

	value := func(name string, labels ...string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				for i := 0; i+1 < len(labels); i += 2 {
					found := false
					for _, lp := range m.GetLabel() {
						if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
							found = true
						}
					}
					if !found {
						continue next
					}
				}
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				case m.GetHistogram() != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return 0
	}
	assert.Equal(t, 3.0, value("phasm_inputs_total", "kind", "counter", "outcome", "accepted"))
	assert.Equal(t, 1.0, value("phasm_inputs_total", "kind", "counter", "outcome", "rejected"))
	assert.Equal(t, 3.0, value("phasm_inputs_total", "kind", "wallet", "outcome", "accepted"), "deposit, payout, completion")
	assert.Equal(t, 1.0, value("phasm_actions_started_total", "kind", "wallet"))
	assert.GreaterOrEqual(t, value("phasm_persist_seconds", "kind", "counter"), 4.0, "every journaled batch")
	assert.Equal(t, 4.0, value("phasm_transition_seconds", "kind", "counter"))
	assert.Equal(t, 2.0, value("phasm_active_entities"))
	assert.Equal(t, 1.0, value("phasm_activations_total", "kind", "counter"))
	assert.Zero(t, value("phasm_load_failures_total"))
	// The exposition is valid Prometheus text.
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Greater(t, n, 10)
}
