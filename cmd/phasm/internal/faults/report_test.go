package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
)

// timeline returns cumulative points every 250 ms from t0 with rate(i)
// acknowledged operations in the i-th interval.
func timeline(t0 time.Time, n int, rate func(i int) int64) []load.TimelinePoint {
	pts := []load.TimelinePoint{{UnixMS: t0.UnixMilli()}}
	var sum int64
	for i := range n {
		sum += rate(i)
		pts = append(pts, load.TimelinePoint{UnixMS: t0.Add(time.Duration(i+1) * bucket).UnixMilli(), OK: sum})
	}
	return pts
}

func TestUnavailabilityWindow(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	// 100 per bucket, nothing from bucket 40 to 51 (3 s), then 100 again.
	a := timeline(t0, 100, func(i int) int64 {
		if i >= 40 && i < 52 {
			return 0
		}
		return 100
	})
	// A second workload that only halves during the outage: the sum stays
	// above a tenth of the baseline for its first 4 buckets.
	b := timeline(t0, 100, func(i int) int64 {
		if i >= 40 && i < 44 {
			return 50
		}
		if i >= 44 && i < 52 {
			return 0
		}
		return 100
	})
	res := &Result{Start: t0, End: t0.Add(25 * time.Second), Timelines: map[string][]load.TimelinePoint{"a": a, "b": b},
		Faults: []Injected{
			{Fault: Fault{N: 1, Kind: KillNode}, Start: t0.Add(9 * time.Second), Healed: t0.Add(12 * time.Second)},
			{Fault: Fault{N: 2, Kind: Pause}, Start: t0.Add(20 * time.Second), Healed: t0.Add(21 * time.Second)},
		}}
	computeUnavailability(res)
	if got, want := res.Faults[0].Unavailable, 2*time.Second; got != want {
		t.Errorf("fault 1 unavailable %s, want %s", got, want)
	}
	if got := res.Faults[1].Unavailable; got != 0 {
		t.Errorf("fault 2 unavailable %s, want 0 (the rate never dropped)", got)
	}
	md := reportMarkdown(res, "make faults-short SEED=1")
	for _, want := range []string{"| 1 | 9.0 | kill |", "2.00 s", "make faults-short SEED=1", "No violation."} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	res.Violations = []string{"x | y"}
	res.Lost = 1
	if md := reportMarkdown(res, ""); !strings.Contains(md, "FAILED") || !strings.Contains(md, `x \| y`) {
		t.Errorf("a failed run's report:\n%s", md)
	}
	if svg := throughputSVG(res); !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "<polyline") || !strings.Contains(svg, "#1 kill") {
		t.Errorf("svg:\n%s", svg)
	}
}

func TestUnavailabilityWithoutBaseline(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	s := toSeries(timeline(t0, 20, func(int) int64 { return 0 }))
	if got := s.unavailable(t0.Add(2*time.Second), t0.Add(4*time.Second), 5*time.Second); got != -1 {
		t.Errorf("no rate before the fault: %s, want -1", got)
	}
}
