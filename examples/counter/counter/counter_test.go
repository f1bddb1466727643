package counter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/sim"
)

func TestCounterRejectsOverflowAndZero(t *testing.T) {
	k, err := counter.NewKind(10)
	require.NoError(t, err)
	d, err := k.NewDriver("c")
	require.NoError(t, err)
	var fx machine.Effects[machine.None, machine.None]
	add := func(n uint64) machine.Outcome {
		out, err := d.Step(counter.In{Value: counter.Input{Add: n}}, &fx)
		require.NoError(t, err)
		return out
	}
	assert.Equal(t, machine.Accepted, add(7).Status)
	assert.ErrorIs(t, add(4).Err, counter.ErrOverflow)
	assert.ErrorIs(t, add(0).Err, counter.ErrZero)
	assert.Equal(t, machine.Accepted, add(3).Status)
	assert.Equal(t, uint64(10), d.State().Value)
	assert.ErrorIs(t, add(1).Err, counter.ErrOverflow)
}

func TestCounterSimulation(t *testing.T) {
	k, err := counter.NewKind(1 << 40)
	require.NoError(t, err)
	s, err := sim.New(k, sim.Model[counter.State, counter.Input, machine.None, machine.None, machine.None](counter.Model{}), sim.Config{
		Seeds: []uint64{1, 2, 3, 4}, Steps: 5000, Entities: 3, Faults: sim.DefaultFaults,
	})
	require.NoError(t, err)
	start := time.Now()
	rep, err := s.RunAll()
	require.NoError(t, err)
	t.Log(rep.Summary(time.Since(start)))
	assert.Positive(t, rep.Rejected)
	assert.Positive(t, rep.Crashes)
}
