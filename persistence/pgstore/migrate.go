package pgstore

import (
	"context"
	"fmt"
	"hash/crc32"
	"strings"
)

// migration is one schema version: statements run in order, in the
// migrating transaction. Never edit a released migration; append a new one.
type migration struct {
	version int
	stmts   []string
}

// migrations use {entities}, {journal}, {snapshots}, {keyspace} for the
// qualified table names.
var migrations = []migration{
	{version: 1, stmts: []string{
		`CREATE TABLE {entities} (
			kind text NOT NULL,
			id text NOT NULL,
			seq bigint NOT NULL,
			snapshot_seq bigint NOT NULL DEFAULT 0,
			shard bigint NOT NULL,
			pending boolean NOT NULL,
			PRIMARY KEY (kind, id))`,
		`CREATE INDEX phasm_entities_pending ON {entities} (shard) WHERE pending`,
		`CREATE TABLE {journal} (
			kind text NOT NULL,
			id text NOT NULL,
			seq bigint NOT NULL,
			data bytea NOT NULL,
			PRIMARY KEY (kind, id, seq))`,
		`CREATE TABLE {snapshots} (
			kind text NOT NULL,
			id text NOT NULL,
			seq bigint NOT NULL,
			data bytea NOT NULL,
			PRIMARY KEY (kind, id))`,
	}},
	{version: 2, stmts: []string{
		// The keyspaces of database-backed entities: written only by
		// appends, in the transaction of their journal rows.
		`CREATE TABLE {keyspace} (
			kind text NOT NULL,
			id text NOT NULL,
			key bytea NOT NULL,
			value bytea NOT NULL,
			PRIMARY KEY (kind, id, key))`,
	}},
	// Provenance: the node (Options.Writer) and shard epoch
	// (AppendRequest.Epoch) that wrote each journal record; the epoch of
	// each entity's last append, the fence.
	{version: 3, stmts: []string{
		`ALTER TABLE {entities} ADD COLUMN epoch bigint NOT NULL DEFAULT 0`,
		`ALTER TABLE {journal} ADD COLUMN writer text NOT NULL DEFAULT ''`,
		`ALTER TABLE {journal} ADD COLUMN epoch bigint NOT NULL DEFAULT 0`,
	}},
}

// SchemaVersion is the schema version this package migrates to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrate creates the schema and applies missing migrations, in one
// transaction holding an advisory lock keyed by the schema name.
func (s *Store) migrate(ctx context.Context) error {
	fail := func(err error) error { return fmt.Errorf("pgstore: migrating schema %s: %w", s.opts.Schema, err) }
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	lockKey := int64(crc32.ChecksumIEEE([]byte("phasm-migrate:" + s.opts.Schema)))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.t.schema); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.t.migrations+` (
		version integer PRIMARY KEY,
		applied_at timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP)`); err != nil {
		return fail(err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+s.t.migrations).Scan(&current); err != nil {
		return fail(err)
	}
	if current > SchemaVersion() {
		return fail(fmt.Errorf("the database is at schema version %d, newer than this binary's %d", current, SchemaVersion()))
	}
	r := strings.NewReplacer("{entities}", s.t.entities, "{journal}", s.t.journal, "{snapshots}", s.t.snapshots, "{keyspace}", s.t.keyspace)
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		for _, stmt := range m.stmts {
			if _, err := tx.Exec(ctx, r.Replace(stmt)); err != nil {
				return fail(fmt.Errorf("version %d: %w", m.version, err))
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.t.migrations+` (version) VALUES ($1)`, m.version); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}
