package actor_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasm-go/phasm/persistence"
)

// timedStore measures the store as the runtime sees it: the time from
// AppendAsync to its callback, and the appends in flight.
type timedStore struct {
	persistence.Store
	lat      *latencies
	inflight atomic.Int64
	maxIn    atomic.Int64
}

func (s *timedStore) AppendAsync(req persistence.AppendRequest, done func(error)) {
	start := time.Now()
	n := s.inflight.Add(1)
	if n > s.maxIn.Load() {
		s.maxIn.Store(n)
	}
	s.Store.AppendAsync(req, func(err error) {
		s.inflight.Add(-1)
		s.lat.mu.Lock()
		_ = s.lat.h.RecordValue(time.Since(start).Microseconds())
		s.lat.mu.Unlock()
		done(err)
	})
}

func (s *timedStore) report(b *testing.B) {
	b.ReportMetric(float64(s.lat.h.ValueAtQuantile(50))/1000, "store-p50-ms")
	b.ReportMetric(float64(s.lat.h.ValueAtQuantile(99))/1000, "store-p99-ms")
	b.ReportMetric(float64(s.maxIn.Load()), "store-max-inflight")
}
