package machine

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/phasm-go/phasm/machine/kv"
)

// Replay applies one journal record, as recovery does after loading a
// snapshot, and verifies it: the step must have the recorded outcome, the
// same rejection, and (when the record carries one) the same state digest.
// A disagreement is a *NondeterminismError naming the entity, the sequence
// number and what differed; a malformed record is a *CorruptError. After
// an error the driver must be discarded.
//
// Replay produces no effects: actions emitted while replaying update the
// outstanding set but are not executed (Restore decides what runs).
func (d *Driver[S, I, A, R, U]) Replay(rec Record) error {
	if rec.Seq != d.seq+1 {
		return fmt.Errorf("%w: entity %s: record seq %d does not follow seq %d", ErrSequence, d.entity, rec.Seq, d.seq)
	}
	corrupt := func(where string, err error) error {
		return &CorruptError{Entity: d.entity, Seq: rec.Seq, Where: where, Reason: err.Error()}
	}
	nondet := func(what, recorded, replayed string) error {
		return &NondeterminismError{Entity: d.entity, Seq: rec.Seq, What: what, Recorded: recorded, Replayed: replayed}
	}
	in := Input[I, R]{Time: nanosToTime(rec.Time), RequestID: rec.RequestID}
	var recordedErr error
	switch rec.Kind {
	case RecordCompletion:
		var c Completion[R]
		c.ActionID = rec.ActionID
		if err := d.k.result.Decode(rec.Payload, &c.Result); err != nil {
			return corrupt("completion result", err)
		}
		if !d.outstanding.has(rec.ActionID) {
			return nondet("completion", fmt.Sprintf("completion of outstanding action %d", rec.ActionID),
				fmt.Sprintf("action %d is not outstanding", rec.ActionID))
		}
		in.Completion = &c
	case RecordInput, RecordRejected:
		err := d.k.input.Decode(rec.Payload, &d.value)
		in.Value = d.value
		var zero I
		d.value = zero
		if err != nil {
			return corrupt("input", err)
		}
		if rec.Kind == RecordRejected {
			if rec.RequestID == "" {
				return corrupt("record", errors.New("rejected record without request ID"))
			}
			var err error
			if recordedErr, err = DecodeError(rec.Err); err != nil || recordedErr == nil {
				if err == nil {
					err = errors.New("missing error")
				}
				return corrupt("rejection", err)
			}
		}
	default:
		return corrupt("record", fmt.Errorf("unknown kind %d", rec.Kind))
	}

	out, err := d.apply(&in)
	if err != nil {
		if errors.Is(err, kv.ErrRead) {
			return err // the keyspace could not be read: retry the recovery
		}
		return nondet("outcome", rec.Kind.String(), "failure: "+err.Error())
	}
	switch rec.Kind {
	case RecordRejected:
		if out.Status != Rejected {
			return nondet("outcome", "rejected: "+recordedErr.Error(), "accepted")
		}
		if !SameError(out.Err, recordedErr) {
			return nondet("error", describeError(recordedErr), describeError(out.Err))
		}
	default:
		if out.Status != Accepted {
			return nondet("outcome", "accepted", "rejected: "+describeError(out.Err))
		}
		if err := d.checkReplayedWrites(rec); err != nil {
			return err
		}
		if rec.HasDigest {
			got, err := d.StateDigest()
			if err != nil {
				return corrupt("state", err)
			}
			if got != rec.Digest {
				return nondet("digest", fmt.Sprintf("state digest %08x", rec.Digest), fmt.Sprintf("state digest %08x", got))
			}
		}
	}
	d.stats.Replayed++
	return nil
}

func describeError(err error) string {
	if err == nil {
		return "no error"
	}
	if c := ErrorCode(err); c != "" {
		return fmt.Sprintf("%q (code %s)", err.Error(), c)
	}
	return fmt.Sprintf("%q", err.Error())
}

// Snapshot encodes the entity's current state, request window and
// outstanding actions at its current sequence number.
func (d *Driver[S, I, A, R, U]) Snapshot() (Snapshot, error) {
	state, err := d.k.state.Append(nil, &d.state)
	if err != nil {
		return Snapshot{}, fmt.Errorf("machine: entity %s: encoding state: %w", d.entity, err)
	}
	out := Snapshot{Seq: d.seq, State: state, Requests: d.window.appendBinary(nil)}
	ids := make([]ActionID, 0, d.outstanding.len())
	for id := range d.outstanding.all() {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := appendUvarint(nil, uint64(len(ids)))
	var scratch []byte
	for _, id := range ids {
		a, _ := d.outstanding.get(id)
		if scratch, err = d.k.action.Append(scratch[:0], &a); err != nil {
			return Snapshot{}, fmt.Errorf("machine: entity %s: encoding action %d: %w", d.entity, id, err)
		}
		b = appendUvarint(b, uint64(id))
		b = appendBytes(b, scratch)
	}
	out.Outstanding = b
	return out, nil
}

// FromSnapshot returns a driver for entity id positioned at the snapshot:
// its state, request window and outstanding actions decoded. Replay the
// journal records after snap.Seq next, then call Restore.
func (k *Kind[S, I, A, R, U]) FromSnapshot(id string, snap Snapshot) (*Driver[S, I, A, R, U], error) {
	d := &Driver[S, I, A, R, U]{k: k, entity: Entity{Kind: k.name, ID: id}, seq: snap.Seq}
	d.out.limit = k.maxActions
	d.window.max = k.window
	corrupt := func(where string, err error) error {
		return &CorruptError{Entity: d.entity, Seq: snap.Seq, Where: where, Reason: err.Error()}
	}
	if err := k.state.Decode(snap.State, &d.state); err != nil {
		return nil, corrupt("snapshot state", err)
	}
	d.initView()
	if err := d.window.decode(snap.Requests); err != nil {
		return nil, corrupt("snapshot request window", err)
	}
	r := reader{b: snap.Outstanding}
	n, err := r.uvarint()
	if err == nil && n > uint64(len(r.b))/2 {
		err = errLength
	}
	for i := uint64(0); err == nil && i < n; i++ {
		var id uint64
		var p []byte
		if id, err = r.uvarint(); err != nil {
			break
		}
		if p, err = r.bytes(); err != nil {
			break
		}
		var a A
		if err = k.action.Decode(p, &a); err != nil {
			break
		}
		if n > outstandingSmall && d.outstanding.m == nil {
			d.outstanding.m = make(map[ActionID]A, n)
		}
		if d.outstanding.has(ActionID(id)) {
			err = fmt.Errorf("action %d listed twice", id)
			break
		}
		d.outstanding.put(ActionID(id), a)
	}
	if err == nil && len(r.b) != 0 {
		err = errTrailing
	}
	if err != nil {
		return nil, corrupt("snapshot outstanding actions", err)
	}
	d.outstandingKnown = true
	if err := d.commit(); err != nil {
		return nil, err
	}
	return d, nil
}

// Recover rebuilds an entity from durable data: the snapshot (nil for none)
// and the journal records after it, verified as Replay does. Call Restore
// on the result before accepting new inputs. A database-backed kind needs
// its keyspace: use [Kind.RecoverFrom].
func (k *Kind[S, I, A, R, U]) Recover(id string, snap *Snapshot, records []Record) (*Driver[S, I, A, R, U], error) {
	if k.hasView {
		return nil, fmt.Errorf("%w: kind %q is database-backed: recover it with RecoverFrom and its keyspace", ErrInvalidConfig, k.name)
	}
	var d *Driver[S, I, A, R, U]
	var err error
	if snap != nil {
		d, err = k.FromSnapshot(id, *snap)
	} else {
		d, err = k.NewDriver(id)
	}
	if err != nil {
		return nil, err
	}
	for _, rec := range records {
		if err := d.Replay(rec); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// requestWindow remembers the replies to the most recent request IDs, oldest
// evicted first. The ring holds the entries in arrival order; once there
// are more than a few (most entities see few request IDs), an index over
// the ring finds them: an open-addressing hash table of ring positions,
// smaller than a Go map and probed with one hash per step (Step's lookup
// of a new ID remembers the hash for the put that follows).
type requestWindow struct {
	max  int
	ring []windowEntry
	next int          // oldest slot once the ring is full
	ix   *windowIndex // when len(ring) > windowScan
}

type windowEntry struct {
	id  string
	err error
}

// windowIndex indexes a ring: a power-of-two table of slots at most half
// full, linear probing, deletions by backward shift. Its layout depends on
// a random seed; nothing else does.
type windowIndex struct {
	slots  []windowSlot
	hashes []uint32 // hashes[i] is the hash of ring[i].id
	seed   maphash.Seed
	// The hash of memo, the ID hashed last.
	memo     string
	memoHash uint32
}

// windowSlot is one slot of the index: the ring position plus one (0 for an
// empty slot) and the ID's hash, which gives its home slot and screens
// string comparisons.
type windowSlot struct {
	pos  int32
	hash uint32
}

// windowScan is the ring size up to which lookups scan instead of indexing.
const windowScan = 16

// windowMinIndex is the size of a new index.
const windowMinIndex = 64

// hash returns the index hash of id, remembering it: Step looks up a new
// ID and then puts the same string (Go compares a string with itself
// without reading its bytes).
func (x *windowIndex) hash(id string) uint32 {
	if id == x.memo {
		return x.memoHash
	}
	h := x.hashOf(id)
	x.memo, x.memoHash = id, h
	return h
}

func (x *windowIndex) hashOf(id string) uint32 { return uint32(maphash.String(x.seed, id)) }

// find returns the ring position of id, or -1, and with an index the slot
// where the probe for id (of hash h) stopped: its slot, or the empty one
// ending its chain.
func (w *requestWindow) find(id string) (pos, slot int, h uint32) {
	x := w.ix
	if x == nil {
		for i := range w.ring {
			if w.ring[i].id == id {
				return i, -1, 0
			}
		}
		return -1, -1, 0
	}
	h = x.hash(id)
	mask := len(x.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s.pos == 0 {
			return -1, i, h
		}
		if s.hash == h && w.ring[s.pos-1].id == id {
			return int(s.pos - 1), i, h
		}
	}
}

func (w *requestWindow) get(id string) (windowEntry, bool) {
	if i, _, _ := w.find(id); i >= 0 {
		return w.ring[i], true
	}
	return windowEntry{}, false
}

func (w *requestWindow) put(id string, err error) {
	i, slot, h := w.find(id)
	if i >= 0 {
		w.ring[i].err = err
		return
	}
	e := windowEntry{id: id, err: err}
	x := w.ix
	var at int
	if len(w.ring) < w.max {
		at = len(w.ring)
		w.ring = append(w.ring, e)
		if x != nil {
			x.hashes = append(x.hashes, h)
		}
	} else {
		at = w.next
		if x != nil {
			x.remove(at)
			slot = -1 // the removal may have moved the end of id's chain
			x.hashes[at] = h
		}
		w.ring[at] = e
		w.next = (w.next + 1) % w.max
	}
	switch {
	case x != nil && 2*len(w.ring) > len(x.slots):
		x.rebuild(2 * len(x.slots))
	case x != nil:
		x.insert(slot, int32(at), h)
	case len(w.ring) > windowScan:
		x = &windowIndex{seed: maphash.MakeSeed(), hashes: make([]uint32, len(w.ring), cap(w.ring))}
		x.memoHash = x.hashOf("") // the zero memo, made valid
		for i := range w.ring {
			x.hashes[i] = x.hashOf(w.ring[i].id)
		}
		x.rebuild(windowMinIndex)
		w.ix = x
	}
}

// insert indexes ring position at under hash h, in slot when it is known
// to be the empty slot ending h's chain (-1 to probe for it).
func (x *windowIndex) insert(slot int, at int32, h uint32) {
	mask := len(x.slots) - 1
	if slot < 0 {
		slot = int(h) & mask
		for x.slots[slot].pos != 0 {
			slot = (slot + 1) & mask
		}
	}
	x.slots[slot] = windowSlot{pos: at + 1, hash: h}
}

// remove removes ring position at from the index, shifting back the
// entries after it in its chain so that no probe stops early.
func (x *windowIndex) remove(at int) {
	mask := len(x.slots) - 1
	i := int(x.hashes[at]) & mask
	for x.slots[i].pos != int32(at+1) {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; x.slots[j].pos != 0; j = (j + 1) & mask {
		// The entry at j may fill the hole at i unless its home slot lies
		// cyclically in (i, j].
		if home := int(x.slots[j].hash) & mask; (j-home)&mask >= (j-i)&mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = windowSlot{}
}

// rebuild indexes the ring (whose hashes x holds) in a table of n slots, a
// power of two.
func (x *windowIndex) rebuild(n int) {
	x.slots = make([]windowSlot, n)
	for i, h := range x.hashes {
		x.insert(-1, int32(i), h)
	}
}

func (w *requestWindow) appendBinary(b []byte) []byte {
	b = slices.Grow(b, 8+len(w.ring)*40)
	b = appendUvarint(b, uint64(len(w.ring)))
	emit := func(es []windowEntry) {
		for i := range es {
			b = appendString(b, es[i].id)
			b = AppendError(b, es[i].err)
		}
	}
	emit(w.ring[w.next:])
	emit(w.ring[:w.next])
	return b
}

func (w *requestWindow) decode(src []byte) error {
	r := reader{b: src}
	n, err := r.uvarint()
	if err != nil {
		return err
	}
	if n > uint64(len(r.b))/2 {
		return errLength
	}
	if len(w.ring) == 0 && n > 0 {
		w.ring = make([]windowEntry, 0, min(int(n), w.max))
	}
	for i := uint64(0); i < n; i++ {
		id, err := r.string()
		if err != nil {
			return err
		}
		e, err := r.error()
		if err != nil {
			return err
		}
		w.put(id, e)
	}
	if len(r.b) != 0 {
		return errTrailing
	}
	return nil
}
