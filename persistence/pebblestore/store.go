package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/internal/group"
)

// Defaults for zero Options fields.
const (
	DefaultMaxQueue          = group.DefaultMaxQueue
	DefaultMaxGroupAppends   = group.DefaultMaxGroupAppends
	DefaultMaxGroupBytes     = 64 << 20 // 64 MiB
	DefaultMaxCachedEntities = 1 << 20
)

// Options configure a Store. Zero fields take their defaults; Validate
// lists every problem.
type Options struct {
	// Limits bound records, snapshots and requests.
	persistence.Limits
	// MaxQueue bounds in-flight appends, queued or being committed
	// (DefaultMaxQueue). AppendAsync beyond it gets ErrOverloaded.
	MaxQueue int
	// MaxGroupAppends bounds the appends written by one synced batch
	// (DefaultMaxGroupAppends).
	MaxGroupAppends int
	// PipelineDepth bounds the synced batches in flight: the committer
	// writes the next group while earlier ones wait for their fsync
	// (default 4). Acknowledgements stay in order.
	PipelineDepth int
	// MaxGroupBytes bounds the encoded bytes of one batch
	// (DefaultMaxGroupBytes); a single larger append still goes alone.
	MaxGroupBytes int
	// MaxCachedEntities bounds the committer's cache of entities' last
	// sequence numbers (DefaultMaxCachedEntities); when full it is emptied
	// and refilled from the database on demand.
	MaxCachedEntities int
	// RetainJournal keeps records at or below a written snapshot's seq; by
	// default they are deleted in the same batch.
	RetainJournal bool
	// Pebble, when set, is used to open the database (tuning, a logger, a
	// virtual file system for tests). The store never disables syncing.
	Pebble *pebble.Options
}

// Validate reports every problem at once, each wrapping
// persistence.ErrInvalidOptions.
func (o Options) Validate() error {
	errs := []error{o.groupConfig().Validate()}
	if o.MaxGroupBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxGroupBytes is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, o.MaxGroupBytes, DefaultMaxGroupBytes))
	}
	if o.MaxCachedEntities < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxCachedEntities is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, o.MaxCachedEntities, DefaultMaxCachedEntities))
	}
	return errors.Join(errs...)
}

func (o Options) groupConfig() group.Config {
	return group.Config{MaxQueue: o.MaxQueue, MaxGroupAppends: o.MaxGroupAppends, Limits: o.Limits, PipelineDepth: o.PipelineDepth}
}

// DefaultPebbleOptions returns the Pebble options Open uses when
// Options.Pebble is nil: Pebble's defaults with larger memtables and a
// larger L0, because journals are write-heavy and small memtables spend
// most of the CPU flushing and compacting.
func DefaultPebbleOptions() *pebble.Options {
	return &pebble.Options{
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       8,
		L0StopWritesThreshold:       32,
		LBaseMaxBytes:               256 << 20,
	}
}

// Store is a persistence.Store on a Pebble database in one directory.
type Store struct {
	opts Options
	dir  string
	db   *pebble.DB
	eng  *group.Engine

	mu     sync.RWMutex // readers hold it while using db; Close takes it
	closed bool

	// failed is the first failed write or sync: after it the database's
	// state is unknown and every later call fails with it.
	failed atomic.Pointer[error]

	// Owned by the committer goroutine. The cache is updated as a group is
	// staged: if the group's write then fails the store is failed for
	// good (see failed), so it never needs rolling back.
	cache  map[machine.Entity]meta
	staged staging // the group being built (see commit)
}

var (
	_ persistence.Store    = (*Store)(nil)
	_ persistence.Keyspace = (*Store)(nil)
)

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxGroupBytes == 0 {
		opts.MaxGroupBytes = DefaultMaxGroupBytes
	}
	if opts.MaxCachedEntities == 0 {
		opts.MaxCachedEntities = DefaultMaxCachedEntities
	}
	var po *pebble.Options
	if opts.Pebble != nil {
		po = opts.Pebble.Clone()
	} else {
		po = DefaultPebbleOptions()
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{
		opts:  opts,
		dir:   dir,
		db:    db,
		cache: make(map[machine.Entity]meta),
	}
	s.eng = group.New(opts.groupConfig(), s.commit)
	return s, nil
}

// Dir returns the directory the store was opened in.
func (s *Store) Dir() string { return s.dir }

// Append implements persistence.Store.
func (s *Store) Append(ctx context.Context, req persistence.AppendRequest) error {
	return s.eng.Append(ctx, req)
}

// AppendAsync implements persistence.Store.
func (s *Store) AppendAsync(req persistence.AppendRequest, done func(error)) {
	s.eng.AppendAsync(req, done)
}

// Close implements persistence.Store: queued appends are committed, then
// the database is closed.
func (s *Store) Close() error {
	s.eng.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// reading is what lookup needs from the database or a snapshot of it.
type reading interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// readMeta reads e's meta and derives its last seq from the journal.
func readMeta(r reading, e machine.Entity) (meta, error) {
	var m meta
	v, closer, err := r.Get(entityKey(prefixMeta, e))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return meta{}, fmt.Errorf("pebblestore: reading meta of %s: %w", e, err)
	default:
		m, err = decodeMeta(e, v)
		closer.Close()
		if err != nil {
			return meta{}, err
		}
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: journalKey(e, 0), UpperBound: journalKey(e, ^uint64(0))})
	if err != nil {
		return meta{}, fmt.Errorf("pebblestore: reading journal of %s: %w", e, err)
	}
	defer it.Close()
	m.last = m.snapSeq
	if it.Last() {
		k := it.Key()
		m.last = max(m.last, beUint64(k[len(k)-8:]))
	}
	if err := it.Error(); err != nil {
		return meta{}, fmt.Errorf("pebblestore: reading journal of %s: %w", e, err)
	}
	return m, nil
}

// lookup returns e's meta as the group being built sees it: the cache
// holds the effect of earlier groups (applied to the database, maybe not
// yet synced) and of this group's earlier appends; the database holds
// the effect of applied groups.
func (s *Store) lookup(e machine.Entity) (meta, error) {
	if m, ok := s.cache[e]; ok {
		return m, nil
	}
	return readMeta(s.db, e)
}

func (s *Store) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// commit writes one group in one synced batch. It runs on the engine's
// committer goroutine only. The batch is applied (and visible to Load)
// before its fsync completes; the engine acknowledges it after wait.
//
// The group's writes are staged first and added to the batch sorted by
// key: applying a batch is mostly inserting into Pebble's memtable
// skiplist, in batch order, each insert starting from the previous one's
// position, so sorted keys turn most of each search into a few steps from
// a neighbour. On a large memtable that halves the CPU per append.
// (Splitting a group into batches applied on several goroutines was
// measured too: slower on two cores.)
func (s *Store) commit(ops []*group.Op) (carry []*group.Op, wait func() error) {
	if err := s.failure(); err != nil {
		for _, op := range ops {
			op.Err = err
		}
		return nil, nil
	}
	if len(s.cache)+len(ops) > s.opts.MaxCachedEntities {
		clear(s.cache) // only between groups: see lookup
	}
	st := &s.staged
	st.reset()
	bytes := 0
	written := 0
	for i, op := range ops {
		if written > 0 && bytes+op.Enc.Bytes > s.opts.MaxGroupBytes {
			// The rest waits for the next batch, in order.
			carry = append(carry, ops[i:]...)
			break
		}
		mark := st.mark()
		if op.Err = s.stage(st, op); op.Err != nil {
			st.undo(mark)
			continue
		}
		written++
		bytes += op.Enc.Bytes
	}
	if written == 0 {
		return carry, nil
	}
	fail := func(err error) error {
		err = fmt.Errorf("pebblestore: commit: %w", err)
		s.failed.CompareAndSwap(nil, &err)
		return s.failure()
	}
	b := s.db.NewBatch()
	err := st.writeTo(b)
	if err == nil {
		err = s.db.ApplyNoSyncWait(b, pebble.Sync)
	}
	if err != nil {
		// Nothing of the batch is written, but the cache already has the
		// group's appends: fail the store and every written append.
		b.Close()
		err = fail(err)
		for _, op := range ops {
			if op.Err == nil {
				op.Err = err
			}
		}
		return carry, nil
	}
	return carry, func() error {
		err := b.SyncWait()
		b.Close()
		if err != nil {
			return fail(err)
		}
		return nil
	}
}

// stage checks op's expected seq and stages its writes in st.
func (s *Store) stage(st *staging, op *group.Op) error {
	req := &op.Req
	e := req.Entity
	old, err := s.lookup(e)
	if err != nil {
		return err
	}
	if old.last != req.ExpectedSeq {
		return &persistence.ConflictError{Entity: e, ExpectedSeq: req.ExpectedSeq, ActualSeq: old.last, Known: true}
	}
	m := meta{last: req.LastSeq(), snapSeq: old.snapSeq, shard: req.Shard, pending: req.Pending, stored: true}
	if !m.pending && old.snapSeq == 0 && !old.stored {
		m.stored, m.shard = false, 0 // nothing worth a meta key yet
	}
	var truncateTo uint64 // records <= truncateTo are deleted
	if req.Snapshot != nil {
		m.snapSeq, m.stored = req.Snapshot.Seq, true
		m.shard = req.Shard
		if !s.opts.RetainJournal {
			truncateTo = m.snapSeq
		}
	}
	for i, enc := range op.Enc.Records {
		seq := req.ExpectedSeq + 1 + uint64(i)
		if seq <= truncateTo {
			continue
		}
		st.set(binary.BigEndian.AppendUint64(appendEntity(st.key(prefixJournal), e), seq), enc)
	}
	for _, w := range op.Enc.Writes {
		k := keyspaceKey(st.keys, e, w.Key)
		if w.Delete {
			st.delete(k)
		} else {
			st.set(k, w.Value)
		}
	}
	if req.Snapshot != nil {
		st.set(appendEntity(st.key(prefixSnapshot), e), op.Enc.Snapshot)
		if truncateTo > 0 && old.snapSeq < truncateTo && req.ExpectedSeq > 0 {
			st.deleteRange(journalKey(e, 0), journalKey(e, min(truncateTo, req.ExpectedSeq)+1))
		}
	}
	if old.pending && (old.shard != m.shard || !m.pending) {
		st.delete(appendEntity(binary.BigEndian.AppendUint32(st.key(prefixPending), old.shard), e))
	}
	if m.pending && !(old.pending && old.shard == m.shard) {
		st.set(appendEntity(binary.BigEndian.AppendUint32(st.key(prefixPending), m.shard), e), nil)
	}
	if !m.sameStored(old) {
		st.set(appendEntity(st.key(prefixMeta), e), m.encode())
	}
	s.cache[e] = m
	return nil
}

// reader gives a consistent view for Load and Pending, or ErrClosed.
func (s *Store) reader() (*pebble.Snapshot, func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, persistence.ErrClosed
	}
	if err := s.failure(); err != nil {
		s.mu.RUnlock()
		return nil, nil, err
	}
	snap := s.db.NewSnapshot()
	return snap, func() { snap.Close(); s.mu.RUnlock() }, nil
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, e machine.Entity) (persistence.Loaded, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Loaded{}, err
	}
	r, release, err := s.reader()
	if err != nil {
		return persistence.Loaded{}, err
	}
	defer release()
	m, err := readMeta(r, e)
	if err != nil || m.last == 0 {
		return persistence.Loaded{}, err
	}
	out := persistence.Loaded{LastSeq: m.last}
	if m.snapSeq > 0 {
		v, closer, err := r.Get(entityKey(prefixSnapshot, e))
		if errors.Is(err, pebble.ErrNotFound) {
			return persistence.Loaded{}, &persistence.CorruptionError{Entity: e, Seq: m.snapSeq, Where: "snapshot", Reason: "snapshot is missing"}
		}
		if err != nil {
			return persistence.Loaded{}, fmt.Errorf("pebblestore: load %s: %w", e, err)
		}
		sv := slices.Clone(v)
		closer.Close()
		if out.Snapshot, err = persistence.DecodeSnapshot(e, m.snapSeq, sv); err != nil {
			return persistence.Loaded{}, err
		}
	}
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: journalKey(e, m.snapSeq+1),
		UpperBound: journalKey(e, m.last+1),
	})
	if err != nil {
		return persistence.Loaded{}, fmt.Errorf("pebblestore: load %s: %w", e, err)
	}
	defer it.Close()
	out.Records = make([]machine.Record, 0, m.last-m.snapSeq)
	prefixLen := len(journalKey(e, 0)) - 8
	for ok := it.First(); ok; ok = it.Next() {
		if len(out.Records)%256 == 255 {
			if err := ctx.Err(); err != nil {
				return persistence.Loaded{}, err
			}
		}
		k := it.Key()
		if len(k) != prefixLen+8 {
			return persistence.Loaded{}, &persistence.CorruptionError{Entity: e, Where: "journal", Reason: fmt.Sprintf("journal key of %d bytes", len(k))}
		}
		seq := beUint64(k[prefixLen:])
		rec, err := persistence.DecodeRecord(e, seq, slices.Clone(it.Value()))
		if err != nil {
			return persistence.Loaded{}, err
		}
		out.Records = append(out.Records, rec)
	}
	if err := it.Error(); err != nil {
		return persistence.Loaded{}, fmt.Errorf("pebblestore: load %s: %w", e, err)
	}
	if err := persistence.CheckJournal(e, m.snapSeq, m.last, out.Records); err != nil {
		return persistence.Loaded{}, err
	}
	return out, nil
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// Pending implements persistence.Store.
func (s *Store) Pending(ctx context.Context, shard uint32) ([]machine.Entity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, release, err := s.reader()
	if err != nil {
		return nil, err
	}
	defer release()
	lo := pendingPrefix(shard)
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: pendingPrefix(shard + 1)})
	if shard == ^uint32(0) {
		it, err = r.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: []byte{prefixPending + 1}})
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: pending: %w", err)
	}
	defer it.Close()
	var out []machine.Entity
	for ok := it.First(); ok; ok = it.Next() {
		if len(out)%256 == 255 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		e, rest, err := parseEntity(it.Key()[len(lo):])
		if err != nil || len(rest) != 0 {
			return nil, &persistence.CorruptionError{Where: "pending index", Reason: fmt.Sprintf("malformed key %q", it.Key())}
		}
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("pebblestore: pending: %w", err)
	}
	// Keys sort by length-prefixed kind, not by kind: sort as promised.
	slices.SortFunc(out, machine.Entity.Compare)
	return out, nil
}

// readDB gives keyspace reads the database, or ErrClosed; they read the
// latest applied state (a keyspace only changes with its entity's appends,
// which its single owner orders after its reads).
func (s *Store) readDB() (func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, persistence.ErrClosed
	}
	if err := s.failure(); err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	return s.mu.RUnlock, nil
}

// Get implements persistence.Keyspace.
func (s *Store) Get(ctx context.Context, e machine.Entity, key []byte) ([]byte, bool, error) {
	if err := persistence.CheckKeyRead(e, key); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	release, err := s.readDB()
	if err != nil {
		return nil, false, err
	}
	defer release()
	v, closer, err := s.db.Get(keyspaceKey(nil, e, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: get %s key %q: %w", e, key, err)
	}
	out := slices.Clone(v)
	if out == nil {
		out = []byte{}
	}
	closer.Close()
	return out, true, nil
}

// Scan implements persistence.Keyspace.
func (s *Store) Scan(ctx context.Context, e machine.Entity, start, end []byte, limit int) ([]kv.Pair, bool, error) {
	if err := persistence.CheckScanRead(e, start, end, limit); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	release, err := s.readDB()
	if err != nil {
		return nil, false, err
	}
	defer release()
	prefix := keyspaceKey(nil, e, nil)
	upper := kv.PrefixEnd(prefix)
	if end != nil {
		upper = keyspaceKey(nil, e, end)
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: keyspaceKey(nil, e, start), UpperBound: upper})
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: scan %s: %w", e, err)
	}
	defer it.Close()
	var out []kv.Pair
	for ok := it.First(); ok; ok = it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		k := it.Key()
		out = append(out, kv.Pair{Key: slices.Clone(k[len(prefix):]), Value: append([]byte{}, it.Value()...)})
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("pebblestore: scan %s: %w", e, err)
	}
	return out, false, nil
}
