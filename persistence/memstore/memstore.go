package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/internal/group"
)

// ErrCrashed is the outcome of appends that were queued but not yet
// durable when [Store.Crash] ran. It wraps persistence.ErrClosed.
var ErrCrashed = fmt.Errorf("%w (memstore: simulated crash)", persistence.ErrClosed)

// Options configure a Store. The zero value is valid: zero fields take
// their defaults.
type Options struct {
	// Limits bound records, snapshots and requests.
	persistence.Limits
	// MaxQueue bounds in-flight appends (default 16384).
	MaxQueue int
	// MaxGroupAppends bounds the appends of one commit group (default 1024).
	MaxGroupAppends int
	// RetainJournal keeps records at or below a written snapshot's seq;
	// by default they are deleted in the same commit.
	RetainJournal bool
}

// Validate reports every problem at once, each wrapping
// persistence.ErrInvalidOptions.
func (o Options) Validate() error { return o.groupConfig().Validate() }

func (o Options) groupConfig() group.Config {
	return group.Config{MaxQueue: o.MaxQueue, MaxGroupAppends: o.MaxGroupAppends, Limits: o.Limits}
}

// Store is an in-memory, crashable persistence.Store.
type Store struct {
	opts Options

	mu       sync.Mutex
	resumed  *sync.Cond // signalled on Resume and Crash
	entities map[machine.Entity]*entity
	eng      *group.Engine
	epoch    uint64 // bumped by Crash; a commit of an older epoch is dropped
	closed   bool
	paused   bool
	failN    int
	failErr  error
	failAll  error
	// Injected read failures of keyspaces (database-backed state).
	readFailN   int
	readFailErr error
	readFailAll error
	reads       uint64
}

type entity struct {
	last    uint64
	epoch   uint64 // the epoch of the last append (the fence)
	journal map[uint64][]byte
	snap    []byte
	snapSeq uint64
	shard   uint32
	pending bool
	keys    *kv.Mem // the entity's keyspace (nil until written)
}

var (
	_ persistence.Store    = (*Store)(nil)
	_ persistence.Keyspace = (*Store)(nil)
)

// New returns an empty store with default options.
func New() *Store {
	s, _ := Open(Options{}) // the zero Options are valid
	return s
}

// Open returns an empty store, or the problems with opts.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, entities: make(map[machine.Entity]*entity)}
	s.resumed = sync.NewCond(&s.mu)
	s.eng = s.newEngine()
	return s, nil
}

func (s *Store) newEngine() *group.Engine {
	epoch := s.epoch
	return group.New(s.opts.groupConfig(), func(ops []*group.Op) ([]*group.Op, func() error) {
		s.commit(epoch, ops)
		return nil, nil
	})
}

func (s *Store) engine() (*group.Engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, persistence.ErrClosed
	}
	return s.eng, nil
}

// commit makes a group durable: all of it under one lock acquisition, so
// readers see all or none of it.
func (s *Store) commit(epoch uint64, ops []*group.Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.paused && s.epoch == epoch {
		s.resumed.Wait()
	}
	fail := func(err error) {
		for _, op := range ops {
			op.Err = err
		}
	}
	switch {
	case s.epoch != epoch:
		fail(ErrCrashed)
		return
	case s.failAll != nil:
		fail(s.failAll)
		return
	case s.failN > 0:
		s.failN--
		fail(s.failErr)
		return
	}
	for _, op := range ops {
		op.Err = s.apply(op)
	}
}

func (s *Store) apply(op *group.Op) error {
	req := &op.Req
	ent := s.entities[req.Entity]
	var last uint64
	if ent != nil {
		last = ent.last
	}
	if last != req.ExpectedSeq {
		return &persistence.ConflictError{Entity: req.Entity, ExpectedSeq: req.ExpectedSeq, ActualSeq: last, Known: true}
	}
	if ent != nil && req.Epoch < ent.epoch {
		return &persistence.ConflictError{Entity: req.Entity, ExpectedSeq: req.ExpectedSeq, ActualSeq: last, Known: true,
			Fenced: true, RequestEpoch: req.Epoch, StoredEpoch: ent.epoch}
	}
	if ent == nil {
		ent = &entity{journal: make(map[uint64][]byte)}
		s.entities[req.Entity] = ent
	}
	ent.epoch = req.Epoch
	for i, b := range op.Enc.Records {
		ent.journal[req.ExpectedSeq+1+uint64(i)] = b
	}
	ent.last = req.LastSeq()
	if len(op.Enc.Writes) > 0 {
		if ent.keys == nil {
			ent.keys = kv.NewMem()
		}
		ent.keys.Apply(op.Enc.Writes)
	}
	if req.Snapshot != nil {
		ent.snap, ent.snapSeq = op.Enc.Snapshot, req.Snapshot.Seq
		if !s.opts.RetainJournal {
			for seq := range ent.journal {
				if seq <= ent.snapSeq {
					delete(ent.journal, seq)
				}
			}
		}
	}
	ent.shard, ent.pending = req.Shard, req.Pending
	return nil
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, e machine.Entity) (persistence.Loaded, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Loaded{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return persistence.Loaded{}, persistence.ErrClosed
	}
	ent := s.entities[e]
	if ent == nil {
		s.mu.Unlock()
		return persistence.Loaded{}, nil
	}
	// Copy under the lock; decode outside it.
	last, snapSeq := ent.last, ent.snapSeq
	snap := slices.Clone(ent.snap)
	raw := make([][]byte, 0, last-snapSeq)
	seqs := make([]uint64, 0, last-snapSeq)
	for seq := snapSeq + 1; seq <= last; seq++ {
		if b, ok := ent.journal[seq]; ok {
			raw = append(raw, slices.Clone(b))
			seqs = append(seqs, seq)
		}
	}
	s.mu.Unlock()

	out := persistence.Loaded{LastSeq: last}
	if snap != nil {
		sn, err := persistence.DecodeSnapshot(e, snapSeq, snap)
		if err != nil {
			return persistence.Loaded{}, err
		}
		out.Snapshot = sn
	}
	out.Records = make([]machine.Record, len(raw))
	for i, b := range raw {
		r, err := persistence.DecodeRecord(e, seqs[i], b)
		if err != nil {
			return persistence.Loaded{}, err
		}
		out.Records[i] = r
	}
	if err := persistence.CheckJournal(e, snapSeq, last, out.Records); err != nil {
		return persistence.Loaded{}, err
	}
	return out, nil
}

// Append implements persistence.Store.
func (s *Store) Append(ctx context.Context, req persistence.AppendRequest) error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	return eng.Append(ctx, req)
}

// AppendAsync implements persistence.Store.
func (s *Store) AppendAsync(req persistence.AppendRequest, done func(error)) {
	eng, err := s.engine()
	if err != nil {
		go done(err)
		return
	}
	eng.AppendAsync(req, done)
}

// Pending implements persistence.Store.
func (s *Store) Pending(ctx context.Context, shard uint32) ([]machine.Entity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, persistence.ErrClosed
	}
	var out []machine.Entity
	for e, ent := range s.entities {
		if ent.pending && ent.shard == shard {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, machine.Entity.Compare)
	return out, nil
}

// Close implements persistence.Store: queued appends are committed first.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	eng := s.eng
	s.mu.Unlock()
	eng.Close()
	return nil
}

// Crash simulates a process crash and restart: appends queued but not yet
// committed are dropped and fail with ErrCrashed (a commit held by Pause
// is dropped too); everything already committed, in particular everything
// acknowledged, survives. Afterwards the store is usable again, also if it
// had been closed, with the faults and the pause cleared.
func (s *Store) Crash() {
	s.mu.Lock()
	s.epoch++
	s.paused = false
	s.failAll, s.failErr, s.failN = nil, nil, 0
	s.readFailAll, s.readFailErr, s.readFailN = nil, nil, 0
	s.resumed.Broadcast()
	old := s.eng
	s.eng = s.newEngine()
	s.closed = false
	s.mu.Unlock()
	old.Abort(ErrCrashed)
}

// Pause holds every commit until Resume or Crash: appends queue up (and
// AppendAsync overloads once MaxQueue are in flight), as with a stalled
// disk.
func (s *Store) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
}

// Resume lets commits proceed after Pause.
func (s *Store) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = false
	s.resumed.Broadcast()
}

// FailWrites makes every commit fail with err (nothing of it is written)
// until FailWrites(nil).
func (s *Store) FailWrites(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAll = err
}

// FailNextWrites makes the next n commits fail with err. A commit is one
// group: every append in it fails.
func (s *Store) FailNextWrites(n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failErr = n, err
}

// ErrNotFound is returned by the corruption injectors when there is
// nothing stored to damage.
var ErrNotFound = errors.New("memstore: not found")

// CorruptRecord flips a byte in the stored record seq of e, as a bad disk
// would; Load must then report a *persistence.CorruptionError.
func (s *Store) CorruptRecord(e machine.Entity, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent := s.entities[e]
	if ent == nil || ent.journal[seq] == nil {
		return fmt.Errorf("%w: record %s seq %d", ErrNotFound, e, seq)
	}
	b := slices.Clone(ent.journal[seq])
	b[len(b)/2] ^= 0x40
	ent.journal[seq] = b
	return nil
}

// CorruptSnapshot flips a byte in e's stored snapshot.
func (s *Store) CorruptSnapshot(e machine.Entity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent := s.entities[e]
	if ent == nil || ent.snap == nil {
		return fmt.Errorf("%w: snapshot of %s", ErrNotFound, e)
	}
	b := slices.Clone(ent.snap)
	b[len(b)/2] ^= 0x40
	ent.snap = b
	return nil
}

// DropRecord deletes the stored record seq of e, leaving a gap in its
// journal.
func (s *Store) DropRecord(e machine.Entity, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent := s.entities[e]
	if ent == nil || ent.journal[seq] == nil {
		return fmt.Errorf("%w: record %s seq %d", ErrNotFound, e, seq)
	}
	delete(ent.journal, seq)
	return nil
}

// StoredSeqs lists the journal sequence numbers stored for e, ascending
// (to observe truncation).
func (s *Store) StoredSeqs(e machine.Entity) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent := s.entities[e]
	if ent == nil {
		return nil
	}
	out := make([]uint64, 0, len(ent.journal))
	for seq := range ent.journal {
		out = append(out, seq)
	}
	slices.Sort(out)
	return out
}

// ErrReadFailed is what injected read failures return by default.
var ErrReadFailed = errors.New("memstore: injected read failure")

// readCheck runs the checks every keyspace read makes; the lock is held.
func (s *Store) readCheck(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return persistence.ErrClosed
	}
	s.reads++
	switch {
	case s.readFailAll != nil:
		return s.readFailAll
	case s.readFailN > 0:
		s.readFailN--
		return s.readFailErr
	}
	return nil
}

// Get implements persistence.Keyspace.
func (s *Store) Get(ctx context.Context, e machine.Entity, key []byte) ([]byte, bool, error) {
	if err := persistence.CheckKeyRead(e, key); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readCheck(ctx); err != nil {
		return nil, false, err
	}
	ent := s.entities[e]
	if ent == nil || ent.keys == nil {
		return nil, false, nil
	}
	v, ok, _ := ent.keys.Get(key)
	return slices.Clone(v), ok, nil
}

// Scan implements persistence.Keyspace.
func (s *Store) Scan(ctx context.Context, e machine.Entity, start, end []byte, limit int) ([]kv.Pair, bool, error) {
	if err := persistence.CheckScanRead(e, start, end, limit); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readCheck(ctx); err != nil {
		return nil, false, err
	}
	ent := s.entities[e]
	if ent == nil || ent.keys == nil {
		return nil, false, nil
	}
	pairs, more, err := ent.keys.Scan(start, end, limit)
	for i := range pairs {
		pairs[i] = kv.Pair{Key: slices.Clone(pairs[i].Key), Value: slices.Clone(pairs[i].Value)}
	}
	return pairs, more, err
}

// FailReads makes every keyspace read fail with err (nil: ErrReadFailed)
// until StopFailingReads or Crash, as with an unreachable database.
func (s *Store) FailReads(err error) {
	if err == nil {
		err = ErrReadFailed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readFailAll = err
}

// FailNextReads makes the next n keyspace reads fail with err (nil:
// ErrReadFailed).
func (s *Store) FailNextReads(n int, err error) {
	if err == nil {
		err = ErrReadFailed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readFailN, s.readFailErr = n, err
}

// StopFailingReads clears injected read failures.
func (s *Store) StopFailingReads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readFailAll, s.readFailErr, s.readFailN = nil, nil, 0
}

// Reads returns the number of keyspace reads served or failed so far.
func (s *Store) Reads() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}
