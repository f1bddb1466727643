package sim

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// Database-backed machines (machine.ViewState) run against a simulated
// keyspace per entity: a kv.Mem that is durable (a crash loses nothing
// journaled, because a step's writes are applied when it is journaled),
// read through a source that fails the step's n-th read when the step's
// event says so (Faults.ReadFailProb). A failed step must leave the
// in-memory state and the keyspace as they were; the simulator checks that
// and then retries the input, as the runtime would.

// errInjectedRead is the failure the simulated keyspace injects.
var errInjectedRead = errors.New("sim: injected keyspace read failure")

// simSource is an entity's keyspace as its driver reads it.
type simSource struct {
	mem    *kv.Mem
	failAt int // fail the failAt-th read (0: never)
	reads  int
	failed int
}

func (s *simSource) read() error {
	s.reads++
	if s.failAt > 0 && s.reads == s.failAt {
		s.failed++
		return errInjectedRead
	}
	return nil
}

func (s *simSource) Get(key []byte) ([]byte, bool, error) {
	if err := s.read(); err != nil {
		return nil, false, err
	}
	return s.mem.Get(key)
}

func (s *simSource) Scan(start, end []byte, limit int) ([]kv.Pair, bool, error) {
	if err := s.read(); err != nil {
		return nil, false, err
	}
	return s.mem.Scan(start, end, limit)
}

func (s *simSource) Commit(seq uint64, ws []kv.Write) { s.mem.Commit(seq, ws) }

func (s *simSource) arm(failAt int) { s.failAt, s.reads = failAt, 0 }

// Keyspace returns entity e's keyspace for reading (database-backed
// machines; nil for plain state). Never modify it.
func (w *World[S, I, A, R, U]) Keyspace(e int) *kv.Mem {
	if src := w.ents[e].src; src != nil {
		return src.mem
	}
	return nil
}

// drawReadFailure decides whether the step of ev fails one of its reads,
// and records the decision in the event (and the trace) so replays repeat
// it.
func (w *World[S, I, A, R, U]) drawReadFailure(ev *Event[I, R]) {
	p := w.s.cfg.Faults.ReadFailProb
	if w.replaying || w.liveness || p <= 0 || !w.s.kind.HasView() || w.rng.Float64() >= p {
		return
	}
	ev.ReadFailAt = 1 + w.rng.IntN(4)
	if w.record && len(w.trace) > 0 {
		w.trace[len(w.trace)-1].ReadFailAt = ev.ReadFailAt
	}
}

// stepWithReadFailure runs a step whose reads are armed to fail. If one
// failed, it checks that the failure changed nothing and reports true; the
// caller then retries without the fault.
//
// When the step read fewer than failAt times it simply ran: *out and *err
// are its results and the caller goes on with them.
func (w *World[S, I, A, R, U]) stepWithReadFailure(e int, in machine.Input[I, R], failAt int, out *machine.Outcome, errp *error) (bool, *checkError) {
	ent := w.ents[e]
	before := ent.src.mem.Version()
	seq := ent.d.Seq()
	ent.src.arm(failAt)
	ent.fx.Reset()
	*out, *errp = ent.d.Step(in, &ent.fx)
	ent.src.arm(0)
	err := *errp
	if err == nil || !errors.Is(err, kv.ErrRead) {
		return false, nil
	}
	w.report.ReadFailures++
	if out.Seq != seq || len(ent.fx.Records) > 0 || len(ent.fx.Tracked) > 0 {
		return false, w.fail(e, "atomicity", fmt.Errorf("a step whose read failed advanced the entity (seq %d to %d, %d records)", seq, out.Seq, len(ent.fx.Records)))
	}
	if ent.src.mem.Version() != before {
		return false, w.fail(e, "atomicity", errors.New("a step whose read failed changed the keyspace"))
	}
	if w.s.checks != 0 {
		enc, err := w.s.kind.StateCodec().Append(nil, ent.d.State())
		if err != nil {
			return false, w.fail(e, "encoding", err)
		}
		if string(enc) != string(ent.enc) {
			return false, w.fail(e, "atomicity", errors.New("a step whose read failed changed the in-memory state"))
		}
	}
	return true, nil
}

// twinView binds a fresh view into the twin state, reading the keyspace as
// it was before the step just taken (its journaled before-images laid over
// the keyspace after it).
func (w *World[S, I, A, R, U]) twinView(e int) error {
	ent := w.ents[e]
	vs, ok := any(&w.twin).(machine.ViewState)
	if !ok {
		return nil
	}
	cs, err := kv.DecodeChanges(ent.d.LastWrites())
	if err != nil {
		return err
	}
	undo := kv.NewOverlay(ent.src.mem)
	undo.Undo(cs)
	w.twinUndo = undo
	w.twinKV = kv.NewView(w.s.kind.MaxWrites())
	w.twinKV.Reset(undo)
	vs.BindView(w.twinKV)
	return nil
}

// sameWrites compares the twin's write set (with before-images from the
// same prior keyspace) with the step's journaled one.
func (w *World[S, I, A, R, U]) sameWrites(e int) *checkError {
	if w.twinKV == nil {
		return nil
	}
	if err := w.twinKV.ReadErr(); err != nil {
		return w.fail(e, "determinism", fmt.Errorf("re-running the step failed to read the keyspace: %w", err))
	}
	cs, err := kv.Changes(w.twinUndo, w.twinKV.Writes())
	if err != nil {
		return w.fail(e, "determinism", err)
	}
	var got []byte
	if len(cs) > 0 {
		got = kv.AppendChanges(nil, cs)
	}
	if want := w.ents[e].d.LastWrites(); string(got) != string(want) {
		return w.fail(e, "determinism", fmt.Errorf("re-running the step from the same prior state and keyspace gave a different write set (%d bytes vs %d bytes, first difference at byte %d)", len(want), len(got), firstDiff(want, got)))
	}
	return nil
}
