package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/storetest"
)

// testDSN returns the test server, skipping (or, with
// PHASM_REQUIRE_SERVICES=1, failing) when there is none.
func testDSN(t testing.TB) string {
	dsn := os.Getenv("PHASM_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("PHASM_REQUIRE_SERVICES") == "1" {
			t.Fatal("PHASM_TEST_POSTGRES_DSN is not set but PHASM_REQUIRE_SERVICES=1: run `make test`, which starts PostgreSQL")
		}
		t.Skip("PHASM_TEST_POSTGRES_DSN is not set: run `make test` to start PostgreSQL and run this suite")
	}
	return dsn
}

// freshSchema returns a schema name of its own for one test and drops it
// at the end.
func freshSchema(t testing.TB, dsn string) string {
	b := make([]byte, 6)
	rand.Read(b)
	schema := "phasm_t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	dsn := testDSN(t)
	if opts.Schema == "" {
		opts.Schema = freshSchema(t, dsn)
	}
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (s *Store) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	tag, err := conn.Exec(t.Context(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("%s: %d rows affected, want 1", sql, tag.RowsAffected())
	}
}

func TestConformance(t *testing.T) {
	testDSN(t) // skip or fail here, once, rather than in every subtest
	storetest.Run(t, storetest.Harness{
		Fences: true,
		Open: func(t *testing.T, cfg storetest.Config) persistence.Store {
			return openTest(t, Options{
				Limits:        persistence.Limits{MaxRecordBytes: cfg.MaxRecordBytes, MaxBatchRecords: cfg.MaxBatchRecords},
				MaxQueue:      cfg.MaxQueue,
				RetainJournal: cfg.RetainJournal,
			})
		},
		Reopen: func(t *testing.T, s persistence.Store) persistence.Store {
			ps := s.(*Store)
			if err := ps.Close(); err != nil {
				t.Fatal(err)
			}
			return openTest(t, ps.opts)
		},
		Corrupt: func(t *testing.T, s persistence.Store, e machine.Entity, seq uint64, snapshot bool) persistence.Store {
			ps := s.(*Store)
			flip := `SET data = set_byte(data, length(data)/2, get_byte(data, length(data)/2) # 64)`
			if snapshot {
				ps.exec(t, `UPDATE `+ps.t.snapshots+` `+flip+` WHERE kind = $1 AND id = $2`, e.Kind, e.ID)
			} else {
				ps.exec(t, `UPDATE `+ps.t.journal+` `+flip+` WHERE kind = $1 AND id = $2 AND seq = $3`, e.Kind, e.ID, int64(seq))
			}
			return s
		},
		StoredSeqs: func(t *testing.T, s persistence.Store, e machine.Entity) []uint64 {
			ps := s.(*Store)
			rows, err := ps.pool.Query(t.Context(), `SELECT seq FROM `+ps.t.journal+` WHERE kind = $1 AND id = $2 ORDER BY seq`, e.Kind, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				t.Fatal(err)
			}
			out := make([]uint64, len(seqs))
			for i, v := range seqs {
				out[i] = uint64(v)
			}
			return out
		},
	})
}

// TestConcurrentOpenMigratesOnce: nodes starting together on an empty
// database all succeed and the migrations are recorded once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), dsn, Options{Schema: schema, MaxConns: 2})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	s := openTest(t, Options{Schema: schema})
	rows, err := s.pool.Query(t.Context(), `SELECT version FROM `+s.t.migrations+` ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	var want []int32
	for _, m := range migrations {
		want = append(want, int32(m.version))
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("applied versions %v, want %v", versions, want)
	}
}

// TestMigrationAddsKeyspace: a database at schema version 1 (before
// database-backed state and epoch fencing) is upgraded in place by Open.
func TestMigrationAddsKeyspace(t *testing.T) {
	s := openTest(t, Options{})
	e := machine.Entity{Kind: "mig", ID: "1"}
	if err := s.Append(t.Context(), persistence.AppendRequest{Entity: e, Records: []machine.Record{{Seq: 1, Kind: machine.RecordInput, Payload: []byte("v1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(t.Context(), `DROP TABLE `+s.t.keyspace); err != nil {
		t.Fatal(err)
	}
	for _, ddl := range []string{
		`ALTER TABLE ` + s.t.entities + ` DROP COLUMN epoch`,
		`ALTER TABLE ` + s.t.journal + ` DROP COLUMN writer, DROP COLUMN epoch`,
		`DELETE FROM ` + s.t.migrations + ` WHERE version >= 2`,
	} {
		if _, err := s.pool.Exec(t.Context(), ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	s2, err := Open(t.Context(), testDSN(t), s.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if l, err := s2.Load(t.Context(), e); err != nil || l.LastSeq != 1 {
		t.Fatalf("journal after migration: %+v %v", l, err)
	}
	if _, found, err := s2.Get(t.Context(), e, []byte("k")); err != nil || found {
		t.Fatalf("keyspace after migration: %v %v", found, err)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	s := openTest(t, Options{})
	s.exec(t, `INSERT INTO `+s.t.migrations+` (version) VALUES ($1)`, SchemaVersion()+1)
	if _, err := Open(t.Context(), testDSN(t), s.opts); err == nil {
		t.Fatal("Open accepted a schema newer than it knows")
	}
}

// TestTwoStoresSameEntities: two stores (two nodes) on one schema racing
// on the same entities: each append either wins or conflicts, and every
// entity's journal is what its winners wrote.
func TestTwoStoresSameEntities(t *testing.T) {
	a := openTest(t, Options{})
	b := openTest(t, Options{Schema: a.opts.Schema})
	const entities, rounds = 16, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[machine.Entity]int{}
	for _, s := range []*Store{a, b} {
		for i := range entities {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := machine.Entity{Kind: "two", ID: string(rune('a' + i))}
				for range rounds {
					l, err := s.Load(t.Context(), e)
					if err != nil {
						t.Error(err)
						return
					}
					err = s.Append(t.Context(), persistence.AppendRequest{Entity: e, ExpectedSeq: l.LastSeq,
						Records: []machine.Record{{Seq: l.LastSeq + 1, Kind: machine.RecordInput, Payload: []byte("x")}}})
					switch {
					case err == nil:
						mu.Lock()
						wins[e]++
						mu.Unlock()
					case !errors.Is(err, persistence.ErrConflict):
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for e, n := range wins {
		l, err := a.Load(t.Context(), e)
		if err != nil {
			t.Fatal(err)
		}
		if l.LastSeq != uint64(n) || len(l.Records) != n {
			t.Fatalf("%s: %d wins but LastSeq %d with %d records", e, n, l.LastSeq, len(l.Records))
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{Schema: "Bad-Name", MaxConns: -1, CommitTimeout: -1, CommitRetries: -2, MaxQueue: -1}.Validate()
	if !errors.Is(err, persistence.ErrInvalidOptions) {
		t.Fatalf("got %v", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 5 {
		t.Fatalf("got %d problems, want 5: %v", n, err)
	}
}

// TestJournalProvenance: every journal row keeps the writer's node ID
// (Options.Writer) and the append's shard epoch, for the fault suite's
// audit of which owner wrote what.
func TestJournalProvenance(t *testing.T) {
	a := openTest(t, Options{Writer: "n1"})
	b := openTest(t, Options{Schema: a.opts.Schema, Writer: "n2"})
	e := machine.Entity{Kind: "prov", ID: "x"}
	rec := func(seq uint64) []machine.Record {
		return []machine.Record{{Seq: seq, Kind: machine.RecordInput, Payload: []byte("p")}}
	}
	if err := a.Append(t.Context(), persistence.AppendRequest{Entity: e, Records: rec(1), Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(t.Context(), persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: rec(2), Epoch: 4}); err != nil {
		t.Fatal(err)
	}
	// A losing compare-and-set writes no row.
	if err := a.Append(t.Context(), persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: rec(2), Epoch: 3}); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("stale append: %v, want a conflict", err)
	}
	conn, err := pgx.Connect(t.Context(), testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `SELECT seq, writer, epoch FROM `+a.t.journal+` WHERE kind = $1 AND id = $2 ORDER BY seq`, e.Kind, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq    int64
		writer string
		epoch  int64
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.writer, &r.epoch); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []row{{1, "n1", 3}, {2, "n2", 4}}
	if !slices.Equal(got, want) {
		t.Fatalf("journal provenance %+v, want %+v", got, want)
	}
}
