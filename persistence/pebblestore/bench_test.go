package pebblestore

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence/storetest"
)

// The store's durable appends next to two raw ceilings measured in the
// same run on the same disk:
//   - Naive: one synced pebble Set per append (Pebble still shares
//     fsyncs between concurrent writers internally);
//   - RawGroup: a goroutine that drains a channel and writes one synced
//     batch per group, without checks: the best a group commit can do.
//
//	go test -run '^$' -bench . -benchtime 3s ./persistence/pebblestore/

var benchEntities = []int{1, 64, 1024}

func quietDB(b *testing.B) *pebble.DB {
	db, err := pebble.Open(b.TempDir(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func benchValue(w int, seq uint64) []byte {
	r := machine.Record{Seq: seq, Kind: machine.RecordInput, Time: int64(seq), RequestID: "r", Payload: make([]byte, storetest.BenchPayloadBytes)}
	return r.AppendBinary(nil)
}

func benchKey(w int, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{'j'}, uint32(w)), seq)
}

func BenchmarkPebbleStore(b *testing.B) {
	for _, n := range benchEntities {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Pebble: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchAppends(b, s, n)
		})
	}
}

func BenchmarkPebbleNaive(b *testing.B) {
	for _, n := range benchEntities {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			db := quietDB(b)
			seqs := make([]uint64, n)
			storetest.BenchWorkers(b, n, func(w int) error {
				seqs[w]++
				return db.Set(benchKey(w, seqs[w]), benchValue(w, seqs[w]), pebble.Sync)
			})
		})
	}
}

func BenchmarkPebbleRawGroup(b *testing.B) {
	for _, n := range benchEntities {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			db := quietDB(b)
			type write struct {
				key, value []byte
				done       chan error
			}
			queue := make(chan write, 4096)
			go func() {
				for w := range queue {
					batch := db.NewBatch()
					group := []write{w}
					batch.Set(w.key, w.value, nil)
				fill:
					for len(group) < 1024 {
						select {
						case w, ok := <-queue:
							if !ok {
								break fill
							}
							group = append(group, w)
							batch.Set(w.key, w.value, nil)
						default:
							break fill
						}
					}
					err := batch.Commit(pebble.Sync)
					batch.Close()
					for _, w := range group {
						w.done <- err
					}
				}
			}()
			defer close(queue)
			seqs := make([]uint64, n)
			dones := make([]chan error, n)
			for i := range dones {
				dones[i] = make(chan error, 1)
			}
			storetest.BenchWorkers(b, n, func(w int) error {
				seqs[w]++
				queue <- write{key: benchKey(w, seqs[w]), value: benchValue(w, seqs[w]), done: dones[w]}
				return <-dones[w]
			})
		})
	}
}
