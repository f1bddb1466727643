package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// BenchPayloadBytes is the payload of each benchmark record: small
// inputs, as the research figures assume (100-200 bytes encoded).
const BenchPayloadBytes = 100

// BenchAppends measures durable appends through s: `entities` goroutines,
// each owning one entity, append one record at a time with Append (the
// next only after the previous is acknowledged), b.N appends in all. It
// reports appends/s and the p50-ms and p99-ms latency of one append.
func BenchAppends(b *testing.B, s persistence.Store, entities int) {
	payload := make([]byte, BenchPayloadBytes)
	prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	seqs := make([]uint64, entities)
	names := make([]machine.Entity, entities)
	for w := range names {
		names[w] = machine.Entity{Kind: prefix, ID: fmt.Sprint(w)}
	}
	BenchWorkers(b, entities, func(w int) error {
		seq := seqs[w] + 1
		err := s.Append(context.Background(), persistence.AppendRequest{
			Entity:      names[w],
			ExpectedSeq: seqs[w],
			Records:     []machine.Record{{Seq: seq, Kind: machine.RecordInput, Time: int64(seq), RequestID: "r", Payload: payload}},
		})
		seqs[w] = seq
		return err
	})
}

// BenchWorkers runs op b.N times in all over `workers` goroutines (each
// calls op with its index, one call at a time) and reports ops as
// appends/s with p50-ms and p99-ms latency. Baselines use it directly.
func BenchWorkers(b *testing.B, workers int, op func(worker int) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, workers)
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(w); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
