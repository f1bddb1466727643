package admin

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The host metrics a Series samples (see actor's metrics).
const (
	inputsMetric  = "phasm_inputs_total"
	persistMetric = "phasm_persist_seconds"
)

// DefaultSeriesPoints is how many points a Series keeps by default: ten
// minutes at one point per second.
const DefaultSeriesPoints = 600

// ErrNoSample: a Series was asked for a sample before it had a previous
// one to take a difference from (the first Sample only sets a baseline).
var ErrNoSample = errors.New("admin: no previous sample to difference")

// Point is one interval of a Series: rates over the interval and latency
// quantiles of the appends made in it.
type Point struct {
	// UnixMs is the end of the interval, in Unix milliseconds.
	UnixMs int64 `json:"t"`
	// Seconds is the interval's length.
	Seconds float64 `json:"seconds"`
	// AcceptedPerS and RejectedPerS are inputs (and completions) applied
	// per second, accepted and rejected by their machines.
	AcceptedPerS float64 `json:"accepted_per_s"`
	RejectedPerS float64 `json:"rejected_per_s"`
	// Appends is how many journal appends became durable in the interval;
	// PersistP50Ms and PersistP99Ms their latency quantiles in
	// milliseconds, estimated from the phasm_persist_seconds buckets (0
	// when there were no appends).
	Appends      uint64  `json:"appends"`
	PersistP50Ms float64 `json:"persist_p50_ms"`
	PersistP99Ms float64 `json:"persist_p99_ms"`
}

// SeriesBody is the body of GET /v1/series.
type SeriesBody struct {
	NodeID string `json:"node_id"` // the node whose host the points describe
	// Points, oldest first.
	Points []Point `json:"points"`
}

// Series keeps the recent throughput and latency of a node's host, one
// Point per sampling interval in a ring of bounded size, for the
// dashboard. It reads the host's Prometheus metrics (phasm_inputs_total,
// phasm_persist_seconds) from a Gatherer, so it needs no hook in the host.
// It is safe for concurrent use.
type Series struct {
	g   prometheus.Gatherer
	max int

	mu     sync.Mutex
	points []Point // ring: oldest at next when full
	next   int
	prev   *snapshot
}

// snapshot is what one gather read: cumulative values.
type snapshot struct {
	at                 time.Time
	accepted, rejected float64
	count              uint64
	buckets            []bucket // cumulative, ascending bounds
}

type bucket struct {
	upper float64
	count uint64
}

// NewSeries returns a Series over g keeping at most points points
// (DefaultSeriesPoints when points <= 0).
func NewSeries(g prometheus.Gatherer, points int) *Series {
	if points <= 0 {
		points = DefaultSeriesPoints
	}
	return &Series{g: g, max: points}
}

// Sample gathers the metrics at now and appends the Point for the interval
// since the previous Sample. The first call only records the baseline and
// returns ErrNoSample; a gather error is returned and nothing changes.
func (s *Series) Sample(now time.Time) error {
	mfs, err := s.g.Gather()
	if err != nil {
		return err
	}
	cur := read(mfs, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.prev
	s.prev = cur
	if prev == nil {
		return ErrNoSample
	}
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return nil
	}
	p := Point{UnixMs: cur.at.UnixMilli(), Seconds: secs,
		AcceptedPerS: math.Max(0, cur.accepted-prev.accepted) / secs,
		RejectedPerS: math.Max(0, cur.rejected-prev.rejected) / secs}
	if cur.count > prev.count {
		p.Appends = cur.count - prev.count
		delta := diffBuckets(cur.buckets, prev.buckets)
		p.PersistP50Ms = quantile(delta, p.Appends, 0.50) * 1000
		p.PersistP99Ms = quantile(delta, p.Appends, 0.99) * 1000
	}
	if len(s.points) < s.max {
		s.points = append(s.points, p)
	} else {
		s.points[s.next] = p
		s.next = (s.next + 1) % s.max
	}
	return nil
}

// Points returns the kept points, oldest first.
func (s *Series) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Point, 0, len(s.points))
	out = append(out, s.points[s.next:]...)
	return append(out, s.points[:s.next]...)
}

// Run samples every interval until ctx ends. Gather errors are passed to
// onErr (when not nil) and sampling goes on.
func (s *Series) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	_ = s.Sample(time.Now()) // the baseline
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := s.Sample(now); err != nil && !errors.Is(err, ErrNoSample) && onErr != nil {
				onErr(err)
			}
		}
	}
}

// read sums the sampled metrics over their kinds.
func read(mfs []*dto.MetricFamily, now time.Time) *snapshot {
	sn := &snapshot{at: now}
	merged := map[float64]uint64{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case inputsMetric:
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() != "outcome" {
						continue
					}
					switch l.GetValue() {
					case "accepted":
						sn.accepted += m.GetCounter().GetValue()
					case "rejected":
						sn.rejected += m.GetCounter().GetValue()
					}
				}
			}
		case persistMetric:
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				sn.count += h.GetSampleCount()
				for _, b := range h.GetBucket() {
					merged[b.GetUpperBound()] += b.GetCumulativeCount()
				}
			}
		}
	}
	for upper, n := range merged {
		sn.buckets = append(sn.buckets, bucket{upper: upper, count: n})
	}
	sort.Slice(sn.buckets, func(i, j int) bool { return sn.buckets[i].upper < sn.buckets[j].upper })
	return sn
}

// diffBuckets returns cur - prev per bound (cumulative counts). A bound
// missing from prev (a kind that appeared since) counts from zero.
func diffBuckets(cur, prev []bucket) []bucket {
	before := map[float64]uint64{}
	for _, b := range prev {
		before[b.upper] = b.count
	}
	out := make([]bucket, len(cur))
	for i, b := range cur {
		n := b.count
		if p := before[b.upper]; p <= n {
			n -= p
		} else {
			n = 0
		}
		out[i] = bucket{upper: b.upper, count: n}
	}
	return out
}

// quantile estimates the q-quantile of total observations from cumulative
// buckets by linear interpolation inside the bucket that holds it, as
// Prometheus's histogram_quantile does. Observations above the highest
// bound are reported at that bound.
func quantile(bs []bucket, total uint64, q float64) float64 {
	if total == 0 || len(bs) == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for _, b := range bs {
		if float64(b.count) >= rank {
			if b.count == below {
				return b.upper
			}
			return lower + (b.upper-lower)*(rank-float64(below))/float64(b.count-below)
		}
		lower, below = b.upper, b.count
	}
	return lower
}
