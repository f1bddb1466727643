package sim

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
)

// World is the simulated system during one seed's run: the entities, the
// clock, and the results in flight. Models read it to generate inputs and
// check invariants across entities.
type World[S, I, A, R, U any] struct {
	s      *Sim[S, I, A, R, U]
	ents   []*entity[S, I, A, R, U]
	rng    *rand.Rand
	queue  inflightQueue[I, A, R]
	order  uint64
	ops    int
	now    time.Time
	report Report

	record    bool // keep the event trace (re-run after a failure)
	trace     []Event[I, R]
	replaying bool // applying a given trace: no generation, no dispatch
	liveness  bool

	router  Router[I, A, R]
	inv     Invariants[S]
	modInv  Invariants[S]
	entChk  EntityChecker[S]
	worldCk WorldChecker[S, I, A, R, U]
	observe Observer[I, R]

	retries []clientRequest[I]
	reqSeq  uint64
	twin    S
	twinOut *machine.Actions[A, U]
	// The twin's view (database-backed machines) and the keyspace it reads.
	twinKV   *kv.View
	twinUndo *kv.Overlay
	enc      []byte
	enc2     []byte
}

type clientRequest[I any] struct {
	entity    int
	requestID string
	in        I
	reply     error
	answered  bool
}

type entity[S, I, A, R, U any] struct {
	id          string
	d           *machine.Driver[S, I, A, R, U]
	fx          machine.Effects[A, U]
	incarnation int
	// The durable copy: the latest snapshot and the binary journal after it.
	snap    []byte
	journal []byte
	offs    []int
	// enc is the canonical encoding of the committed state.
	enc []byte
	// src is the keyspace of a database-backed entity (nil for plain
	// state): durable, since the simulator journals every step as it runs.
	src *simSource
	// The model's own view of outstanding and ever-emitted action IDs.
	outstanding map[machine.ActionID]struct{}
	emitted     map[machine.ActionID]struct{}
}

// Entities returns the number of entities.
func (w *World[S, I, A, R, U]) Entities() int { return len(w.ents) }

// State returns entity e's live state. Read it; never modify it.
func (w *World[S, I, A, R, U]) State(e int) *S { return w.ents[e].d.State() }

// Outstanding returns the number of tracked actions entity e has
// outstanding.
func (w *World[S, I, A, R, U]) Outstanding(e int) int { return w.ents[e].d.NumOutstanding() }

// EntityID returns entity e's ID.
func (w *World[S, I, A, R, U]) EntityID(e int) string { return w.ents[e].id }

// Now returns the simulated time.
func (w *World[S, I, A, R, U]) Now() time.Time { return w.now }

// Ops returns the number of operations applied so far.
func (w *World[S, I, A, R, U]) Ops() int { return w.ops }

// Quiescing reports whether the run is in its liveness phase (no new
// inputs, no faults).
func (w *World[S, I, A, R, U]) Quiescing() bool { return w.liveness }

func (s *Sim[S, I, A, R, U]) newWorld(seed uint64, record bool) *World[S, I, A, R, U] {
	w := &World[S, I, A, R, U]{
		s:      s,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:    s.cfg.Start,
		record: record,
	}
	w.router, _ = s.model.(Router[I, A, R])
	w.inv, _ = s.kind.Machine().(Invariants[S])
	w.modInv, _ = s.model.(Invariants[S])
	w.entChk, _ = s.model.(EntityChecker[S])
	w.worldCk, _ = s.model.(WorldChecker[S, I, A, R, U])
	w.observe, _ = s.model.(Observer[I, R])
	w.twinOut = machine.NewActions[A, U](s.kind.MaxActions())
	return w
}

// checkError is a failed check, before it is explained as a Failure.
type checkError struct {
	step   int
	entity int
	check  string
	err    error
}

func (w *World[S, I, A, R, U]) fail(e int, check string, err error) *checkError {
	return &checkError{step: w.ops, entity: e, check: check, err: err}
}

func (w *World[S, I, A, R, U]) init() *checkError {
	w.ents = make([]*entity[S, I, A, R, U], len(w.s.ids))
	for i, id := range w.s.ids {
		d, err := w.s.kind.NewDriver(id)
		if err != nil {
			return w.fail(i, "driver", err)
		}
		ent := &entity[S, I, A, R, U]{id: id, d: d}
		if w.s.kind.HasView() {
			ent.src = &simSource{mem: kv.NewMem()}
			d.SetSource(ent.src)
		}
		if w.s.checks != 0 {
			if ent.enc, err = w.s.kind.StateCodec().Append(nil, d.State()); err != nil {
				return w.fail(i, "encoding", err)
			}
			ent.outstanding = map[machine.ActionID]struct{}{}
			ent.emitted = map[machine.ActionID]struct{}{}
		}
		w.ents[i] = ent
	}
	for i := range w.ents {
		if cerr := w.checkInvariants(i); cerr != nil {
			return cerr
		}
	}
	return nil
}

func (w *World[S, I, A, R, U]) run() *checkError {
	if cerr := w.init(); cerr != nil {
		return cerr
	}
	f := w.s.cfg.Faults
	for w.ops < w.s.cfg.Steps {
		w.tick()
		if f.CrashProb > 0 && w.rng.Float64() < f.CrashProb {
			e := w.rng.IntN(len(w.ents))
			ev := Event[I, R]{Kind: EventCrash, Entity: e, Time: w.now}
			w.note(ev)
			w.drawReadFailure(&ev) // a read of the recovery fails
			if cerr := w.crash(e, ev.ReadFailAt); cerr != nil {
				return cerr
			}
		}
		if w.queue.Len() > 0 && w.queue.items[0].due <= w.ops &&
			(w.queue.Len() > 256 || w.rng.Float64() < w.s.cfg.DeliverProb) {
			if cerr := w.deliver(); cerr != nil {
				return cerr
			}
			continue
		}
		if cerr := w.input(); cerr != nil {
			return cerr
		}
	}
	return w.quiesce()
}

func (w *World[S, I, A, R, U]) tick() {
	if step := w.s.cfg.TimeStepMax; step > 0 {
		w.now = w.now.Add(time.Duration(w.rng.Int64N(int64(step) + 1)))
	}
}

func (w *World[S, I, A, R, U]) note(ev Event[I, R]) {
	if w.record {
		w.trace = append(w.trace, ev)
	}
}

// input generates and applies a client input, or re-sends an earlier one.
func (w *World[S, I, A, R, U]) input() *checkError {
	f := w.s.cfg.Faults
	if f.RetryProb > 0 && len(w.retries) > 0 && w.rng.Float64() < f.RetryProb {
		ci := w.rng.IntN(len(w.retries))
		c := w.retries[ci]
		ev := Event[I, R]{Kind: EventInput, Entity: c.entity, Time: w.now, RequestID: c.requestID, Input: c.in, Note: "client retry"}
		w.note(ev)
		out, cerr := w.apply(&ev)
		if cerr != nil {
			return cerr
		}
		w.report.ClientRetries++
		// A retry must get the original reply and change nothing, unless
		// the request window has forgotten the ID (then it runs again).
		if out.Status == machine.Duplicate && c.answered && !machine.SameError(out.Err, c.reply) {
			return w.fail(c.entity, "request-window", fmt.Errorf("retry of request %q got %v, the original reply was %v", c.requestID, out.Err, c.reply))
		}
		if out.Status == machine.Accepted || out.Status == machine.Rejected {
			// The window had forgotten the ID and the input ran again: its
			// reply is now the one to remember.
			w.retries[ci].reply = out.Err
		}
		return nil
	}
	e, in := w.s.model.Input(w.rng, w)
	if e < 0 || e >= len(w.ents) {
		return w.fail(e, "model", fmt.Errorf("Model.Input chose entity %d of %d", e, len(w.ents)))
	}
	ev := Event[I, R]{Kind: EventInput, Entity: e, Time: w.now, Input: in}
	if f.RequestIDProb > 0 && w.rng.Float64() < f.RequestIDProb {
		w.reqSeq++
		ev.RequestID = "client-" + strconv.FormatUint(w.reqSeq, 10)
	}
	w.note(ev)
	out, cerr := w.apply(&ev)
	if cerr != nil {
		return cerr
	}
	if ev.RequestID != "" && (out.Status == machine.Accepted || out.Status == machine.Rejected) {
		c := clientRequest[I]{entity: e, requestID: ev.RequestID, in: in, reply: out.Err, answered: true}
		if len(w.retries) < 64 {
			w.retries = append(w.retries, c)
		} else {
			w.retries[w.rng.IntN(len(w.retries))] = c
		}
	}
	return nil
}

// apply runs one event through the entity's driver and every check. It is
// shared by generated runs and trace replays.
func (w *World[S, I, A, R, U]) apply(ev *Event[I, R]) (machine.Outcome, *checkError) {
	e := ev.Entity
	ent := w.ents[e]
	in := machine.Input[I, R]{Time: machine.NormalizeTime(ev.Time), RequestID: ev.RequestID}
	if ev.Kind == EventCompletion {
		in.Completion = &machine.Completion[R]{ActionID: ev.ActionID, Result: ev.Result}
	} else {
		in.Value = ev.Input
	}
	w.drawReadFailure(ev)
	var keysBefore uint64
	if ent.src != nil && w.s.checks&CheckAtomicity != 0 {
		keysBefore = ent.src.mem.Version()
	}
	ent.fx.Reset()
	var out machine.Outcome
	var err error
	if ev.ReadFailAt > 0 && ent.src != nil {
		failed, cerr := w.stepWithReadFailure(e, in, ev.ReadFailAt, &out, &err)
		if cerr != nil {
			return out, cerr
		}
		if failed {
			ent.fx.Reset()
			out, err = ent.d.Step(in, &ent.fx)
		}
	} else {
		out, err = ent.d.Step(in, &ent.fx)
	}
	w.ops++
	w.report.Operations++
	if err != nil {
		var dup *machine.DuplicateActionError
		switch {
		case errors.As(err, &dup):
			return out, w.fail(e, "action-id", err)
		case errors.Is(err, machine.ErrPanic):
			return out, w.fail(e, "panic", err)
		default:
			return out, w.fail(e, "driver", err)
		}
	}
	w.count(ev, out)
	checks := w.s.checks
	if out.RolledBack && checks&CheckAtomicity != 0 {
		return out, w.fail(e, "atomicity", fmt.Errorf("the transition mutated the state and then returned %q (rule 1): the runtime had to roll back", out.Err))
	}
	if ent.src != nil && checks&CheckAtomicity != 0 && out.Status != machine.Accepted && ent.src.mem.Version() != keysBefore {
		return out, w.fail(e, "atomicity", fmt.Errorf("a %s step changed the keyspace", out.Status))
	}
	ran := out.Status == machine.Accepted || out.Status == machine.Rejected
	if checks != 0 && ran {
		if cerr := w.verifyStep(e, in, out); cerr != nil {
			return out, cerr
		}
	}
	if checks&CheckRestore != 0 && len(ent.fx.Records) > 0 {
		if cerr := w.journal(e); cerr != nil {
			return out, cerr
		}
	}
	if w.observe != nil {
		w.observe.Observe(e, in, out)
	}
	if ran {
		if cerr := w.checkInvariants(e); cerr != nil {
			return out, cerr
		}
	}
	if !w.replaying {
		for _, t := range ent.fx.Tracked {
			w.dispatch(e, t)
		}
	}
	return out, nil
}

func (w *World[S, I, A, R, U]) count(ev *Event[I, R], out machine.Outcome) {
	r := &w.report
	if ev.Kind == EventCompletion {
		r.Completions++
	} else {
		r.Inputs++
	}
	switch out.Status {
	case machine.Accepted:
		r.Accepted++
	case machine.Rejected:
		r.Rejected++
	case machine.Duplicate:
		r.Duplicates++
	case machine.Stale:
		r.Stale++
	}
}

// verifyStep runs the automatic per-step checks on a step whose
// transition ran: determinism, unchanged completions, action IDs.
func (w *World[S, I, A, R, U]) verifyStep(e int, in machine.Input[I, R], out machine.Outcome) *checkError {
	ent := w.ents[e]
	codec := w.s.kind.StateCodec()
	prior := ent.enc
	after := prior
	if out.Status == machine.Accepted {
		var err error
		if w.enc, err = codec.Append(w.enc[:0], ent.d.State()); err != nil {
			return w.fail(e, "encoding", err)
		}
		after = w.enc
	}
	checks := w.s.checks
	if checks&CheckDeterminism != 0 {
		if cerr := w.twinStep(e, in, out, prior, after); cerr != nil {
			return cerr
		}
	}
	if out.Status == machine.Accepted {
		completions := checks&CheckCompletions != 0
		if c := in.Completion; c != nil {
			if completions && bytes.Equal(prior, after) {
				return w.fail(e, "completion-unchanged", fmt.Errorf("the completion of action %d left the state unchanged (rule 6): Restore would re-emit the action forever", c.ActionID))
			}
			delete(ent.outstanding, c.ActionID)
		}
		for _, t := range ent.fx.Tracked {
			if _, seen := ent.emitted[t.ID]; seen && completions {
				return w.fail(e, "action-id", fmt.Errorf("action ID %d emitted again; IDs must be unique for the entity's whole life (rule 4)", t.ID))
			}
			ent.emitted[t.ID] = struct{}{}
			ent.outstanding[t.ID] = struct{}{}
		}
	}
	if out.Status == machine.Accepted {
		// Keep the committed encoding for the next step (swap buffers).
		ent.enc, w.enc = w.enc, ent.enc
	}
	return nil
}

// twinStep re-runs the step from the prior state and compares everything.
func (w *World[S, I, A, R, U]) twinStep(e int, in machine.Input[I, R], out machine.Outcome, prior, after []byte) *checkError {
	ent := w.ents[e]
	k := w.s.kind
	if err := k.StateCodec().Decode(prior, &w.twin); err != nil {
		return w.fail(e, "encoding", err)
	}
	w.twinKV, w.twinUndo = nil, nil
	if ent.src != nil {
		if err := w.twinView(e); err != nil {
			return w.fail(e, "determinism", err)
		}
	}
	w.twinOut.Reset()
	terr, perr := callTransition(k.Machine(), &w.twin, in, w.twinOut)
	if perr != nil {
		return w.fail(e, "determinism", fmt.Errorf("re-running the step from the same prior state panicked: %v", perr))
	}
	nondet := func(what string, args ...any) *checkError {
		return w.fail(e, "determinism", fmt.Errorf("re-running the step from the same prior state gave a different "+what, args...))
	}
	if !machine.SameError(terr, out.Err) {
		return nondet("error: first %v, then %v", out.Err, terr)
	}
	if out.Status != machine.Accepted {
		return nil
	}
	var err error
	if w.enc2, err = k.StateCodec().Append(w.enc2[:0], &w.twin); err != nil {
		return w.fail(e, "encoding", err)
	}
	if !bytes.Equal(w.enc2, after) {
		return nondet("state (%d bytes vs %d bytes, first difference at byte %d)", len(after), len(w.enc2), firstDiff(after, w.enc2))
	}
	if cerr := w.sameActions(e, ent.fx.Tracked, ent.fx.Untracked, w.twinOut); cerr != nil {
		return cerr
	}
	return w.sameWrites(e)
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// sameActions compares emitted actions with a second run's, by ID and
// canonical encoding, in order.
func (w *World[S, I, A, R, U]) sameActions(e int, tracked []machine.Tracked[A], untracked []U, twin *machine.Actions[A, U]) *checkError {
	tt, tu := twin.Tracked(), twin.Untracked()
	if len(tracked) != len(tt) || len(untracked) != len(tu) {
		return w.fail(e, "determinism", fmt.Errorf("re-running the step gave %d tracked and %d untracked actions, first %d and %d", len(tt), len(tu), len(tracked), len(untracked)))
	}
	k := w.s.kind
	for i := range tracked {
		if tracked[i].ID != tt[i].ID {
			return w.fail(e, "determinism", fmt.Errorf("re-running the step gave action ID %d at position %d, first %d", tt[i].ID, i, tracked[i].ID))
		}
		a, err1 := k.ActionCodec().Append(w.enc2[:0], &tracked[i].Action)
		n := len(a)
		b, err2 := k.ActionCodec().Append(a, &tt[i].Action)
		w.enc2 = b
		if err := errors.Join(err1, err2); err != nil {
			return w.fail(e, "encoding", err)
		}
		if !bytes.Equal(b[:n], b[n:]) {
			return w.fail(e, "determinism", fmt.Errorf("re-running the step gave a different action %d: %+v, first %+v", tt[i].ID, tt[i].Action, tracked[i].Action))
		}
	}
	for i := range untracked {
		a, err1 := k.UntrackedCodec().Append(w.enc2[:0], &untracked[i])
		n := len(a)
		b, err2 := k.UntrackedCodec().Append(a, &tu[i])
		w.enc2 = b
		if err := errors.Join(err1, err2); err != nil {
			return w.fail(e, "encoding", err)
		}
		if !bytes.Equal(b[:n], b[n:]) {
			return w.fail(e, "determinism", fmt.Errorf("re-running the step gave a different untracked action at position %d: %+v, first %+v", i, tu[i], untracked[i]))
		}
	}
	return nil
}

func callTransition[S, I, A, R, U any](m machine.Machine[S, I, A, R, U], s *S, in machine.Input[I, R], out *machine.Actions[A, U]) (terr, perr error) {
	defer func() {
		if v := recover(); v != nil {
			perr = fmt.Errorf("panic: %v", v)
		}
	}()
	return m.Transition(s, in, out), nil
}

func callRestore[S, I, A, R, U any](m machine.Machine[S, I, A, R, U], s *S, out *machine.Actions[A, U]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return m.Restore(s, out)
}

func (w *World[S, I, A, R, U]) checkInvariants(e int) *checkError {
	s := w.ents[e].d.State()
	if w.inv != nil {
		if err := w.inv.Invariants(s); err != nil {
			return w.fail(e, "invariant", err)
		}
	}
	if w.modInv != nil {
		if err := w.modInv.Invariants(s); err != nil {
			return w.fail(e, "invariant", err)
		}
	}
	if w.entChk != nil {
		if err := w.entChk.CheckEntity(e, s); err != nil {
			return w.fail(e, "invariant", err)
		}
	}
	if w.worldCk != nil {
		if err := w.worldCk.CheckWorld(w); err != nil {
			return w.fail(e, "world-invariant", err)
		}
	}
	return nil
}

// journal makes the step's records durable in the entity's simulated store,
// in their binary form, and snapshots when due.
func (w *World[S, I, A, R, U]) journal(e int) *checkError {
	ent := w.ents[e]
	for i := range ent.fx.Records {
		ent.offs = append(ent.offs, len(ent.journal))
		ent.journal = ent.fx.Records[i].AppendBinary(ent.journal)
	}
	if len(ent.offs) < w.s.cfg.SnapshotEveryRecords {
		return nil
	}
	snap, err := ent.d.Snapshot()
	if err != nil {
		return w.fail(e, "snapshot", err)
	}
	ent.snap = snap.AppendBinary(ent.snap[:0])
	ent.journal = ent.journal[:0]
	ent.offs = ent.offs[:0]
	w.report.Snapshots++
	return nil
}

// crash discards entity e's live state and in-flight results, reloads it
// from its durable copy, and checks the recovery.
//
// readFailAt, when positive, fails that read of the recovery (a
// database-backed entity reads its keyspace while replaying): the recovery
// must fail with a read error and is then retried.
func (w *World[S, I, A, R, U]) crash(e int, readFailAt int) *checkError {
	ent := w.ents[e]
	k := w.s.kind
	w.report.Crashes++
	var snap *machine.Snapshot
	if len(ent.snap) > 0 {
		s, err := machine.DecodeSnapshot(ent.snap)
		if err != nil {
			return w.fail(e, "recovery", err)
		}
		snap = &s
	}
	records := make([]machine.Record, len(ent.offs))
	for i, off := range ent.offs {
		end := len(ent.journal)
		if i+1 < len(ent.offs) {
			end = ent.offs[i+1]
		}
		rec, err := machine.DecodeRecord(ent.journal[off:end])
		if err != nil {
			return w.fail(e, "recovery", err)
		}
		records[i] = rec
	}
	var d *machine.Driver[S, I, A, R, U]
	var err error
	if ent.src != nil {
		if readFailAt > 0 {
			ent.src.arm(readFailAt)
			d, err = k.RecoverFrom(ent.id, snap, records, ent.src)
			ent.src.arm(0)
			if errors.Is(err, kv.ErrRead) {
				w.report.RecoveryReadFailures++
				d, err = nil, nil
			} else if err != nil {
				return w.fail(e, "recovery", fmt.Errorf("reloading from the durable copy: %w", err))
			}
		}
		if d == nil {
			d, err = k.RecoverFrom(ent.id, snap, records, ent.src)
		}
	} else {
		d, err = k.Recover(ent.id, snap, records)
	}
	if err != nil {
		return w.fail(e, "recovery", fmt.Errorf("reloading from the durable copy: %w", err))
	}
	w.report.ReplayedRecords += uint64(len(records))
	before, err := k.StateCodec().Append(nil, d.State())
	if err != nil {
		return w.fail(e, "encoding", err)
	}
	if !bytes.Equal(before, ent.enc) {
		return w.fail(e, "recovery", fmt.Errorf("the state rebuilt from snapshot and journal differs from the state before the crash (first difference at byte %d): replay is not deterministic", firstDiff(before, ent.enc)))
	}
	ent.fx.Reset()
	rep, err := d.Restore(&ent.fx)
	if err != nil {
		return w.fail(e, "restore", err)
	}
	after, err := k.StateCodec().Append(nil, d.State())
	if err != nil {
		return w.fail(e, "encoding", err)
	}
	if !bytes.Equal(before, after) {
		return w.fail(e, "restore", errors.New("Restore modified the state (it must only read it)"))
	}
	if !rep.Complete() {
		var parts []string
		if len(rep.Missing) > 0 {
			parts = append(parts, fmt.Sprintf("missing outstanding actions %v (rule 7)", rep.Missing))
		}
		if len(rep.Unknown) > 0 {
			parts = append(parts, fmt.Sprintf("emitted IDs that are not outstanding %v (rule 4)", rep.Unknown))
		}
		if rep.UntrackedIgnored > 0 {
			parts = append(parts, fmt.Sprintf("emitted %d untracked actions (never re-driven)", rep.UntrackedIgnored))
		}
		return w.fail(e, "restore", fmt.Errorf("Restore is incomplete: %s", strings.Join(parts, "; ")))
	}
	// Check against the simulator's own account, independently of the driver.
	seen := make(map[machine.ActionID]bool, len(ent.fx.Tracked))
	for _, t := range ent.fx.Tracked {
		if seen[t.ID] {
			return w.fail(e, "restore", fmt.Errorf("Restore emitted action %d twice", t.ID))
		}
		seen[t.ID] = true
		if _, ok := ent.outstanding[t.ID]; !ok {
			return w.fail(e, "restore", fmt.Errorf("Restore emitted action %d, which is not outstanding", t.ID))
		}
	}
	var missing []machine.ActionID
	for id := range ent.outstanding {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return w.fail(e, "restore", fmt.Errorf("Restore forgot outstanding actions %v (rule 7)", missing))
	}
	// Restore must be a function of state: a second call agrees.
	if err := k.StateCodec().Decode(before, &w.twin); err != nil {
		return w.fail(e, "encoding", err)
	}
	w.twinOut.Reset()
	if err := callRestore(k.Machine(), &w.twin, w.twinOut); err != nil {
		return w.fail(e, "restore", fmt.Errorf("second Restore: %w", err))
	}
	if cerr := w.sameActions(e, ent.fx.Tracked, nil, w.twinOut); cerr != nil {
		cerr.check = "restore"
		return cerr
	}
	ent.d = d
	ent.incarnation++
	if !w.replaying {
		w.dropInflight(e)
		for _, t := range ent.fx.Tracked {
			w.dispatch(e, t)
		}
	}
	return w.checkInvariants(e)
}

// quiesce is the liveness phase: no new inputs, no new faults; lost results
// time out; every entity must come to rest with nothing outstanding.
func (w *World[S, I, A, R, U]) quiesce() *checkError {
	w.liveness = true
	// Results that were lost will never come: their timeouts will.
	for e, ent := range w.ents {
		for _, t := range ent.d.Outstanding(nil) {
			if !w.queue.has(e, t.ID) {
				w.dispatch(e, t)
			}
		}
	}
	limit := w.ops + w.s.cfg.LivenessSteps
	for w.queue.Len() > 0 {
		if w.ops >= limit {
			return w.fail(-1, "liveness", fmt.Errorf("the run did not come to rest within %d steps: %d results still in flight", w.s.cfg.LivenessSteps, w.queue.Len()))
		}
		w.tick()
		if cerr := w.deliver(); cerr != nil {
			return cerr
		}
	}
	for e, ent := range w.ents {
		if n := ent.d.NumOutstanding(); n > 0 {
			return w.fail(e, "liveness", fmt.Errorf("entity %s still has %d outstanding actions after all results were delivered", ent.id, n))
		}
	}
	if fc, ok := w.s.model.(FinalChecker[S, I, A, R, U]); ok {
		if err := fc.CheckFinal(w); err != nil {
			return w.fail(-1, "final", err)
		}
	}
	return nil
}

// inflight is a result (or an entity-to-entity delivery) on its way.
type inflight[I, A, R any] struct {
	due         int
	order       uint64
	to          int
	incarnation int // of the entity that will act on it when it is due
	delivery    bool
	from        int
	action      machine.Tracked[A]
	requestID   string
	in          I
	result      R
	note        string
}

type inflightQueue[I, A, R any] struct {
	items []inflight[I, A, R]
}

func (q *inflightQueue[I, A, R]) Len() int { return len(q.items) }
func (q *inflightQueue[I, A, R]) Less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	if a.due != b.due {
		return a.due < b.due
	}
	return a.order < b.order
}
func (q *inflightQueue[I, A, R]) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *inflightQueue[I, A, R]) Push(x any)    { q.items = append(q.items, x.(inflight[I, A, R])) }
func (q *inflightQueue[I, A, R]) Pop() any {
	n := len(q.items) - 1
	it := q.items[n]
	q.items[n] = inflight[I, A, R]{}
	q.items = q.items[:n]
	return it
}

func (q *inflightQueue[I, A, R]) has(e int, id machine.ActionID) bool {
	for i := range q.items {
		it := &q.items[i]
		if it.delivery && it.from == e && it.action.ID == id {
			return true
		}
		if !it.delivery && it.to == e && it.action.ID == id {
			return true
		}
	}
	return false
}

func (w *World[S, I, A, R, U]) push(it inflight[I, A, R]) {
	w.order++
	it.order = w.order
	heap.Push(&w.queue, it)
}

func (w *World[S, I, A, R, U]) delay() int {
	if w.liveness || w.s.cfg.Faults.DelayMaxSteps == 0 {
		return w.ops
	}
	return w.ops + w.rng.IntN(w.s.cfg.Faults.DelayMaxSteps+1)
}

// dispatch executes tracked action t of entity e in the simulated world:
// it schedules the action's result (or its delivery to another entity),
// with the configured faults.
func (w *World[S, I, A, R, U]) dispatch(e int, t machine.Tracked[A]) {
	inc := w.ents[e].incarnation
	if w.router != nil {
		if to, in, ok := w.router.Route(e, t); ok {
			key := machine.IdempotencyKey(machine.Entity{Kind: w.s.kind.Name(), ID: w.ents[e].id}, t.ID)
			w.push(inflight[I, A, R]{due: w.delay(), to: to, incarnation: inc, delivery: true, from: e, action: t, requestID: key, in: in})
			return
		}
	}
	f := w.s.cfg.Faults
	base := inflight[I, A, R]{to: e, incarnation: inc, action: t}
	if w.liveness {
		base.due = w.ops
		base.result = w.s.model.Result(w.rng, e, t)
		w.push(base)
		return
	}
	switch x := w.rng.Float64(); {
	case x < f.LoseProb:
		base.due = w.ops + f.TimeoutSteps
		base.result = w.s.model.Failure(t)
		base.note = "timeout (result lost)"
		w.report.Timeouts++
	case x < f.LoseProb+f.FailProb:
		base.due = w.delay()
		base.result = w.s.model.Failure(t)
		base.note = "terminal failure"
		w.report.FailuresInjected++
	default:
		base.due = w.delay()
		base.result = w.s.model.Result(w.rng, e, t)
	}
	w.push(base)
	if f.DuplicateProb > 0 && w.rng.Float64() < f.DuplicateProb {
		dup := inflight[I, A, R]{to: e, incarnation: inc, action: t, due: w.delay() + 1, note: "duplicate result"}
		dup.result = w.s.model.Result(w.rng, e, t)
		w.push(dup)
		w.report.DuplicateDeliveries++
	}
}

// dropInflight discards what a crash of entity e loses: results on their
// way to it (some arrive late anyway) and deliveries its executors were
// making (Restore re-emits those).
func (w *World[S, I, A, R, U]) dropInflight(e int) {
	inc := w.ents[e].incarnation
	kept := w.queue.items[:0]
	for _, it := range w.queue.items {
		switch {
		case it.delivery && it.from == e:
			continue
		case !it.delivery && it.to == e:
			if w.rng.Float64() >= w.s.cfg.Faults.LateAfterCrashProb {
				continue
			}
			it.incarnation = inc
			it.note = "late result from before a crash"
			w.report.LateDeliveries++
		}
		kept = append(kept, it)
	}
	clear(w.queue.items[len(kept):])
	w.queue.items = kept
	heap.Init(&w.queue)
}

// deliver pops the next due item and applies it.
func (w *World[S, I, A, R, U]) deliver() *checkError {
	it := heap.Pop(&w.queue).(inflight[I, A, R])
	if it.delivery {
		return w.deliverInput(it)
	}
	ev := Event[I, R]{Kind: EventCompletion, Entity: it.to, Time: w.now, ActionID: it.action.ID, Result: it.result, Note: it.note}
	w.note(ev)
	_, cerr := w.apply(&ev)
	return cerr
}

// deliverInput hands an entity-to-entity input to its target and sends the
// reply back to the sender, with faults on the way back.
func (w *World[S, I, A, R, U]) deliverInput(it inflight[I, A, R]) *checkError {
	w.report.EntityDeliveries++
	ev := Event[I, R]{Kind: EventInput, Entity: it.to, Time: w.now, RequestID: it.requestID, Input: it.in,
		Note: fmt.Sprintf("delivery of action %d of %s", it.action.ID, w.ents[it.from].id)}
	w.note(ev)
	out, cerr := w.apply(&ev)
	if cerr != nil {
		return cerr
	}
	f := w.s.cfg.Faults
	reply := inflight[I, A, R]{to: it.from, incarnation: it.incarnation, action: it.action}
	reply.result = w.router.Reply(it.action, out.Err)
	if !w.liveness && f.LoseProb > 0 && w.rng.Float64() < f.LoseProb {
		// The reply is lost: the sender's executor retries the delivery.
		it.due = w.ops + 1 + w.rng.IntN(f.TimeoutSteps+1)
		w.push(it)
		w.report.Timeouts++
		return nil
	}
	reply.due = w.delay()
	w.push(reply)
	if !w.liveness && f.DuplicateProb > 0 && w.rng.Float64() < f.DuplicateProb {
		// The executor retried anyway: a second delivery, answered from the
		// target's request window.
		it.due = w.delay() + 1
		w.push(it)
		w.report.DuplicateDeliveries++
	}
	return nil
}
