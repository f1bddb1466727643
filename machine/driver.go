package machine

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/phasm-go/phasm/machine/kv"
)

// Status says what a step did with its input.
type Status uint8

const (
	// Accepted: the transition succeeded; a journal record was produced.
	Accepted Status = iota + 1
	// Rejected: the machine returned an error; the state is unchanged. A
	// record was produced only if the input carried a request ID.
	Rejected
	// Duplicate: the request ID was seen before; Err is the original reply
	// and nothing ran.
	Duplicate
	// Stale: a completion for an action that is not outstanding (a
	// duplicate, a second result, or an ID never emitted); it was dropped.
	Stale
)

// String returns the name.
func (s Status) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Rejected:
		return "rejected"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	default:
		return fmt.Sprintf("Status(%d)", uint8(s))
	}
}

// Outcome describes one step.
type Outcome struct {
	Status Status
	// Seq is the entity's sequence number after the step.
	Seq uint64
	// Err is the machine's error (Rejected) or the original reply
	// (Duplicate, nil when the original was accepted).
	Err error
	// Journaled reports that the step appended a record to the effects.
	Journaled bool
	// RolledBack reports that the machine mutated the state before
	// returning an error, so the driver had to restore the committed state.
	// That is a bug in the machine (rule 1); the runtime survives it.
	RolledBack bool
}

// Effects accumulates what steps produce, in order, for the caller to carry
// out: first make Records durable, then reply, then run Tracked actions
// and hand Untracked ones to their sinks. One Effects may collect a whole
// batch of steps. Record payloads live in memory owned by the Effects and
// are valid until Reset.
type Effects[A, U any] struct {
	Records   []Record
	Tracked   []Tracked[A]
	Untracked []U
	arena     []byte
}

// Reset empties the effects, keeping their memory. Records returned before
// are invalid afterwards.
func (fx *Effects[A, U]) Reset() {
	fx.Records = fx.Records[:0]
	clear(fx.Tracked)
	clear(fx.Untracked)
	fx.Tracked = fx.Tracked[:0]
	fx.Untracked = fx.Untracked[:0]
	fx.arena = fx.arena[:0]
}

// Stats counts what a driver has done since it was created.
type Stats struct {
	Accepted   uint64 // steps accepted
	Rejected   uint64 // steps rejected by the machine
	Duplicates uint64 // inputs answered from the request window
	Stale      uint64 // completions dropped as not outstanding
	RolledBack uint64 // rejections that mutated state first
	Failed     uint64 // steps failed by the driver (panics, limits)
	Replayed   uint64 // journal records replayed
}

// RestoreReport describes a call to Driver.Restore.
type RestoreReport struct {
	// Known reports that the driver knew the outstanding set before Restore
	// (from a snapshot and the journal), so Missing and Unknown are
	// meaningful.
	Known bool
	// Missing lists outstanding IDs Restore did not re-emit (rule 7).
	Missing []ActionID
	// Unknown lists IDs Restore emitted that were not outstanding (rule 4).
	Unknown []ActionID
	// UntrackedIgnored counts untracked actions Restore emitted; they are
	// never re-driven, so the driver drops them.
	UntrackedIgnored int
}

// Complete reports whether Restore re-emitted exactly the known set.
func (r RestoreReport) Complete() bool {
	return len(r.Missing) == 0 && len(r.Unknown) == 0 && r.UntrackedIgnored == 0
}

// Driver runs one entity's machine: the pure core of the runtime. It holds
// the entity's live state, sequence number, outstanding tracked actions and
// request window, applies inputs one at a time, and returns what must
// happen as data. It performs no I/O, reads no clock and starts no
// goroutines; it is not safe for concurrent use (one entity, one caller).
type Driver[S, I, A, R, U any] struct {
	k      *Kind[S, I, A, R, U]
	entity Entity
	state  S
	seq    uint64

	// The committed state: a copy (when the kind has Clone) or its encoding.
	// With Clone, committedBuf caches the copy's encoding once a rejection
	// needed it (committedEnc), until the next commit.
	committed    S
	committedBuf []byte
	committedEnc bool
	scratch      []byte
	// value holds the input being encoded or decoded: handing a codec
	// &in.Value would move every Step's in to the heap. It is cleared
	// after use, so it keeps nothing alive.
	value I

	out              Actions[A, U]
	outstanding      outstandingSet[A]
	outstandingKnown bool
	window           requestWindow
	sinceDigest      int
	stats            Stats

	// Database-backed state (nil for plain state): the view bound into the
	// state, the committed keyspace it reads, and the last accepted step's
	// journaled write set.
	vs      ViewState
	view    *kv.View
	src     kv.Source
	changes []byte
}

// NewDriver returns a driver for a fresh entity (no history): initial state,
// sequence number 0, nothing outstanding.
func (k *Kind[S, I, A, R, U]) NewDriver(id string) (*Driver[S, I, A, R, U], error) {
	d := &Driver[S, I, A, R, U]{k: k, entity: Entity{Kind: k.name, ID: id}}
	d.out.limit = k.maxActions
	d.window.max = k.window
	k.InitState(&d.state)
	d.initView()
	d.outstandingKnown = true
	if err := d.commit(); err != nil {
		return nil, err
	}
	return d, nil
}

// Entity returns the entity the driver runs.
func (d *Driver[S, I, A, R, U]) Entity() Entity { return d.entity }

// Kind returns the driver's kind.
func (d *Driver[S, I, A, R, U]) Kind() *Kind[S, I, A, R, U] { return d.k }

// State returns the live state for reading (queries, invariant checks).
// Callers must not modify it.
func (d *Driver[S, I, A, R, U]) State() *S { return &d.state }

// Seq returns the sequence number of the last record applied.
func (d *Driver[S, I, A, R, U]) Seq() uint64 { return d.seq }

// Stats returns the driver's counters.
func (d *Driver[S, I, A, R, U]) Stats() Stats { return d.stats }

// Trim releases the driver's scratch memory, for an entity that goes idle;
// the next step allocates it again. Action buffers of up to trimKeep
// actions are only emptied: an entity that goes idle after every input
// (a busy node with many entities) would otherwise allocate them on every
// step.
func (d *Driver[S, I, A, R, U]) Trim() {
	d.scratch = nil
	if cap(d.out.tracked) > trimKeep || cap(d.out.untracked) > trimKeep {
		d.out = Actions[A, U]{limit: d.out.limit}
		return
	}
	d.out.Reset()
}

// trimKeep is the largest action buffer Trim keeps.
const trimKeep = 2

// Outstanding appends the outstanding tracked actions, ordered by ID, to dst.
func (d *Driver[S, I, A, R, U]) Outstanding(dst []Tracked[A]) []Tracked[A] {
	start := len(dst)
	for id, a := range d.outstanding.all() {
		dst = append(dst, Tracked[A]{ID: id, Action: a})
	}
	slices.SortFunc(dst[start:], func(x, y Tracked[A]) int { return cmpID(x.ID, y.ID) })
	return dst
}

// IsOutstanding reports whether id is an outstanding tracked action.
func (d *Driver[S, I, A, R, U]) IsOutstanding(id ActionID) bool {
	return d.outstanding.has(id)
}

// NumOutstanding returns the number of outstanding tracked actions.
func (d *Driver[S, I, A, R, U]) NumOutstanding() int { return d.outstanding.len() }

func cmpID(a, b ActionID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Step applies one input. The returned error is a failure of the step
// itself (a panic in machine code, an action limit, a duplicate action ID,
// an encoding failure): the state is rolled back and nothing is appended to
// fx. A machine rejection is not a failure: it is Outcome.Err with Status
// Rejected.
//
// The driver stamps nothing itself: in.Time and in.RequestID are the
// caller's (normalised with NormalizeTime). On success the journal record,
// tracked and untracked actions are appended to fx, to be carried out in
// that order.
func (d *Driver[S, I, A, R, U]) Step(in Input[I, R], fx *Effects[A, U]) (Outcome, error) {
	in.Time = NormalizeTime(in.Time)
	if c := in.Completion; c != nil {
		if !d.outstanding.has(c.ActionID) {
			d.stats.Stale++
			return Outcome{Status: Stale, Seq: d.seq}, nil
		}
	} else if in.RequestID != "" {
		if e, ok := d.window.get(in.RequestID); ok {
			d.stats.Duplicates++
			return Outcome{Status: Duplicate, Seq: d.seq, Err: e.err}, nil
		}
	}

	// Encode the payload before running machine code, so a value that
	// cannot be journaled changes nothing.
	arenaStart := len(fx.arena)
	var err error
	if c := in.Completion; c != nil {
		fx.arena, err = d.k.result.Append(fx.arena, &c.Result)
	} else {
		d.value = in.Value
		fx.arena, err = d.k.input.Append(fx.arena, &d.value)
		var zero I
		d.value = zero
	}
	if err == nil && len(fx.arena)-arenaStart > d.k.maxPayload {
		err = fmt.Errorf("%w: entity %s: payload is %d bytes, limit %d", ErrTooLarge, d.entity, len(fx.arena)-arenaStart, d.k.maxPayload)
	}
	if err != nil {
		fx.arena = fx.arena[:arenaStart]
		d.stats.Failed++
		return Outcome{Seq: d.seq}, err
	}
	payload := fx.arena[arenaStart:len(fx.arena):len(fx.arena)]

	out, err := d.apply(&in)
	if err != nil {
		fx.arena = fx.arena[:arenaStart]
		return out, err
	}
	if !out.Journaled {
		fx.arena = fx.arena[:arenaStart]
		return out, nil
	}
	rec := Record{Seq: d.seq, Time: timeToNanos(in.Time), RequestID: in.RequestID, Payload: payload}
	if out.Status == Accepted && len(d.changes) > 0 {
		wStart := len(fx.arena)
		fx.arena = append(fx.arena, d.changes...)
		rec.Writes = fx.arena[wStart:len(fx.arena):len(fx.arena)]
	}
	switch {
	case in.Completion != nil:
		rec.Kind = RecordCompletion
		rec.ActionID = in.Completion.ActionID
	case out.Status == Rejected:
		rec.Kind = RecordRejected
		errStart := len(fx.arena)
		fx.arena = AppendError(fx.arena, out.Err)
		rec.Err = fx.arena[errStart:len(fx.arena):len(fx.arena)]
	default:
		rec.Kind = RecordInput
	}
	if out.Status == Accepted {
		if err := d.digest(&rec); err != nil {
			return Outcome{Seq: d.seq}, err
		}
		fx.Tracked = append(fx.Tracked, d.out.tracked...)
		fx.Untracked = append(fx.Untracked, d.out.untracked...)
	}
	fx.Records = append(fx.Records, rec)
	return out, nil
}

// digest fills the record's digest when one is due, from the committed
// encoding when the driver keeps one.
func (d *Driver[S, I, A, R, U]) digest(rec *Record) error {
	if d.k.digestEvery < 0 {
		return nil
	}
	d.sinceDigest++
	if d.sinceDigest < d.k.digestEvery {
		return nil
	}
	d.sinceDigest = 0
	enc := d.committedBuf
	if d.k.clone != nil {
		var err error
		if d.scratch, err = d.k.state.Append(d.scratch[:0], &d.state); err != nil {
			return err
		}
		enc = d.scratch
	}
	rec.Digest, rec.HasDigest = Checksum(enc), true
	return nil
}

// StateDigest returns the checksum of the live state's canonical encoding,
// the value records carry in Digest.
func (d *Driver[S, I, A, R, U]) StateDigest() (uint32, error) {
	var err error
	if d.scratch, err = d.k.state.Append(d.scratch[:0], &d.state); err != nil {
		return 0, err
	}
	return Checksum(d.scratch), nil
}

// apply runs the transition and, when it succeeds or is journaled,
// advances the entity. It is shared by Step and Replay.
func (d *Driver[S, I, A, R, U]) apply(in *Input[I, R]) (Outcome, error) {
	d.out.Reset()
	d.changes = d.changes[:0]
	terr, perr := d.call(in)
	if perr == nil && d.out.overflow {
		perr = fmt.Errorf("%w: entity %s: limit %d", ErrTooManyActions, d.entity, d.out.max())
	}
	if perr == nil && d.view != nil && d.view.ReadErr() != nil {
		perr = d.readFailure(d.view.ReadErr())
	}
	var writes []kv.Write
	if perr == nil && terr == nil && d.view != nil {
		writes, perr = d.collectWrites()
	}
	if d.view != nil {
		d.view.Reset(d.src) // the transaction ends: its writes are in writes
	}
	if perr != nil {
		d.changes = d.changes[:0]
		if err := d.rollback(); err != nil {
			return Outcome{Seq: d.seq}, err
		}
		d.out.Reset()
		d.stats.Failed++
		return Outcome{Seq: d.seq}, perr
	}
	if terr != nil {
		mutated, err := d.mutated()
		if err != nil {
			return Outcome{Seq: d.seq}, err
		}
		if mutated {
			if err := d.rollback(); err != nil {
				return Outcome{Seq: d.seq}, err
			}
			d.stats.RolledBack++
		}
		d.out.Reset()
		d.stats.Rejected++
		out := Outcome{Status: Rejected, Err: terr, RolledBack: mutated}
		if in.RequestID != "" {
			d.seq++
			d.window.put(in.RequestID, terr)
			out.Journaled = true
		}
		out.Seq = d.seq
		return out, nil
	}
	// Success: check the emitted IDs before committing anything.
	var completed ActionID
	if c := in.Completion; c != nil {
		completed = c.ActionID
	}
	if err := d.checkEmitted(in.Completion != nil, completed); err != nil {
		d.changes = d.changes[:0]
		if rerr := d.rollback(); rerr != nil {
			return Outcome{Seq: d.seq}, rerr
		}
		d.out.Reset()
		d.stats.Failed++
		return Outcome{Seq: d.seq}, err
	}
	if err := d.commit(); err != nil {
		d.changes = d.changes[:0]
		if rerr := d.rollback(); rerr != nil {
			return Outcome{Seq: d.seq}, rerr
		}
		d.out.Reset()
		d.stats.Failed++
		return Outcome{Seq: d.seq}, err
	}
	if in.Completion != nil {
		d.outstanding.delete(completed)
	}
	for _, t := range d.out.tracked {
		d.outstanding.put(t.ID, t.Action)
	}
	d.seq++
	if c, ok := d.src.(kv.Committer); ok && len(writes) > 0 {
		c.Commit(d.seq, writes)
	}
	if in.RequestID != "" && in.Completion == nil {
		d.window.put(in.RequestID, nil)
	}
	d.stats.Accepted++
	return Outcome{Status: Accepted, Seq: d.seq, Journaled: true}, nil
}

// checkEmitted verifies the tracked IDs just emitted: none outstanding (the
// completed one excepted, it is leaving), none twice, and the outstanding
// limit kept.
func (d *Driver[S, I, A, R, U]) checkEmitted(isCompletion bool, completed ActionID) error {
	tr := d.out.tracked
	for i, t := range tr {
		if d.outstanding.has(t.ID) && !(isCompletion && t.ID == completed) {
			return &DuplicateActionError{Entity: d.entity, ID: t.ID}
		}
		for _, u := range tr[:i] {
			if u.ID == t.ID {
				return &DuplicateActionError{Entity: d.entity, ID: t.ID}
			}
		}
	}
	n := d.outstanding.len() + len(tr)
	if isCompletion {
		n--
	}
	if n > d.k.maxOutstanding {
		return fmt.Errorf("%w: entity %s: %d outstanding, limit %d", ErrTooManyOutstanding, d.entity, n, d.k.maxOutstanding)
	}
	return nil
}

// call runs Transition, turning a panic into an error.
func (d *Driver[S, I, A, R, U]) call(in *Input[I, R]) (terr, perr error) {
	defer func() {
		if v := recover(); v != nil {
			perr = &PanicError{Entity: d.entity, Value: v, Stack: string(debug.Stack())}
		}
	}()
	d.bindView()
	return d.k.m.Transition(&d.state, *in, &d.out), nil
}

// commit records the live state as the committed state.
func (d *Driver[S, I, A, R, U]) commit() error {
	if d.k.clone != nil {
		d.k.clone(&d.committed, &d.state)
		d.committedEnc = false
		return nil
	}
	buf, err := d.k.state.Append(d.scratch[:0], &d.state)
	if err != nil {
		return err
	}
	d.scratch, d.committedBuf = d.committedBuf, buf
	return nil
}

// mutated reports whether the live state differs from the committed one.
func (d *Driver[S, I, A, R, U]) mutated() (bool, error) {
	var err error
	if d.scratch, err = d.k.state.Append(d.scratch[:0], &d.state); err != nil {
		// A state that no longer encodes was certainly changed.
		return true, nil
	}
	if d.k.clone != nil && !d.committedEnc {
		if d.committedBuf, err = d.k.state.Append(d.committedBuf[:0], &d.committed); err != nil {
			return true, nil
		}
		d.committedEnc = true
	}
	return !bytes.Equal(d.scratch, d.committedBuf), nil
}

// rollback puts the committed state back into the live state.
func (d *Driver[S, I, A, R, U]) rollback() error {
	if d.k.clone != nil {
		d.k.clone(&d.state, &d.committed)
		d.bindView()
		return nil
	}
	if err := d.k.state.Decode(d.committedBuf, &d.state); err != nil {
		return fmt.Errorf("machine: entity %s: rollback failed: %w", d.entity, err)
	}
	d.bindView()
	return nil
}

// Restore runs the machine's Restore, as the runtime does after loading an
// entity, and makes its emissions the new outstanding set. The tracked
// actions to execute are appended to fx. The report compares the
// emissions with the outstanding set the driver knew (from the snapshot
// and replayed journal); a report that is not Complete is a machine bug.
func (d *Driver[S, I, A, R, U]) Restore(fx *Effects[A, U]) (RestoreReport, error) {
	d.out.Reset()
	var perr error
	func() {
		defer func() {
			if v := recover(); v != nil {
				perr = &PanicError{Entity: d.entity, Value: v, Stack: string(debug.Stack())}
			}
		}()
		d.bindView()
		perr = d.k.m.Restore(&d.state, &d.out)
	}()
	if v := d.view; v != nil {
		switch {
		case perr == nil && v.ReadErr() != nil:
			perr = d.readFailure(v.ReadErr())
		case perr == nil && v.Len() > 0:
			perr = fmt.Errorf("%w: entity %s: Restore wrote to the view (it must only read state)", ErrInvalidConfig, d.entity)
		}
		v.Reset(d.src)
	}
	if perr == nil && d.out.overflow {
		perr = fmt.Errorf("%w: entity %s: Restore exceeded limit %d", ErrTooManyActions, d.entity, d.out.max())
	}
	if perr != nil {
		d.out.Reset()
		return RestoreReport{}, perr
	}
	tr := d.out.tracked
	for i, t := range tr {
		for _, u := range tr[:i] {
			if u.ID == t.ID {
				d.out.Reset()
				return RestoreReport{}, &DuplicateActionError{Entity: d.entity, ID: t.ID}
			}
		}
	}
	rep := RestoreReport{Known: d.outstandingKnown, UntrackedIgnored: len(d.out.untracked)}
	var next outstandingSet[A]
	for _, t := range tr {
		next.put(t.ID, t.Action)
		if d.outstandingKnown && !d.outstanding.has(t.ID) {
			rep.Unknown = append(rep.Unknown, t.ID)
		}
	}
	if d.outstandingKnown {
		for id := range d.outstanding.all() {
			if !next.has(id) {
				rep.Missing = append(rep.Missing, id)
			}
		}
		slices.Sort(rep.Missing)
		slices.Sort(rep.Unknown)
	}
	d.outstanding = next
	d.outstandingKnown = true
	fx.Tracked = append(fx.Tracked, tr...)
	d.out.Reset()
	return rep, nil
}
