package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/internal/group"
)

// Defaults for zero Options fields.
const (
	DefaultSchema          = "phasm"
	DefaultMaxQueue        = group.DefaultMaxQueue
	DefaultMaxGroupAppends = group.DefaultMaxGroupAppends
	DefaultMaxConns        = 8
	DefaultCommitTimeout   = 30 * time.Second
	DefaultCommitRetries   = 3
)

// Reconnection after a lost database (see Store.observe): the probe's
// first wait, its bound, and the bound of one probe. The bound of the wait
// is how long service may lag behind the server accepting connections
// again (plus one connection set-up).
const (
	reconnectFirstWait    = 10 * time.Millisecond
	reconnectMaxWait      = 100 * time.Millisecond
	reconnectProbeTimeout = 5 * time.Second
)

// ErrUnreachable is the error (wrapped) of every call made while the store
// has lost its database and is reconnecting: nothing was read or written.
// The store is usable again as soon as a probe connects.
var ErrUnreachable = errors.New("pgstore: database unreachable, reconnecting")

// Options configure a Store. Zero fields take their defaults; Validate
// lists every problem.
type Options struct {
	// Limits bound records, snapshots and requests.
	persistence.Limits
	// Schema is the PostgreSQL schema holding the tables (DefaultSchema);
	// lower-case letters, digits and underscores, starting with a letter or
	// underscore.
	Schema string
	// MaxQueue bounds in-flight appends, queued or being committed
	// (DefaultMaxQueue). AppendAsync beyond it gets ErrOverloaded.
	MaxQueue int
	// MaxGroupAppends bounds the appends of one transaction
	// (DefaultMaxGroupAppends).
	MaxGroupAppends int
	// PipelineDepth bounds the group transactions in flight at once
	// (default 4); each holds a connection.
	PipelineDepth int
	// MaxConns bounds the connection pool (DefaultMaxConns); it should
	// exceed PipelineDepth so that Load and Pending find connections.
	MaxConns int
	// CommitTimeout bounds one group's transaction (DefaultCommitTimeout).
	CommitTimeout time.Duration
	// CommitRetries bounds the retries of a group after a deadlock or
	// serialization failure (DefaultCommitRetries; -1 for none).
	CommitRetries int
	// RetainJournal keeps records at or below a written snapshot's seq; by
	// default they are deleted in the same transaction.
	RetainJournal bool
	// Writer names the node writing through this store (its node ID). It
	// is kept with every journal record, with the append's shard epoch
	// (persistence.AppendRequest.Epoch), in the journal's writer and epoch
	// columns: provenance for audits, never read back by Load. Empty is
	// allowed.
	Writer string
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every problem at once, each wrapping
// persistence.ErrInvalidOptions.
func (o Options) Validate() error {
	errs := []error{o.groupConfig().Validate()}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", persistence.ErrInvalidOptions, fmt.Sprintf(format, args...)))
	}
	if o.Schema != "" && !schemaName.MatchString(o.Schema) {
		bad("Schema %q must match %s", o.Schema, schemaName)
	}
	if o.MaxConns < 0 {
		bad("MaxConns is %d, must be >= 0 (0 means %d)", o.MaxConns, DefaultMaxConns)
	}
	if o.CommitTimeout < 0 {
		bad("CommitTimeout is %s, must be >= 0 (0 means %s)", o.CommitTimeout, DefaultCommitTimeout)
	}
	if o.CommitRetries < -1 {
		bad("CommitRetries is %d, must be >= -1", o.CommitRetries)
	}
	return errors.Join(errs...)
}

func (o Options) groupConfig() group.Config {
	return group.Config{MaxQueue: o.MaxQueue, MaxGroupAppends: o.MaxGroupAppends, Limits: o.Limits, PipelineDepth: o.PipelineDepth}
}

func (o Options) withDefaults() Options {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.CommitTimeout == 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	switch o.CommitRetries {
	case 0:
		o.CommitRetries = DefaultCommitRetries
	case -1:
		o.CommitRetries = 0
	}
	return o
}

// Store is a persistence.Store on PostgreSQL.
type Store struct {
	opts Options
	pool *pgxpool.Pool
	eng  *group.Engine
	t    tables
	// groupSQL is the one statement that writes a group, loadSQL the one
	// that reads an entity.
	groupSQL, loadSQL string

	mu     sync.RWMutex // readers hold it while using the pool; Close takes it
	closed bool

	inflightMu   sync.Mutex
	inflightDone *sync.Cond // signalled when a group's transaction ends
	inflight     map[machine.Entity]bool

	// down is set while the database is lost (see observe): calls fail fast
	// with ErrUnreachable and one goroutine probes until it connects.
	down    atomic.Bool
	downMu  sync.Mutex
	downErr error         // the failure that took the store down, then the last probe's
	gen     atomic.Uint64 // pool resets so far
	quit    context.Context
	quitFn  context.CancelFunc
	probing sync.WaitGroup
}

var (
	_ persistence.Store    = (*Store)(nil)
	_ persistence.Keyspace = (*Store)(nil)
)

// tables are the schema-qualified, quoted table names.
type tables struct {
	schema, migrations, entities, journal, snapshots, keyspace string
}

func newTables(schema string) tables {
	q := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	return tables{
		schema:     pgx.Identifier{schema}.Sanitize(),
		migrations: q("phasm_migrations"),
		entities:   q("phasm_entities"),
		journal:    q("phasm_journal"),
		snapshots:  q("phasm_snapshots"),
		keyspace:   q("phasm_keyspace"),
	}
}

// Open connects to the database at dsn (a libpq URL or key=value string),
// creates or migrates the schema, and starts the committer.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	cfg.MaxConns = int32(opts.MaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := &Store{opts: opts, pool: pool, t: newTables(opts.Schema), inflight: make(map[machine.Entity]bool)}
	s.quit, s.quitFn = context.WithCancel(context.Background())
	s.groupSQL = groupStatement(s.t)
	s.loadSQL = loadStatement(s.t)
	s.inflightDone = sync.NewCond(&s.inflightMu)
	if err := s.migrate(ctx); err != nil {
		s.quitFn()
		pool.Close()
		return nil, err
	}
	s.eng = group.New(opts.groupConfig(), s.commit)
	return s, nil
}

// Append implements persistence.Store.
func (s *Store) Append(ctx context.Context, req persistence.AppendRequest) error {
	return s.eng.Append(ctx, req)
}

// AppendAsync implements persistence.Store.
func (s *Store) AppendAsync(req persistence.AppendRequest, done func(error)) {
	s.eng.AppendAsync(req, done)
}

// Close implements persistence.Store: queued appends are committed, then
// the pool is closed.
func (s *Store) Close() error {
	s.eng.Close()
	s.downMu.Lock() // no probe starts after this
	s.quitFn()
	s.downMu.Unlock()
	s.probing.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.pool.Close()
	}
	return nil
}

func (s *Store) acquire() (func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, persistence.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// A crash or restart of the server breaks every pooled connection at
// once, but a pooled connection only finds out when it is next used: each
// would fail one more call (a whole group of appends, a load) before
// being discarded, and while the server is down or starting up every call
// would dial it anew, filling the pool with attempts that can only fail
// and that keep the first good connection waiting for a slot. So the
// first call that finds the connection lost takes the store down: the
// pool is reset (every idle connection closed, those in use closed when
// released), calls fail fast with ErrUnreachable, and one goroutine probes
// the server (10 ms, doubling to at most 100 ms, between probes); the
// first probe that connects brings the store back. Nothing is
// acknowledged that was not committed: a call failed while down did
// nothing.

// enter is where every call that uses the pool starts: it returns the
// error of a call made while the store is down, or the generation of the
// pool the call uses (for observe).
func (s *Store) enter() (gen uint64, err error) {
	if !s.down.Load() {
		return s.gen.Load(), nil
	}
	s.downMu.Lock()
	cause := s.downErr
	s.downMu.Unlock()
	// The cause is in the message only: this call did not fail on a
	// connection, it was not tried.
	return 0, fmt.Errorf("%w (%v)", ErrUnreachable, cause)
}

// observe takes the store down if err, the outcome of a call that entered
// at generation gen, says the connection to the server was lost, and
// starts the probe. A call that entered before the last reset is ignored:
// its connection was one of those already known lost, and the store may
// already be back on fresh ones. It returns err.
func (s *Store) observe(gen uint64, err error) error {
	if !connectionLost(err) {
		return err
	}
	s.downMu.Lock()
	defer s.downMu.Unlock()
	if s.down.Load() || s.gen.Load() != gen || s.quit.Err() != nil {
		return err
	}
	s.gen.Add(1)
	s.downErr = err
	s.down.Store(true)
	s.pool.Reset()
	s.probing.Add(1)
	go s.reconnect()
	return err
}

// reconnect probes the server until a connection answers, then brings
// the store back up.
func (s *Store) reconnect() {
	defer s.probing.Done()
	wait := reconnectFirstWait
	for {
		ctx, cancel := context.WithTimeout(s.quit, reconnectProbeTimeout)
		err := s.pool.Ping(ctx)
		cancel()
		if s.quit.Err() != nil {
			return
		}
		s.downMu.Lock()
		if err == nil {
			s.down.Store(false)
			s.downErr = nil
			s.downMu.Unlock()
			return
		}
		s.downErr = err
		s.downMu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.quit.Done():
			t.Stop()
			return
		}
		wait = min(wait*2, reconnectMaxWait)
	}
}

// connectionLost reports whether err says the server cannot be reached:
// a failed connection attempt, a connection that broke (EOF, reset), or
// the server ending sessions (shutdown, crash, still starting up:
// SQLSTATE 57P01-57P03, class 08). Errors in SQL, authentication, and
// timeouts (a slow server is not a lost one) are not.
func connectionLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed)
}

// commit starts one group's transaction: at most one append per entity,
// and none for an entity whose previous append is still in a transaction
// in flight (so concurrent groups never wait on each other's row locks);
// those are carried to a later group, in order. The transaction runs on
// its own goroutine so that up to PipelineDepth groups overlap; wait
// returns its outcome.
func (s *Store) commit(ops []*group.Op) (carry []*group.Op, wait func() error) {
	s.inflightMu.Lock()
	for {
		seen := make(map[machine.Entity]bool, len(ops))
		var batch []*group.Op
		carry = nil
		for _, op := range ops {
			e := op.Req.Entity
			if seen[e] || s.inflight[e] {
				carry = append(carry, op)
				continue
			}
			seen[e] = true
			batch = append(batch, op)
		}
		if len(batch) == 0 {
			// Everything waits for a transaction in flight: wait for one
			// to finish rather than spin.
			s.inflightDone.Wait()
			continue
		}
		for _, op := range batch {
			s.inflight[op.Req.Entity] = true
		}
		s.inflightMu.Unlock()
		done := make(chan error, 1)
		go func() {
			err := s.writeWithRetries(batch)
			s.inflightMu.Lock()
			for _, op := range batch {
				delete(s.inflight, op.Req.Entity)
			}
			s.inflightDone.Broadcast()
			s.inflightMu.Unlock()
			done <- err
		}()
		return carry, func() error { return <-done }
	}
}

func (s *Store) writeWithRetries(batch []*group.Op) error {
	gen, err := s.enter()
	if err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	for attempt := 0; ; attempt++ {
		err = s.observe(gen, s.writeGroup(batch))
		var pgErr *pgconn.PgError
		retryable := errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
		if !retryable || attempt >= s.opts.CommitRetries {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return nil
}

// writeGroup writes the group in ONE statement, hence one transaction
// and one round trip: data-modifying CTEs do the compare-and-set for every
// entity (UPDATE ... WHERE seq = expected for known entities, INSERT ...
// ON CONFLICT DO NOTHING for new ones), and insert the journal rows and
// snapshots and truncate the journals of exactly the winners (joined on
// the CAS's RETURNING). It sets each op's Err to nil (written) or a
// conflict; a returned error means nothing was written.
func (s *Store) writeGroup(ops []*group.Op) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()

	var cas casArgs
	var j journalArgs
	var sn snapArgs
	var tr truncArgs
	var kset kvSetArgs
	var kdel kvDelArgs
	for _, op := range ops {
		req := &op.Req
		cas.add(op)
		for _, w := range op.Enc.Writes {
			if w.Delete {
				kdel.kind = append(kdel.kind, req.Entity.Kind)
				kdel.id = append(kdel.id, req.Entity.ID)
				kdel.key = append(kdel.key, w.Key)
				continue
			}
			kset.kind = append(kset.kind, req.Entity.Kind)
			kset.id = append(kset.id, req.Entity.ID)
			kset.key = append(kset.key, w.Key)
			v := w.Value
			if v == nil {
				v = []byte{} // NOT NULL: an empty value is a value
			}
			kset.value = append(kset.value, v)
		}
		var truncateTo uint64
		if req.Snapshot != nil {
			sn.kind = append(sn.kind, req.Entity.Kind)
			sn.id = append(sn.id, req.Entity.ID)
			sn.seq = append(sn.seq, int64(req.Snapshot.Seq))
			sn.data = append(sn.data, op.Enc.Snapshot)
			if !s.opts.RetainJournal {
				truncateTo = req.Snapshot.Seq
				if req.ExpectedSeq > 0 {
					tr.kind = append(tr.kind, req.Entity.Kind)
					tr.id = append(tr.id, req.Entity.ID)
					tr.upto = append(tr.upto, int64(min(truncateTo, req.ExpectedSeq)))
				}
			}
		}
		for i, enc := range op.Enc.Records {
			seq := req.ExpectedSeq + 1 + uint64(i)
			if seq <= truncateTo {
				continue
			}
			j.kind = append(j.kind, req.Entity.Kind)
			j.id = append(j.id, req.Entity.ID)
			j.seq = append(j.seq, int64(seq))
			j.data = append(j.data, enc)
			j.epoch = append(j.epoch, int64(req.Epoch))
		}
	}
	rows, err := s.pool.Query(ctx, s.groupSQL,
		cas.kind, cas.id, cas.expected, cas.newSeq, cas.snapSeq, cas.shard, cas.pending,
		j.kind, j.id, j.seq, j.data,
		sn.kind, sn.id, sn.seq, sn.data,
		tr.kind, tr.id, tr.upto,
		kset.kind, kset.id, kset.key, kset.value,
		kdel.kind, kdel.id, kdel.key,
		j.epoch, s.opts.Writer, cas.epoch)
	if err != nil {
		return err
	}
	won := make(map[machine.Entity]bool, len(ops))
	for rows.Next() {
		var e machine.Entity
		if err := rows.Scan(&e.Kind, &e.ID); err != nil {
			rows.Close()
			return err
		}
		won[e] = true
	}
	rows.Close()
	// The statement's implicit transaction commits before the server says
	// it is done; an error here (a failed commit included) means nothing
	// was written.
	if err := rows.Err(); err != nil {
		return err
	}
	var lost []*group.Op
	for _, op := range ops {
		if won[op.Req.Entity] {
			op.Err = nil
		} else {
			op.Err = &persistence.ConflictError{Entity: op.Req.Entity, ExpectedSeq: op.Req.ExpectedSeq}
			lost = append(lost, op)
		}
	}
	if len(lost) > 0 {
		s.explainConflicts(ctx, lost)
	}
	return nil
}

// explainConflicts reads the entities of appends that lost their
// compare-and-set and says why in their ConflictError: the sequence number
// the store holds, and whether the append came from a stale owner (an
// epoch below that of the entity's last append), which the runtime treats
// differently from a race between two writers (it stops serving the
// entity instead of reloading it). Conflicts are rare, so this costs one
// extra round trip only when there are some; if the read fails the
// conflicts stay as they are (still correct, only less specific).
func (s *Store) explainConflicts(ctx context.Context, lost []*group.Op) {
	kinds := make([]string, len(lost))
	ids := make([]string, len(lost))
	for i, op := range lost {
		kinds[i], ids[i] = op.Req.Entity.Kind, op.Req.Entity.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT e.kind, e.id, e.seq, e.epoch FROM `+s.t.entities+` AS e
	JOIN unnest($1::text[], $2::text[]) AS r(kind, id) ON e.kind = r.kind AND e.id = r.id`, kinds, ids)
	if err != nil {
		return
	}
	type stored struct{ seq, epoch int64 }
	found := make(map[machine.Entity]stored, len(lost))
	for rows.Next() {
		var e machine.Entity
		var st stored
		if err := rows.Scan(&e.Kind, &e.ID, &st.seq, &st.epoch); err != nil {
			rows.Close()
			return
		}
		found[e] = st
	}
	rows.Close()
	if rows.Err() != nil {
		return
	}
	for _, op := range lost {
		ce := op.Err.(*persistence.ConflictError)
		st, ok := found[op.Req.Entity]
		if !ok {
			ce.Known = true // no entity row: the store holds nothing
			continue
		}
		ce.ActualSeq, ce.Known = uint64(st.seq), true
		if st.epoch > int64(op.Req.Epoch) {
			ce.Fenced, ce.RequestEpoch, ce.StoredEpoch = true, op.Req.Epoch, uint64(st.epoch)
		}
	}
}

// groupStatement is the statement writeGroup runs; see there.
func groupStatement(t tables) string {
	return `WITH v AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[], $28::bigint[])
		AS v(kind, id, expected, new_seq, snap_seq, shard, pending, epoch)
), upd AS (
	UPDATE ` + t.entities + ` AS e
	SET seq = v.new_seq,
		snapshot_seq = CASE WHEN v.snap_seq > 0 THEN v.snap_seq ELSE e.snapshot_seq END,
		shard = v.shard, pending = v.pending, epoch = v.epoch
	FROM v
	WHERE v.expected > 0 AND e.kind = v.kind AND e.id = v.id AND e.seq = v.expected AND e.epoch <= v.epoch
	RETURNING e.kind, e.id
), ins AS (
	INSERT INTO ` + t.entities + ` (kind, id, seq, snapshot_seq, shard, pending, epoch)
	SELECT kind, id, new_seq, snap_seq, shard, pending, epoch FROM v WHERE expected = 0
	ON CONFLICT (kind, id) DO NOTHING
	RETURNING kind, id
), won AS (
	SELECT kind, id FROM upd UNION ALL SELECT kind, id FROM ins
), j AS (
	INSERT INTO ` + t.journal + ` (kind, id, seq, data, writer, epoch)
	SELECT r.kind, r.id, r.seq, r.data, $27::text, r.epoch
	FROM unnest($8::text[], $9::text[], $10::bigint[], $11::bytea[], $26::bigint[]) AS r(kind, id, seq, data, epoch)
	JOIN won ON won.kind = r.kind AND won.id = r.id
), sn AS (
	INSERT INTO ` + t.snapshots + ` (kind, id, seq, data)
	SELECT r.kind, r.id, r.seq, r.data
	FROM unnest($12::text[], $13::text[], $14::bigint[], $15::bytea[]) AS r(kind, id, seq, data)
	JOIN won ON won.kind = r.kind AND won.id = r.id
	ON CONFLICT (kind, id) DO UPDATE SET seq = EXCLUDED.seq, data = EXCLUDED.data
), tr AS (
	DELETE FROM ` + t.journal + ` AS jj
	USING unnest($16::text[], $17::text[], $18::bigint[]) AS r(kind, id, upto), won
	WHERE won.kind = r.kind AND won.id = r.id AND jj.kind = r.kind AND jj.id = r.id AND jj.seq <= r.upto
), ks AS (
	INSERT INTO ` + t.keyspace + ` (kind, id, key, value)
	SELECT r.kind, r.id, r.key, r.value
	FROM unnest($19::text[], $20::text[], $21::bytea[], $22::bytea[]) AS r(kind, id, key, value)
	JOIN won ON won.kind = r.kind AND won.id = r.id
	ON CONFLICT (kind, id, key) DO UPDATE SET value = EXCLUDED.value
), kd AS (
	DELETE FROM ` + t.keyspace + ` AS kk
	USING unnest($23::text[], $24::text[], $25::bytea[]) AS r(kind, id, key), won
	WHERE won.kind = r.kind AND won.id = r.id AND kk.kind = r.kind AND kk.id = r.id AND kk.key = r.key
)
SELECT kind, id FROM won`
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, e machine.Entity) (persistence.Loaded, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Loaded{}, err
	}
	release, err := s.acquire()
	if err != nil {
		return persistence.Loaded{}, err
	}
	defer release()
	gen, err := s.enter()
	if err != nil {
		return persistence.Loaded{}, fmt.Errorf("pgstore: load %s: %w", e, err)
	}
	out, err := s.load(ctx, e)
	if err != nil && ctx.Err() != nil {
		return persistence.Loaded{}, ctx.Err()
	}
	return out, s.observe(gen, err)
}

// load reads the entity in ONE statement, hence one round trip and one
// snapshot of the database (every part of a statement sees the same
// snapshot, whatever the isolation level): its row, its snapshot when it
// has one, and the journal after the snapshot, tagged by part (0, 1, 2)
// and in that order. It was a read-only REPEATABLE READ transaction of
// five round trips (BEGIN, three queries, ROLLBACK): activations are what
// a node does most after a restart of the database (every entity that
// failed during the outage reloads), so their cost is how long service
// takes to come back.
func (s *Store) load(ctx context.Context, e machine.Entity) (persistence.Loaded, error) {
	wrap := func(err error) error { return fmt.Errorf("pgstore: load %s: %w", e, err) }
	rows, err := s.pool.Query(ctx, s.loadSQL, e.Kind, e.ID)
	if err != nil {
		return persistence.Loaded{}, wrap(err)
	}
	defer rows.Close()
	var (
		out           persistence.Loaded
		found, snap   bool
		last, snapSeq int64
	)
	for rows.Next() {
		var part int32
		var seq, aux int64
		var data []byte
		if err := rows.Scan(&part, &seq, &aux, &data); err != nil {
			return persistence.Loaded{}, wrap(err)
		}
		switch part {
		case 0:
			found, last, snapSeq = true, seq, aux
			out.LastSeq = uint64(last)
			out.Records = make([]machine.Record, 0, last-snapSeq)
		case 1:
			if seq != snapSeq {
				return persistence.Loaded{}, &persistence.CorruptionError{Entity: e, Seq: uint64(snapSeq), Where: "snapshot", Reason: fmt.Sprintf("stored snapshot is at seq %d", seq)}
			}
			if out.Snapshot, err = persistence.DecodeSnapshot(e, uint64(snapSeq), data); err != nil {
				return persistence.Loaded{}, err
			}
			snap = true
		default:
			rec, err := persistence.DecodeRecord(e, uint64(seq), data)
			if err != nil {
				return persistence.Loaded{}, err
			}
			out.Records = append(out.Records, rec)
		}
	}
	if err := rows.Err(); err != nil {
		return persistence.Loaded{}, wrap(err)
	}
	if !found {
		return persistence.Loaded{}, nil
	}
	if snapSeq > 0 && !snap {
		return persistence.Loaded{}, &persistence.CorruptionError{Entity: e, Seq: uint64(snapSeq), Where: "snapshot", Reason: "snapshot is missing"}
	}
	if err := persistence.CheckJournal(e, uint64(snapSeq), uint64(last), out.Records); err != nil {
		return persistence.Loaded{}, err
	}
	return out, nil
}

// loadStatement is the statement load runs; see there. The snapshot's
// part carries its seq whatever the entity row says, so that a mismatch
// is seen.
func loadStatement(t tables) string {
	return `WITH e AS (
	SELECT seq, snapshot_seq FROM ` + t.entities + ` WHERE kind = $1 AND id = $2
)
SELECT 0 AS part, e.seq, e.snapshot_seq AS aux, NULL::bytea AS data FROM e
UNION ALL
SELECT 1, s.seq, 0, s.data FROM ` + t.snapshots + ` AS s, e WHERE e.snapshot_seq > 0 AND s.kind = $1 AND s.id = $2
UNION ALL
SELECT 2, j.seq, 0, j.data FROM ` + t.journal + ` AS j, e
	WHERE j.kind = $1 AND j.id = $2 AND j.seq > e.snapshot_seq AND j.seq <= e.seq
ORDER BY 1, 2`
}

// Pending implements persistence.Store.
func (s *Store) Pending(ctx context.Context, shard uint32) ([]machine.Entity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	gen, err := s.enter()
	if err != nil {
		return nil, fmt.Errorf("pgstore: pending: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT kind, id FROM `+s.t.entities+` WHERE shard = $1 AND pending`, int64(shard))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pgstore: pending: %w", s.observe(gen, err))
	}
	defer rows.Close()
	var out []machine.Entity
	for rows.Next() {
		var e machine.Entity
		if err := rows.Scan(&e.Kind, &e.ID); err != nil {
			return nil, fmt.Errorf("pgstore: pending: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pgstore: pending: %w", s.observe(gen, err))
	}
	// Sorted here, by bytes, whatever the database's collation.
	slices.SortFunc(out, machine.Entity.Compare)
	return out, nil
}

type casArgs struct {
	kind, id                         []string
	expected, newSeq, snapSeq, shard []int64
	pending                          []bool
	epoch                            []int64
}

func (a *casArgs) add(op *group.Op) {
	req := &op.Req
	a.kind = append(a.kind, req.Entity.Kind)
	a.id = append(a.id, req.Entity.ID)
	a.expected = append(a.expected, int64(req.ExpectedSeq))
	a.newSeq = append(a.newSeq, int64(req.LastSeq()))
	var snap int64
	if req.Snapshot != nil {
		snap = int64(req.Snapshot.Seq)
	}
	a.snapSeq = append(a.snapSeq, snap)
	a.shard = append(a.shard, int64(req.Shard))
	a.pending = append(a.pending, req.Pending)
	a.epoch = append(a.epoch, int64(req.Epoch))
}

type journalArgs struct {
	kind, id []string
	seq      []int64
	data     [][]byte
	epoch    []int64 // the writer's shard epoch per record
}

type snapArgs struct {
	kind, id []string
	seq      []int64
	data     [][]byte
}

type truncArgs struct {
	kind, id []string
	upto     []int64
}

type kvSetArgs struct {
	kind, id   []string
	key, value [][]byte
}

type kvDelArgs struct {
	kind, id []string
	key      [][]byte
}

// Get implements persistence.Keyspace.
func (s *Store) Get(ctx context.Context, e machine.Entity, key []byte) ([]byte, bool, error) {
	if err := persistence.CheckKeyRead(e, key); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	release, err := s.acquire()
	if err != nil {
		return nil, false, err
	}
	defer release()
	gen, err := s.enter()
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: get %s key %q: %w", e, key, err)
	}
	var v []byte
	err = s.pool.QueryRow(ctx, `SELECT value FROM `+s.t.keyspace+` WHERE kind = $1 AND id = $2 AND key = $3`, e.Kind, e.ID, key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil
	case err != nil:
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("pgstore: get %s key %q: %w", e, key, s.observe(gen, err))
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Scan implements persistence.Keyspace.
func (s *Store) Scan(ctx context.Context, e machine.Entity, start, end []byte, limit int) ([]kv.Pair, bool, error) {
	if err := persistence.CheckScanRead(e, start, end, limit); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	release, err := s.acquire()
	if err != nil {
		return nil, false, err
	}
	defer release()
	q := `SELECT key, value FROM ` + s.t.keyspace + ` WHERE kind = $1 AND id = $2 AND key >= $3`
	args := []any{e.Kind, e.ID, start}
	if end != nil {
		q += ` AND key < $4 ORDER BY key LIMIT $5`
		args = append(args, end, limit+1)
	} else {
		q += ` ORDER BY key LIMIT $4`
		args = append(args, limit+1)
	}
	gen, err := s.enter()
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: scan %s: %w", e, err)
	}
	wrap := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("pgstore: scan %s: %w", e, s.observe(gen, err))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, wrap(err)
	}
	defer rows.Close()
	var out []kv.Pair
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		var p kv.Pair
		if err := rows.Scan(&p.Key, &p.Value); err != nil {
			return nil, false, wrap(err)
		}
		if p.Value == nil {
			p.Value = []byte{}
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, wrap(err)
	}
	return out, more, nil
}
