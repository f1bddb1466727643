package machine

import (
	"bytes"
	"fmt"

	"github.com/phasm-go/phasm/machine/kv"
)

// ViewState is implemented by a pointer to a database-backed state: a
// state whose large part lives in the entity's keyspace and is read and
// written through a *kv.View (see package kv). The state keeps the view in
// a field its codec skips (tagged `phasm:"-"`), and BindView stores it
// there; the driver calls BindView before every Transition and Restore
// and after every rollback, so machine code always finds the view bound
// to the entity's committed keyspace.
//
// With a view, a step is a transaction over both parts of the state: the
// in-memory part (rolled back as for plain state) and the keyspace (the
// view's writes are discarded on error, journaled and committed on
// success). A read failure fails the step without journaling anything,
// whatever the machine returned, because a step that could not read its
// state has no deterministic outcome; the input may be retried. Snapshots
// hold the in-memory part only.
type ViewState interface {
	BindView(v *kv.View)
}

// initView sets up the view of a database-backed driver over an empty
// in-memory keyspace; SetSource or Kind.RecoverFrom replace it.
func (d *Driver[S, I, A, R, U]) initView() {
	if !d.k.hasView {
		return
	}
	d.vs = any(&d.state).(ViewState)
	d.view = kv.NewView(d.k.maxWrites)
	d.src = kv.NewMem()
	d.view.Reset(d.src)
	d.vs.BindView(d.view)
}

// bindView (re)binds the view into the live state, after anything that
// may have replaced the state's value (a decode, a clone).
func (d *Driver[S, I, A, R, U]) bindView() {
	if d.vs != nil {
		d.vs.BindView(d.view)
	}
}

// SetSource makes src the entity's committed keyspace: the view reads
// through it, and when src implements kv.Committer it receives the writes
// of every accepted step (with the entity's new sequence number). The
// runtime passes a kv.Cache over its store; the simulator a kv.Mem. It
// does nothing for a plain-state kind.
func (d *Driver[S, I, A, R, U]) SetSource(src kv.Source) {
	if d.view == nil || src == nil {
		return
	}
	d.src = src
	d.view.Reset(src)
	d.bindView()
}

// Source returns the committed keyspace of a database-backed entity, nil
// for plain state.
func (d *Driver[S, I, A, R, U]) Source() kv.Source { return d.src }

// LastWrites returns the encoded write set (kv.AppendChanges) of the last
// accepted step, empty if it wrote nothing; valid until the next step.
func (d *Driver[S, I, A, R, U]) LastWrites() []byte { return d.changes }

// readFailure names the entity in a failed read of its keyspace.
func (d *Driver[S, I, A, R, U]) readFailure(err error) error {
	return fmt.Errorf("machine: entity %s: step failed, the keyspace could not be read: %w", d.entity, err)
}

// collectWrites turns the view's write set into its journaled form (each
// write with its before-image) in d.changes. The writes are returned for
// the commit.
func (d *Driver[S, I, A, R, U]) collectWrites() ([]kv.Write, error) {
	d.changes = d.changes[:0]
	ws := d.view.Writes()
	if len(ws) == 0 {
		return nil, nil
	}
	cs, err := kv.Changes(d.src, ws)
	if err != nil {
		return nil, d.readFailure(err)
	}
	d.changes = kv.AppendChanges(d.changes, cs)
	return ws, nil
}

// RecoverFrom rebuilds a database-backed entity from durable data: the
// snapshot of its in-memory part (nil for none), the journal records after
// it, and src, its keyspace as the store holds it (which reflects the last
// record, because writes are committed with their records). To replay the
// tail, the driver lays the records' before-images over src (newest first)
// to see the keyspace as of the snapshot, re-runs each record, and checks
// that it writes exactly what was journaled (a *NondeterminismError with
// What "writes" otherwise); then it reads through src. A failed read
// (kv.ErrRead) may be retried. For a plain kind src is ignored and this is
// Recover.
func (k *Kind[S, I, A, R, U]) RecoverFrom(id string, snap *Snapshot, records []Record, src kv.Source) (*Driver[S, I, A, R, U], error) {
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
	if !k.hasView {
		for _, rec := range records {
			if err := d.Replay(rec); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	if src == nil {
		return nil, fmt.Errorf("%w: kind %q is database-backed: RecoverFrom needs its keyspace", ErrInvalidConfig, k.name)
	}
	undo := kv.NewOverlay(src)
	for i := len(records) - 1; i >= 0; i-- {
		cs, err := kv.DecodeChanges(records[i].Writes)
		if err != nil {
			return nil, &CorruptError{Entity: d.entity, Seq: records[i].Seq, Where: "record writes", Reason: err.Error()}
		}
		undo.Undo(cs)
	}
	d.SetSource(undo)
	for _, rec := range records {
		if err := d.Replay(rec); err != nil {
			return nil, err
		}
	}
	d.SetSource(src)
	return d, nil
}

// checkReplayedWrites compares a replayed step's write set with the
// journaled one.
func (d *Driver[S, I, A, R, U]) checkReplayedWrites(rec Record) error {
	if d.view == nil {
		if len(rec.Writes) > 0 {
			return &CorruptError{Entity: d.entity, Seq: rec.Seq, Where: "record", Reason: "writes in a record of a plain-state kind"}
		}
		return nil
	}
	if bytes.Equal(d.changes, rec.Writes) {
		return nil
	}
	describe := func(b []byte) string {
		cs, err := kv.DecodeChanges(b)
		if err != nil {
			return "undecodable write set: " + err.Error()
		}
		if len(cs) == 0 {
			return "no writes"
		}
		first := cs[0]
		return fmt.Sprintf("%d writes (first %q)", len(cs), first.Key)
	}
	return &NondeterminismError{Entity: d.entity, Seq: rec.Seq, What: "writes", Recorded: describe(rec.Writes), Replayed: describe(d.changes)}
}
