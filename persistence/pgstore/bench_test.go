package pgstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/storetest"
)

// The store's durable appends next to the naive figure measured in the
// same run on the same server: one single-statement upsert with a version
// check per append, each its own transaction (autocommit), over a pool
// as large as the number of writers (at most 64).
//
//	make test's script or any server:  PHASM_TEST_POSTGRES_DSN=... \
//	go test -run '^$' -bench . -benchtime 3s ./persistence/pgstore/

var benchEntities = []int{1, 64, 1024}

func BenchmarkPostgresStore(b *testing.B) {
	for _, n := range benchEntities {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			s := openTest(b, Options{})
			storetest.BenchAppends(b, s, n)
		})
	}
}

func BenchmarkPostgresNaive(b *testing.B) {
	for _, n := range benchEntities {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			dsn := testDSN(b)
			schema := freshSchema(b, dsn)
			cfg, err := pgxpool.ParseConfig(dsn)
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = int32(min(n, 64))
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			table := pgx.Identifier{schema, "naive"}.Sanitize()
			for _, sql := range []string{
				`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize(),
				`CREATE TABLE ` + table + ` (kind text NOT NULL, id text NOT NULL, seq bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (kind, id))`,
			} {
				if _, err := pool.Exec(context.Background(), sql); err != nil {
					b.Fatal(err)
				}
			}
			upsert := `INSERT INTO ` + table + ` AS t (kind, id, seq, data) VALUES ($1, $2, $3, $4)
				ON CONFLICT (kind, id) DO UPDATE SET seq = EXCLUDED.seq, data = EXCLUDED.data WHERE t.seq = $3 - 1`
			seqs := make([]uint64, n)
			storetest.BenchWorkers(b, n, func(w int) error {
				seqs[w]++
				r := machine.Record{Seq: seqs[w], Kind: machine.RecordInput, Time: int64(seqs[w]), RequestID: "r", Payload: make([]byte, storetest.BenchPayloadBytes)}
				tag, err := pool.Exec(context.Background(), upsert, "naive", fmt.Sprint(w), int64(seqs[w]), r.AppendBinary(nil))
				if err == nil && tag.RowsAffected() != 1 {
					err = fmt.Errorf("naive upsert of %d/%d affected %d rows", w, seqs[w], tag.RowsAffected())
				}
				return err
			})
		})
	}
}

// BenchmarkPostgresLoad loads entities of 8 records each from 16
// goroutines: what reactivating entities after a restart costs.
func BenchmarkPostgresLoad(b *testing.B) {
	s := openTest(b, Options{})
	const entities, records = 256, 8
	ctx := context.Background()
	for i := range entities {
		e := machine.Entity{Kind: "load", ID: fmt.Sprint(i)}
		recs := make([]machine.Record, records)
		for j := range recs {
			recs[j] = machine.Record{Seq: uint64(j + 1), Kind: machine.RecordInput, Payload: make([]byte, storetest.BenchPayloadBytes)}
		}
		if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: recs}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(16)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := machine.Entity{Kind: "load", ID: fmt.Sprint(next.Add(1) % entities)}
			l, err := s.Load(ctx, e)
			if err != nil {
				b.Error(err)
				return
			}
			if len(l.Records) != records {
				b.Errorf("%s: %d records, want %d", e, len(l.Records), records)
				return
			}
		}
	})
}
