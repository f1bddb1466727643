package admin

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hostMetrics registers the two metrics a Series reads, shaped as the
// actor host registers them.
func hostMetrics(t *testing.T) (*prometheus.Registry, *prometheus.CounterVec, *prometheus.HistogramVec) {
	t.Helper()
	reg := prometheus.NewRegistry()
	inputs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: inputsMetric, Help: "h"}, []string{"kind", "outcome"})
	persist := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: persistMetric, Help: "h",
		Buckets: []float64{.001, .002, .004, .008}}, []string{"kind"})
	reg.MustRegister(inputs, persist)
	return reg, inputs, persist
}

func TestSeriesRatesAndQuantiles(t *testing.T) {
	reg, inputs, persist := hostMetrics(t)
	s := NewSeries(reg, 10)
	t0 := time.Unix(1000, 0)
	if err := s.Sample(t0); !errors.Is(err, ErrNoSample) {
		t.Fatalf("first Sample: %v, want ErrNoSample", err)
	}
	if n := len(s.Points()); n != 0 {
		t.Fatalf("%d points after the baseline, want 0", n)
	}
	// Two seconds: 10 accepted and 4 rejected over two kinds, 100 appends:
	// 50 within 1 ms, 49 within (1, 2] ms, 1 within (4, 8] ms.
	inputs.WithLabelValues("account", "accepted").Add(6)
	inputs.WithLabelValues("counter", "accepted").Add(4)
	inputs.WithLabelValues("counter", "rejected").Add(4)
	inputs.WithLabelValues("counter", "duplicate").Add(50) // not throughput
	for i := 0; i < 50; i++ {
		persist.WithLabelValues("account").Observe(.0005)
	}
	for i := 0; i < 49; i++ {
		persist.WithLabelValues("counter").Observe(.0015)
	}
	persist.WithLabelValues("counter").Observe(.005)
	if err := s.Sample(t0.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// A quiet second: no inputs, no appends.
	if err := s.Sample(t0.Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	ps := s.Points()
	if len(ps) != 2 {
		t.Fatalf("%d points, want 2: %+v", len(ps), ps)
	}
	p := ps[0]
	if p.UnixMs != t0.Add(2*time.Second).UnixMilli() || p.Seconds != 2 {
		t.Errorf("interval %d ms, %g s: want it to end at t0+2s and last 2 s", p.UnixMs, p.Seconds)
	}
	if p.AcceptedPerS != 5 || p.RejectedPerS != 2 {
		t.Errorf("accepted %g/s, rejected %g/s: want 5 and 2", p.AcceptedPerS, p.RejectedPerS)
	}
	if p.Appends != 100 {
		t.Errorf("appends %d, want 100", p.Appends)
	}
	// Rank 50 is the last observation of the first bucket: 1 ms. Rank 99
	// is the last of the second bucket: 2 ms.
	if math.Abs(p.PersistP50Ms-1) > 1e-9 || math.Abs(p.PersistP99Ms-2) > 1e-9 {
		t.Errorf("p50 %g ms, p99 %g ms: want 1 and 2", p.PersistP50Ms, p.PersistP99Ms)
	}
	q := ps[1]
	if q.AcceptedPerS != 0 || q.RejectedPerS != 0 || q.Appends != 0 || q.PersistP99Ms != 0 {
		t.Errorf("quiet second: %+v, want zeros", q)
	}
}

func TestSeriesKeepsTheNewestPoints(t *testing.T) {
	reg, inputs, _ := hostMetrics(t)
	s := NewSeries(reg, 3)
	t0 := time.Unix(1000, 0)
	_ = s.Sample(t0)
	for i := 1; i <= 5; i++ {
		inputs.WithLabelValues("counter", "accepted").Add(float64(i))
		if err := s.Sample(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	ps := s.Points()
	if len(ps) != 3 {
		t.Fatalf("%d points, want the bound 3", len(ps))
	}
	for i, p := range ps {
		want := float64(i + 3) // the 3rd, 4th and 5th intervals, oldest first
		if p.AcceptedPerS != want || p.UnixMs != t0.Add(time.Duration(i+3)*time.Second).UnixMilli() {
			t.Errorf("point %d: %+v, want %g/s at t0+%ds", i, p, want, i+3)
		}
	}
}

func TestQuantileAboveTheLastBound(t *testing.T) {
	// 9 of the 10 observations are above the last bound (the implicit
	// +Inf bucket).
	bs := []bucket{{upper: .001, count: 0}, {upper: .002, count: 1}}
	if got := quantile(bs, 10, .99); got != .002 {
		t.Errorf("quantile beyond the finite buckets: %g, want the highest bound .002", got)
	}
	if got := quantile(nil, 0, .5); got != 0 {
		t.Errorf("quantile of nothing: %g, want 0", got)
	}
}
