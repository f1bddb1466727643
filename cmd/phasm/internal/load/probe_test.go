package load

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/shard"
)

func TestProbeEntityLandsInItsShard(t *testing.T) {
	for s := 0; s < 16; s++ {
		id := probeEntity(s, 16)
		require.Equal(t, shard.ID(s), shard.Of(machine.Entity{Kind: "counter", ID: id}, 16), id)
	}
}

func TestProberReportsAnOutageAsOneWindow(t *testing.T) {
	var down atomic.Bool
	var answeredSinceBack atomic.Int64
	p := &prober{every: 5 * time.Millisecond, gap: 100 * time.Millisecond,
		query: func(ctx context.Context, id string) error {
			if down.Load() {
				<-ctx.Done() // an unreachable owner: the query waits out its deadline
				return ctx.Err()
			}
			answeredSinceBack.Add(1)
			return nil
		}}
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() { p.run(0, 1, start, stop); close(done) }()
	time.Sleep(50 * time.Millisecond)
	down.Store(true)
	outage := time.Now()
	time.Sleep(300 * time.Millisecond)
	answeredSinceBack.Store(0)
	back := time.Now() // every answer from here on is after it
	down.Store(false)
	// Stop only once probes are answered again (not after a fixed wait: a
	// query begun during the outage may still be waiting out its deadline).
	for answeredSinceBack.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	<-done
	rep := p.report()
	require.Len(t, rep.Windows, 1, "%+v", rep.Windows)
	w := rep.Windows[0]
	require.False(t, w.Open)
	// An answer already on its way when the outage began may land a moment after it.
	require.LessOrEqual(t, w.FromUnixMS, outage.Add(20*time.Millisecond).UnixMilli(), "the window starts at the last answer before the outage")
	require.GreaterOrEqual(t, w.ToUnixMS, back.UnixMilli(), "and ends at the first answer after it")
	require.Equal(t, w.DurationMS, rep.MaxWindowMS)
	require.Less(t, rep.Answered, rep.Probes)
}

func TestProberReportsAnOutageStillOpenAtTheEnd(t *testing.T) {
	p := &prober{every: 5 * time.Millisecond, gap: 50 * time.Millisecond,
		query: func(context.Context, string) error { return errors.New("no owner") }}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { p.run(3, 8, time.Now(), stop); close(done) }()
	time.Sleep(150 * time.Millisecond)
	close(stop)
	<-done
	rep := p.report()
	require.Len(t, rep.Windows, 1)
	require.True(t, rep.Windows[0].Open)
	require.Equal(t, 3, rep.Windows[0].Shard)
	require.Zero(t, rep.Answered)
}
