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
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/vfs"

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
	DefaultCheckpointBytes   = 64 << 20 // 64 MiB
	DefaultSegmentBytes      = 64 << 20 // 64 MiB
)

// Options configure a Store. Zero fields take their defaults; Validate
// lists every problem.
type Options struct {
	// Limits bound records, snapshots and requests.
	persistence.Limits
	// MaxQueue bounds in-flight appends, queued or being committed
	// (DefaultMaxQueue). AppendAsync beyond it gets ErrOverloaded.
	MaxQueue int
	// MaxGroupAppends bounds the appends written by one synced log frame
	// (DefaultMaxGroupAppends).
	MaxGroupAppends int
	// PipelineDepth bounds the groups in flight: the committer writes the
	// next group's frame while earlier ones wait for their fsync (default
	// 4). Acknowledgements stay in order.
	PipelineDepth int
	// MaxGroupBytes bounds the encoded bytes of one group
	// (DefaultMaxGroupBytes); a single larger append still goes alone.
	MaxGroupBytes int
	// MaxCachedEntities bounds the committer's cache of entities' last
	// sequence numbers (DefaultMaxCachedEntities); when full it is emptied
	// (once the groups in flight are applied) and refilled from the
	// database and the in-memory tail on demand.
	MaxCachedEntities int
	// RetainJournal keeps records at or below a written snapshot's seq; by
	// default they are deleted in the same group.
	RetainJournal bool
	// CheckpointBytes is the size of the in-memory journal tail (records
	// written since the last checkpoint, about their encoded bytes plus 48
	// per record) that starts a checkpoint writing it to Pebble
	// (DefaultCheckpointBytes).
	CheckpointBytes int
	// MaxTailBytes bounds the in-memory journal tails (the one taking
	// appends, the one being checkpointed, and groups being committed):
	// when they exceed it, the committer waits for the running checkpoint,
	// so appends queue up and, once the queue is full, Append waits and
	// AppendAsync gets ErrOverloaded. Default 4 * CheckpointBytes; it must
	// be at least 2 * CheckpointBytes. A group may take the tails past it
	// by up to MaxGroupBytes.
	MaxTailBytes int
	// SegmentBytes is the size at which the group log moves on to a new
	// segment file (DefaultSegmentBytes). Segments are deleted once a
	// checkpoint covers them.
	SegmentBytes int
	// Pebble, when set, is used to open the database (tuning, a logger, a
	// virtual file system for tests: the group log uses its FS too, which
	// must allow a sync concurrent with a write to the same file, so not
	// Pebble's disk-health-checking wrapper; nil means vfs.Default). The
	// store opens Pebble with DisableWAL set: its own group log, synced
	// before every acknowledgement, is the write-ahead log.
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
	if o.CheckpointBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: CheckpointBytes is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, o.CheckpointBytes, DefaultCheckpointBytes))
	}
	if o.MaxTailBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxTailBytes is %d, must be >= 0 (0 means 4 * CheckpointBytes)", persistence.ErrInvalidOptions, o.MaxTailBytes))
	} else if d := o.withDefaults(); o.CheckpointBytes >= 0 && d.MaxTailBytes < 2*d.CheckpointBytes {
		errs = append(errs, fmt.Errorf("%w: MaxTailBytes is %d, must be at least 2 * CheckpointBytes (%d)", persistence.ErrInvalidOptions, d.MaxTailBytes, 2*d.CheckpointBytes))
	}
	if o.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: SegmentBytes is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, o.SegmentBytes, DefaultSegmentBytes))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields (of the store's own options).
func (o Options) withDefaults() Options {
	if o.MaxGroupBytes == 0 {
		o.MaxGroupBytes = DefaultMaxGroupBytes
	}
	if o.MaxCachedEntities == 0 {
		o.MaxCachedEntities = DefaultMaxCachedEntities
	}
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
	if o.MaxTailBytes == 0 {
		o.MaxTailBytes = 4 * o.CheckpointBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	return o
}

func (o Options) groupConfig() group.Config {
	return group.Config{MaxQueue: o.MaxQueue, MaxGroupAppends: o.MaxGroupAppends, Limits: o.Limits, PipelineDepth: o.PipelineDepth}
}

// DefaultPebbleOptions returns the Pebble options Open uses when
// Options.Pebble is nil: Pebble's defaults with a larger L0. Journal
// records reach Pebble only through checkpoints (sorted tables ingested
// whole); the memtable takes the small writes (metas, the pending index,
// keyspaces), so it is kept small (4 MiB): a 64 MiB memtable of pending
// index entries set and deleted cost 3-5% more CPU per transition in
// skiplist searches that miss the cache, and the store's own benchmark
// (1,024 entities) went from 0.71 M to 0.78-0.81 M appends/s with 4 MiB.
func DefaultPebbleOptions() *pebble.Options {
	return &pebble.Options{
		MemTableSize:                4 << 20,
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
	fs   vfs.FS
	po   *pebble.Options // as the database was opened with
	log  *segLog         // the group log in <dir>/log

	mu     sync.RWMutex // readers hold it while using db; Close takes it
	closed bool

	closeMu   sync.Mutex // serializes Close
	closeDone bool

	// failed is the first failed write or sync: after it the database's
	// state is unknown and every later call fails with it.
	failed atomic.Pointer[error]

	// Owned by the committer goroutine. The cache is updated as a group is
	// staged: if the group's write then fails the store is failed for
	// good (see failed), so it never needs rolling back.
	cache  map[machine.Entity]meta
	staged staging // the group being built (see commit)
	frame  []byte  // the group's log frame (reused)

	// viewMu makes a group's effect (its Pebble batch and its records in
	// the tail) appear at once to Load and the committer's lookups, and
	// guards the tails. Load holds it (read) while it takes the entity's
	// tail records and a Pebble snapshot.
	viewMu     sync.RWMutex
	active     *tail  // takes the records of applied groups
	frozen     *tail  // being checkpointed, or nil
	frozenPos  logPos // the log position after the frozen tail's last group
	appliedPos logPos // the log position after the last applied group

	// frozenMu guards the frozen tail's contents against cuts (truncating
	// snapshots) while the checkpoint copies them into its batch; cuts
	// made after the copy are applied again after the batch (lateCuts).
	// Lock order: frozenMu, then viewMu.
	frozenMu sync.Mutex
	copying  bool
	lateCuts []truncation

	tailBytes atomic.Int64 // bytes in tails and in groups being committed
	inflight  atomic.Int64 // groups written but not yet applied
	roomMu    sync.Mutex   // with roomCond: the committer waits for tail room
	roomCond  *sync.Cond

	ckptKick chan struct{} // wakes the checkpointer (capacity 1)
	ckptStop chan struct{}
	ckptDone chan struct{}

	// Set by recover, for tests: where replay started, how many frames it
	// replayed; and, for tests, a function the checkpoint calls at named
	// points ("copied": the batch is built; "flushed": it is durable, the
	// frozen tail not yet dropped).
	replayedFrom   logPos
	replayedFrames int
	testHook       func(point string)
	checkpoints    atomic.Int64 // completed checkpoints
}

var (
	_ persistence.Store    = (*Store)(nil)
	_ persistence.Keyspace = (*Store)(nil)
)

// Open opens (creating if needed) the store in dir, replaying the group
// log written since the last checkpoint.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	var po *pebble.Options
	if opts.Pebble != nil {
		po = opts.Pebble.Clone()
	} else {
		po = DefaultPebbleOptions()
	}
	po.DisableWAL = true // the group log is the write-ahead log
	if po.FS == nil {
		// Not Pebble's default (disk-health checking) wrapper: the log
		// syncs a segment while the next frame is written to it.
		po.FS = vfs.Default
	}
	po.EnsureDefaults() // as Open would; checkpoints write SSTs with them
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{
		opts:     opts,
		dir:      dir,
		db:       db,
		fs:       po.FS,
		po:       po,
		cache:    make(map[machine.Entity]meta),
		active:   newTail(),
		ckptKick: make(chan struct{}, 1),
		ckptStop: make(chan struct{}),
		ckptDone: make(chan struct{}),
	}
	s.roomCond = sync.NewCond(&s.roomMu)
	if err := s.recover(); err != nil {
		if s.log != nil {
			s.log.close()
		}
		db.Close()
		return nil, err
	}
	s.eng = group.New(opts.groupConfig(), s.commit)
	go s.checkpointer()
	return s, nil
}

// recover replays the frames written after the last checkpoint straight
// into Pebble, starts a new log segment and checkpoints (so the log
// before it, including a torn last frame, is no longer needed).
func (s *Store) recover() error {
	fs := s.fs
	logDir := fs.PathJoin(s.dir, logDirName)
	if err := fs.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("pebblestore: creating %s: %w", logDir, err)
	}
	if err := syncDir(fs, s.dir); err != nil {
		return fmt.Errorf("pebblestore: syncing %s: %w", s.dir, err)
	}
	from, err := readMarker(s.db)
	if err != nil {
		return err
	}
	s.replayedFrom = from
	segs, err := replayLog(fs, logDir, from, func(payload []byte, _ logPos) error {
		s.replayedFrames++
		b := s.db.NewBatch()
		defer b.Close()
		if err := applyFrame(b, payload); err != nil {
			return err
		}
		return s.db.Apply(b, pebble.NoSync)
	})
	if err != nil {
		var ce *persistence.CorruptionError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("pebblestore: replaying the log: %w", err)
	}
	next := from.seg + 1
	if len(segs) > 0 {
		next = max(next, segs[len(segs)-1]+1)
	}
	// The marker moves to the start of a new segment (and Pebble is
	// flushed) before that segment exists: a crash in between leaves a
	// marker past every old segment and no segment to replay, and the old
	// ones, including any torn frame, are never read again.
	start := logPos{seg: next}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(markerKey(), encodeMarker(start), nil); err != nil {
		return err
	}
	if err := s.db.Apply(b, pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: recovery checkpoint: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("pebblestore: recovery checkpoint: %w", err)
	}
	f, err := createSegment(fs, logDir, next)
	if err != nil {
		return fmt.Errorf("pebblestore: creating a log segment: %w", err)
	}
	s.log = newSegLog(fs, logDir, int64(s.opts.SegmentBytes), f, next, start)
	s.appliedPos = start
	if err := removeSegmentsBefore(fs, logDir, next); err != nil {
		return fmt.Errorf("pebblestore: removing old log segments: %w", err)
	}
	return nil
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

// Close implements persistence.Store: queued appends are committed, the
// journal tail is checkpointed into Pebble, then the database is closed.
// (A store that failed skips the checkpoint: the next Open replays the
// log.)
func (s *Store) Close() error {
	s.eng.Close()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closeDone {
		return nil
	}
	s.closeDone = true
	close(s.ckptStop)
	<-s.ckptDone
	var errs []error
	if s.failure() == nil {
		// A checkpoint of a tail frozen before the stop, then of the rest.
		if err := s.checkpoint(); err != nil {
			errs = append(errs, s.fail(err))
		} else {
			s.viewMu.Lock()
			s.frozen, s.frozenPos, s.active = s.active, s.appliedPos, newTail()
			s.viewMu.Unlock()
			if err := s.checkpoint(); err != nil {
				errs = append(errs, s.fail(err))
			}
		}
	}
	if err := s.log.close(); err != nil {
		errs = append(errs, fmt.Errorf("pebblestore: close log: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pebblestore: close: %w", err))
	}
	return errors.Join(errs...)
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
		switch _, closer, err := r.Get(pendingKey(m.shard, e)); {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return meta{}, fmt.Errorf("pebblestore: reading the pending index of %s: %w", e, err)
		default:
			closer.Close()
			m.pending = true
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
// holds the effect of earlier groups (maybe not yet applied) and of this
// group's earlier appends; the database and the tails hold the effect of
// applied groups. An entity missing from the cache is in no group still
// being applied (see commit).
func (s *Store) lookup(e machine.Entity) (meta, error) {
	if m, ok := s.cache[e]; ok {
		return m, nil
	}
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	m, err := readMeta(s.db, e)
	if err != nil {
		return meta{}, err
	}
	m.last = max(m.last, tailLast(s.frozen.records(e), s.active.records(e)))
	return m, nil
}

// tailLast returns the last seq in the tails (0 if none).
func tailLast(frozen, active tailView) uint64 {
	if len(active.recs) > 0 {
		return active.recs[len(active.recs)-1].seq
	}
	if len(frozen.recs) > 0 {
		return frozen.recs[len(frozen.recs)-1].seq
	}
	return 0
}

func (s *Store) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err as the store's failure (the first one wins) and
// returns the store's failure.
func (s *Store) fail(err error) error {
	s.failed.CompareAndSwap(nil, &err)
	s.roomMu.Lock()
	s.roomCond.Broadcast()
	s.roomMu.Unlock()
	return s.failure()
}

// groupWork is what a written group still has to do once its frame is
// durable: apply its Pebble writes and add its records to the tail.
type groupWork struct {
	end    logPos
	batch  *pebble.Batch // nil when the group writes nothing but records
	recs   []stagedRecord
	truncs []truncation
	bytes  int64
}

// commit writes one group as one frame of the group log. It runs on the
// engine's committer goroutine only. The returned wait syncs the log and
// then applies the group (its Pebble batch, its records to the in-memory
// tail), so Load sees a group only once it is durable; the engine
// acknowledges the group after wait, in order.
//
// The group's writes are staged first; the Pebble batch gets them in key
// order (memtable inserts then start from a neighbour).
func (s *Store) commit(ops []*group.Op) (carry []*group.Op, wait func() error) {
	if err := s.failure(); err != nil {
		for _, op := range ops {
			op.Err = err
		}
		return nil, nil
	}
	if len(s.cache)+len(ops) > s.opts.MaxCachedEntities {
		// Only between groups and once every written group is applied:
		// lookup reads the database and the tails on a miss.
		for s.inflight.Load() > 0 {
			time.Sleep(100 * time.Microsecond)
		}
		clear(s.cache)
	}
	if err := s.waitForTailRoom(); err != nil {
		for _, op := range ops {
			op.Err = err
		}
		return nil, nil
	}
	st := &s.staged
	st.reset()
	st.recs = make([]stagedRecord, 0, len(ops)) // handed over to the group's apply
	bytes := 0
	written := 0
	for i, op := range ops {
		if written > 0 && bytes+op.Enc.Bytes > s.opts.MaxGroupBytes {
			// The rest waits for the next group, in order.
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
	failAll := func(err error) {
		err = s.fail(fmt.Errorf("pebblestore: commit: %w", err))
		for _, op := range ops {
			if op.Err == nil {
				op.Err = err
			}
		}
	}
	w := &groupWork{recs: st.recs, truncs: st.truncs}
	for _, r := range w.recs {
		w.bytes += int64(len(r.val)) + tailRecOverhead
	}
	if !st.empty() {
		w.batch = s.db.NewBatch()
		if err := st.writeTo(w.batch); err != nil {
			w.batch.Close()
			failAll(err)
			return carry, nil
		}
	}
	s.frame = st.appendFrame(s.frame[:0])
	end, err := s.log.append(s.frame)
	if err == nil {
		s.log.syncAhead()
	}
	if cap(s.frame) > 4<<20 {
		s.frame = nil // do not keep a huge group's buffer
	}
	if err != nil {
		// The cache already has the group's appends, and the log may hold
		// part of the frame: fail the store and every written append.
		if w.batch != nil {
			w.batch.Close()
		}
		failAll(err)
		return carry, nil
	}
	w.end = end
	s.tailBytes.Add(w.bytes)
	s.inflight.Add(1)
	return carry, func() error {
		defer s.inflight.Add(-1)
		if err := s.log.syncTo(end); err != nil {
			if w.batch != nil {
				w.batch.Close()
			}
			return s.fail(fmt.Errorf("pebblestore: commit: %w", err))
		}
		if err := s.apply(w); err != nil {
			return s.fail(fmt.Errorf("pebblestore: commit: %w", err))
		}
		return nil
	}
}

// waitForTailRoom holds the committer while the tails are over
// MaxTailBytes (a checkpoint is running and will free its tail).
// It returns the store's failure if it failed meanwhile.
func (s *Store) waitForTailRoom() error {
	if s.tailBytes.Load() > int64(s.opts.MaxTailBytes) {
		s.roomMu.Lock()
		for s.tailBytes.Load() > int64(s.opts.MaxTailBytes) && s.failure() == nil {
			s.roomCond.Wait()
		}
		s.roomMu.Unlock()
	}
	return s.failure()
}

// apply makes a durable group visible: its Pebble batch and its records
// in the active tail, at once for Load. Truncating snapshots cut the
// tails too (before anything can checkpoint the cut records again).
func (s *Store) apply(w *groupWork) error {
	if len(w.truncs) > 0 {
		s.frozenMu.Lock()
		defer s.frozenMu.Unlock()
	}
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if w.batch != nil {
		err := s.db.Apply(w.batch, pebble.NoSync)
		w.batch.Close()
		if err != nil {
			return err
		}
	}
	for _, r := range w.recs {
		s.active.add(r.e, r.seq, r.val)
	}
	s.active.bytes += w.bytes
	for _, t := range w.truncs {
		s.active.cut(t.e, t.end)
		if s.frozen != nil {
			s.frozen.cut(t.e, t.end)
			if s.copying {
				s.lateCuts = append(s.lateCuts, t)
			}
		}
	}
	s.appliedPos = w.end
	s.maybeFreeze()
	return nil
}

// maybeFreeze starts a checkpoint of the active tail when it is big
// enough and none is running. viewMu is held.
func (s *Store) maybeFreeze() {
	if s.frozen != nil || s.active.bytes < int64(s.opts.CheckpointBytes) {
		return
	}
	s.frozen, s.frozenPos, s.active = s.active, s.appliedPos, newTail()
	select {
	case s.ckptKick <- struct{}{}:
	default:
	}
}

// checkpointer runs checkpoints until Close stops it.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	for {
		select {
		case <-s.ckptStop:
			return
		case <-s.ckptKick:
		}
		if s.failure() != nil {
			continue
		}
		if err := s.checkpoint(); err != nil {
			s.fail(err)
		}
	}
}

// checkpoint writes the frozen tail's records, with the marker naming
// the log position the tail ends at, into one sorted SST and ingests it
// into Pebble, after flushing Pebble's memtables: once the marker is
// durable, so is everything the log holds before its position. Then it
// drops the frozen tail and the log segments wholly before that
// position. Replaying the log after the marker over that state gives the
// state after the log: every write is a blind set or delete.
//
// (Writing the SST directly skips a memtable or large-batch copy of the
// records and Pebble's flush of it.)
func (s *Store) checkpoint() error {
	s.viewMu.RLock()
	fz, pos := s.frozen, s.frozenPos
	s.viewMu.RUnlock()
	if fz == nil {
		return nil
	}
	// The entities' record slices, taken under frozenMu: a cut replaces
	// an entity's slice, so these stay as they are; cuts made from now on
	// are applied again after the ingestion.
	s.frozenMu.Lock()
	es, prefixes := fz.sortedEntities()
	recs := make([][]tailRec, len(es))
	for i, e := range es {
		recs[i] = fz.ents[e].recs
	}
	chunks := fz.chunks // complete: nothing is added to a frozen tail
	s.copying, s.lateCuts = true, nil
	s.frozenMu.Unlock()
	err := s.ingestCheckpoint(pos, prefixes, recs, chunks)
	s.frozenMu.Lock()
	late := s.lateCuts
	s.copying, s.lateCuts = false, nil
	s.frozenMu.Unlock()
	if err != nil {
		return fmt.Errorf("pebblestore: checkpoint: %w", err)
	}
	if len(late) > 0 {
		// Snapshots cut these records after they were taken: delete them
		// again, after the ingested ones. (A crash before these deletes are
		// flushed replays the snapshots' frames, which come after pos.)
		lb := s.db.NewBatch()
		defer lb.Close()
		for _, t := range late {
			if err := lb.DeleteRange(journalKey(t.e, 0), journalKey(t.e, t.end), nil); err != nil {
				return fmt.Errorf("pebblestore: checkpoint: %w", err)
			}
		}
		if err := s.db.Apply(lb, pebble.NoSync); err != nil {
			return fmt.Errorf("pebblestore: checkpoint: %w", err)
		}
	}
	s.hook("flushed")
	s.viewMu.Lock()
	s.frozen = nil
	s.tailBytes.Add(-fz.bytes)
	s.maybeFreeze() // appends may have waited for this one
	s.viewMu.Unlock()
	s.roomMu.Lock()
	s.roomCond.Broadcast()
	s.roomMu.Unlock()
	if err := removeSegmentsBefore(s.fs, s.log.dir, pos.seg); err != nil {
		return fmt.Errorf("pebblestore: removing old log segments: %w", err)
	}
	s.checkpoints.Add(1)
	return nil
}

// checkpointSST is the file a checkpoint writes before ingesting it.
const checkpointSST = "checkpoint.sst"

// ingestCheckpoint writes the marker and the records to an SST, flushes
// Pebble and ingests the SST.
func (s *Store) ingestCheckpoint(pos logPos, prefixes [][]byte, recs [][]tailRec, chunks []chunk) error {
	path := s.fs.PathJoin(s.log.dir, checkpointSST)
	f, err := s.fs.Create(path)
	if err != nil {
		return err
	}
	defer s.fs.Remove(path) // ingestion linked or copied it
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), s.po.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat()))
	err = w.Set(markerKey(), encodeMarker(pos))
	var key []byte
	for i := 0; i < len(prefixes) && err == nil; i++ {
		v := tailView{recs: recs[i], chunks: chunks}
		for _, r := range v.recs {
			key = binary.BigEndian.AppendUint64(append(key[:0], prefixes[i]...), r.seq)
			if err = w.Set(key, v.val(r)); err != nil {
				break
			}
		}
	}
	if cerr := w.Close(); err == nil {
		err = cerr // Close syncs the file
	}
	if err != nil {
		return err
	}
	s.hook("copied")
	// Everything applied before the freeze becomes durable before the
	// marker does.
	if err := s.db.Flush(); err != nil {
		return err
	}
	return s.db.Ingest([]string{path})
}

func (s *Store) hook(point string) {
	if s.testHook != nil {
		s.testHook(point)
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
		st.record(e, seq, enc)
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
			st.truncate(e, min(truncateTo, req.ExpectedSeq)+1)
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return persistence.Loaded{}, persistence.ErrClosed
	}
	if err := s.failure(); err != nil {
		return persistence.Loaded{}, err
	}
	// The entity's records in the tails and a Pebble snapshot, taken
	// together: a group's effect is in both or neither.
	s.viewMu.RLock()
	frozen, active := s.frozen.records(e), s.active.records(e)
	r := s.db.NewSnapshot()
	s.viewMu.RUnlock()
	defer r.Close()
	m, err := readMeta(r, e)
	if err != nil {
		return persistence.Loaded{}, err
	}
	m.last = max(m.last, tailLast(frozen, active))
	if m.last == 0 {
		return persistence.Loaded{}, nil
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
	// Records before the tails are in Pebble (checkpointed); the tails
	// have the newer ones (some may be in Pebble too, while a checkpoint
	// finishes: the tail's copy is used).
	upper := m.last + 1
	for _, t := range []tailView{frozen, active} {
		if len(t.recs) > 0 {
			upper = min(upper, t.recs[0].seq)
		}
	}
	out.Records = make([]machine.Record, 0, m.last-m.snapSeq)
	next := m.snapSeq + 1 // the records wanted are next..m.last
	if upper > next {
		it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{
			LowerBound: journalKey(e, next),
			UpperBound: journalKey(e, upper),
		})
		if err != nil {
			return persistence.Loaded{}, fmt.Errorf("pebblestore: load %s: %w", e, err)
		}
		defer it.Close()
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
			next = seq + 1
		}
		if err := it.Error(); err != nil {
			return persistence.Loaded{}, fmt.Errorf("pebblestore: load %s: %w", e, err)
		}
	}
	for _, t := range []tailView{frozen, active} {
		for _, tr := range t.recs {
			if tr.seq < next {
				continue // before the snapshot, or already taken
			}
			rec, err := persistence.DecodeRecord(e, tr.seq, slices.Clone(t.val(tr)))
			if err != nil {
				return persistence.Loaded{}, err
			}
			out.Records = append(out.Records, rec)
			next = tr.seq + 1
		}
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
