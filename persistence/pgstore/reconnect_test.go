package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// withAppName returns dsn with its connections named app in
// pg_stat_activity.
func withAppName(dsn, app string) string {
	if !strings.Contains(dsn, "://") {
		return dsn + " application_name=" + app
	}
	if strings.Contains(dsn, "?") {
		return dsn + "&application_name=" + app
	}
	return dsn + "?application_name=" + app
}

// TestLostConnectionsCostOneCall: a crash or restart of the server breaks
// every pooled connection at once (terminating the store's backends does
// the same here). The store must find out once: one call fails on a
// broken connection, the pool is reset, and the store works again shortly
// after (calls in between fail fast with ErrUnreachable), instead of
// every pooled connection failing a call (a whole group of appends, a
// load) of its own.
func TestLostConnectionsCostOneCall(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	ctx := t.Context()
	s, err := Open(ctx, withAppName(dsn, schema), Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := machine.Entity{Kind: "lost", ID: "a"}
	rec := func(seq uint64) []machine.Record {
		return []machine.Record{{Seq: seq, Kind: machine.RecordInput, Payload: []byte("x")}}
	}
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, Records: rec(1)}); err != nil {
		t.Fatal(err)
	}

	// Fill the pool with idle connections, then end them all on the server.
	conns := make([]*pgxpool.Conn, s.opts.MaxConns)
	for i := range conns {
		if conns[i], err = s.pool.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Release()
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, schema).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed < len(conns) {
		t.Fatalf("terminated %d backends, want %d", killed, len(conns))
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		var left int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, schema).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still there 5 s after being terminated", left)
		}
		time.Sleep(time.Millisecond)
	}

	lost := 0
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := s.Load(ctx, e)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnreachable) {
			lost++
			t.Logf("failed on a lost connection: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not work again within 10 s: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if lost > 1 {
		t.Fatalf("%d calls failed on lost connections, want at most 1: the first should reset the pool", lost)
	}
	if err := s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: 1, Records: rec(2)}); err != nil {
		t.Fatalf("append after reconnecting: %v", err)
	}
	l, err := s.Load(ctx, e)
	if err != nil || l.LastSeq != 2 {
		t.Fatalf("load after reconnecting: %+v, %v", l, err)
	}
}

func TestConnectionLost(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{&pgconn.PgError{Code: "57P01"}, true}, // admin shutdown
		{&pgconn.PgError{Code: "57P03"}, true}, // starting up
		{&pgconn.PgError{Code: "08006"}, true}, // connection failure
		{&pgconn.PgError{Code: "40001"}, false},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "28P01"}, false}, // bad password: reconnecting cannot help
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{errors.New("can't scan into dest"), false},
	} {
		if got := connectionLost(c.err); got != c.want {
			t.Errorf("connectionLost(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
