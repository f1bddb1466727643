package load

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/shard"
)

// Availability probing (--probe-every): besides the workload, one prober
// per shard reads one counter entity of that shard with a query every
// interval. A shard is unavailable between its last answered probe and
// the next one when that gap exceeds the gap threshold; the report lists
// those windows with wall-clock times, so a failover can be measured from
// the moment a node was killed to the moment its last shard answered.

// MaxProbeWindows bounds the unavailability windows a report lists.
const MaxProbeWindows = 1000

// Probe is the availability part of a report.
type Probe struct {
	EveryMS     float64 `json:"every_ms"`      // probe interval
	GapMS       float64 `json:"gap_ms"`        // a longer gap between answers is a window
	Probes      int64   `json:"probes"`        // queries sent
	Answered    int64   `json:"answered"`      // queries answered
	MaxWindowMS float64 `json:"max_window_ms"` // the longest window (0: none)
	// Windows of unavailability, by start time (at most MaxProbeWindows).
	Windows []ProbeWindow `json:"windows"`
}

// ProbeWindow is one shard's gap between answered probes.
type ProbeWindow struct {
	Shard int `json:"shard"`
	// FromUnixMS is when the last probe before the gap was answered (or the
	// run started); ToUnixMS when the first one after it was (or the run
	// ended: Open is then true).
	FromUnixMS int64   `json:"from_unix_ms"`
	ToUnixMS   int64   `json:"to_unix_ms"`
	DurationMS float64 `json:"duration_ms"`
	Open       bool    `json:"open,omitempty"`
}

// probeGap is the gap that counts as a window: several missed probes, and
// never less than 250 ms (a slow query is not an outage).
func probeGap(every time.Duration) time.Duration { return max(10*every, 250*time.Millisecond) }

// probeEntity returns a counter entity ID in shard s of n, stable across
// runs: the first "probe-s-k" that hashes there.
func probeEntity(s, n int) string {
	for k := 0; ; k++ {
		id := fmt.Sprintf("probe-%d-%d", s, k)
		if int(shard.Of(machine.Entity{Kind: "counter", ID: id}, n)) == s {
			return id
		}
	}
}

// prober runs the probes of one run.
type prober struct {
	every time.Duration
	gap   time.Duration
	query func(ctx context.Context, id string) error

	mu       sync.Mutex
	probes   int64
	answered int64
	windows  []ProbeWindow
}

// run probes shard s until stop closes; start is the run's start.
func (p *prober) run(s, shards int, start time.Time, stop <-chan struct{}) {
	id := probeEntity(s, shards)
	last := start
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			if now := time.Now(); now.Sub(last) > p.gap {
				p.window(s, last, now, true)
			}
			return
		case <-t.C:
		}
		// A query waits (retrying) at most one gap: an unavailable shard
		// keeps being asked at least that often.
		ctx, cancel := context.WithTimeout(context.Background(), p.gap)
		err := p.query(ctx, id)
		cancel()
		now := time.Now()
		p.mu.Lock()
		p.probes++
		if err == nil {
			p.answered++
		}
		p.mu.Unlock()
		if err != nil {
			continue
		}
		if now.Sub(last) > p.gap {
			p.window(s, last, now, false)
		}
		last = now
	}
}

func (p *prober) window(s int, from, to time.Time, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.windows) < MaxProbeWindows {
		p.windows = append(p.windows, ProbeWindow{Shard: s, FromUnixMS: from.UnixMilli(), ToUnixMS: to.UnixMilli(),
			DurationMS: float64(to.Sub(from).Microseconds()) / 1000, Open: open})
	}
}

// report returns the probes' outcome.
func (p *prober) report() *Probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := append([]ProbeWindow{}, p.windows...)
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].FromUnixMS != ws[j].FromUnixMS {
			return ws[i].FromUnixMS < ws[j].FromUnixMS
		}
		return ws[i].Shard < ws[j].Shard
	})
	rep := &Probe{EveryMS: float64(p.every.Microseconds()) / 1000, GapMS: float64(p.gap.Microseconds()) / 1000,
		Probes: p.probes, Answered: p.answered, Windows: ws}
	for _, w := range ws {
		rep.MaxWindowMS = max(rep.MaxWindowMS, w.DurationMS)
	}
	return rep
}

// startProbes starts one prober per shard; the returned function stops
// them and returns the report.
func (r *runner) startProbes(shards int, start time.Time) func() *Probe {
	p := &prober{every: r.cfg.ProbeEvery, gap: probeGap(r.cfg.ProbeEvery),
		query: func(ctx context.Context, id string) error {
			_, err := r.set.Counters.Ref(id).Query(ctx)
			return err
		}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < shards; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(s, shards, start, stop)
		}()
	}
	return func() *Probe {
		close(stop)
		wg.Wait()
		return p.report()
	}
}

func printProbe(w io.Writer, p *Probe) {
	fmt.Fprintf(w, "probes      %d answered of %d (every %.0f ms); %d unavailability windows over %.0f ms, longest %.0f ms\n",
		p.Answered, p.Probes, p.EveryMS, len(p.Windows), p.GapMS, p.MaxWindowMS)
	for _, win := range p.Windows {
		open := ""
		if win.Open {
			open = " (still open at the end)"
		}
		fmt.Fprintf(w, "  shard %3d unavailable %.0f ms from %s%s\n", win.Shard, win.DurationMS,
			time.UnixMilli(win.FromUnixMS).UTC().Format("15:04:05.000"), open)
	}
}
