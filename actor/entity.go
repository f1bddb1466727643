package actor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
)

// Messages between the host's actors and goroutines.
type (
	loaded struct {
		l   persistence.Loaded
		err error
	}
	appended struct{ err error }
	// passivate asks an entity to stop when idle; force also stops an
	// entity with outstanding actions (the active-entity cap). handoff
	// (the shard moved away, or came back under a new epoch) also answers
	// its queued inputs with ErrMoved at once: only the append in flight
	// finishes here.
	passivate struct{ force, handoff bool }
	// ownership tells a shard actor the epoch this host now owns it under
	// (0: not owned).
	ownership        struct{ epoch uint64 }
	passivateRefused struct{ entity machine.Entity }
	// stopMe asks the shard to passivate a failed entity; the shard holds
	// new inputs until it has stopped, then activates it afresh.
	stopMe struct{ entity machine.Entity }
	// activate asks a shard to activate entities (with outstanding
	// actions); epoch, when not 0, is the ownership it was listed under.
	activate struct {
		entities []machine.Entity
		epoch    uint64
	}
	tickMsg struct{}
)

// entity is the actor that owns one entity: it loads it, applies its
// inputs one at a time through the pure driver, persists each batch before
// replying, then hands the batch's actions to the executors.
type entity[S, I, A, R, U any] struct {
	h     *Host
	rt    *kindRuntime[S, I, A, R, U]
	key   machine.Entity
	shard uint32
	self  *protoactor.PID

	d           *machine.Driver[S, I, A, R, U]
	loading     bool
	queue       []*request
	qhead       int
	qone        [1]*request // the queue's storage while it holds one request
	batch       *batch[A, U]
	fx          *machine.Effects[A, U] // nil while idle (pooled per kind)
	sinceSnap   int
	passivating bool
	forced      bool
	loadStart   time.Time
	// epoch is the shard epoch this activation serves under (read when
	// its data loaded): the fence given to its actions.
	epoch uint64
	// failed is set when the entity cannot serve (its data did not load):
	// it answers with this error until the shard stops it.
	failed error
	// cache is the keyspace cache of a database-backed entity (view.go).
	cache *kv.Cache
}

type stepReply struct {
	req  *request
	resp response
}

// batch is one append in flight. Batches are pooled per kind (a busy node
// makes one per transition); msg and done are the store's callback,
// made once per batch object.
type batch[A, U any] struct {
	start     time.Time
	replies   []stepReply
	tracked   []machine.Tracked[A]
	untracked []U
	seq       uint64
	self      *protoactor.PID
	root      *protoactor.RootContext
	msg       appended
	done      func(error)
}

func (k *kindRuntime[S, I, A, R, U]) getBatch(h *Host, self *protoactor.PID) *batch[A, U] {
	b, ok := k.batches.Get().(*batch[A, U])
	if !ok {
		b = &batch[A, U]{}
		b.done = func(err error) {
			b.msg.err = err
			b.root.Send(b.self, &b.msg)
		}
	}
	b.self, b.root = self, h.root
	return b
}

// putBatch returns a batch whose append has been answered (never one whose
// callback may still come).
func (k *kindRuntime[S, I, A, R, U]) putBatch(b *batch[A, U]) {
	clear(b.replies)
	clear(b.tracked)
	*b = batch[A, U]{replies: b.replies[:0], tracked: b.tracked[:0], done: b.done}
	k.batches.Put(b)
}

// Receive implements protoactor.Actor. A panic in the runtime's own code
// fails the entity's waiting callers and stops the actor (its durable state
// reloads on next use) instead of a silent restart.
func (e *entity[S, I, A, R, U]) Receive(c protoactor.Context) {
	defer func() {
		if v := recover(); v != nil {
			e.h.log.Error("entity actor panicked; stopping it", "entity", e.key.String(), "panic", v, "stack", string(debug.Stack()))
			e.fail(c, fmt.Errorf("%w: %s: internal error", ErrUnavailable, e.key))
		}
	}()
	switch m := c.Message().(type) {
	case *protoactor.Started:
		e.self = c.Self()
		e.startLoad()
	case *loaded:
		e.onLoaded(c, m)
	case *request:
		e.enqueue(c, m)
	case *appended:
		e.onAppended(c, m)
	case *passivate:
		e.passivating = true
		e.forced = e.forced || m.force
		if m.handoff {
			e.bounceQueued()
		}
		e.maybeStop(c)
	case *protoactor.Stopping:
		e.failAll(fmt.Errorf("%w: %s is stopping", ErrUnavailable, e.key))
		e.dropCache()
	}
}

func (e *entity[S, I, A, R, U]) startLoad() {
	e.loadStart = time.Now()
	e.loading = true
	e.d = nil
	h, self, key := e.h, e.self, e.key
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		ctx, cancel := context.WithTimeout(h.stopCtx, h.cfg.ShutdownTimeout)
		defer cancel()
		l, err := h.cfg.Store.Load(ctx, key)
		h.root.Send(self, &loaded{l: l, err: err})
	}()
}

func (e *entity[S, I, A, R, U]) onLoaded(c protoactor.Context, m *loaded) {
	h := e.h
	fail := func(err error) {
		h.stats.loadFailures.Add(1)
		switch {
		case errors.Is(err, machine.ErrNondeterminism):
			e.rt.m.nondeterminism.Inc()
		case errors.Is(err, machine.ErrCorrupt) || errors.Is(err, persistence.ErrCorrupt):
			e.rt.m.corrupt.Inc()
		default:
			e.rt.m.loadOther.Inc()
		}
		h.log.Error("entity failed to load", "entity", e.key.String(), "err", err)
		e.fail(c, fmt.Errorf("%w: %s: %w", ErrEntityFailed, e.key, err))
	}
	if m.err != nil {
		if storeUnavailable(m.err) {
			// The store could not be read right now (its database is
			// unreachable, the store is closing, the read timed out):
			// nothing is known to be wrong with the entity's data. Its
			// callers get ErrUnavailable, which Ask retries, not
			// ErrEntityFailed, which says the data cannot be loaded and
			// is not retried; the next use loads it afresh.
			h.stats.loadFailures.Add(1)
			e.rt.m.loadOther.Inc()
			h.log.Warn("entity could not be loaded: the store is unavailable", "entity", e.key.String(), "err", m.err)
			e.fail(c, fmt.Errorf("%w: %s: %w", ErrUnavailable, e.key, m.err))
			return
		}
		fail(m.err)
		return
	}
	d, err := e.recoverEntity(m.l)
	if err != nil {
		fail(err)
		return
	}
	if d.Seq() != m.l.LastSeq {
		fail(fmt.Errorf("replayed to seq %d but the store's last seq is %d", d.Seq(), m.l.LastSeq))
		return
	}
	e.effects()
	rep, err := d.Restore(e.fx)
	if err != nil {
		fail(fmt.Errorf("restore: %w", err))
		return
	}
	if !rep.Complete() {
		h.stats.restoreMismatch.Add(1)
		e.rt.m.restoreMismatch.Inc()
		h.log.Warn("Restore disagrees with the journal's outstanding actions (a machine bug)", "entity", e.key.String(),
			"missing", rep.Missing, "unknown", rep.Unknown, "untracked", rep.UntrackedIgnored)
	}
	h.stats.activations.Add(1)
	e.rt.m.activations.Inc()
	e.rt.m.activation.Observe(time.Since(e.loadStart).Seconds())
	e.d = d
	e.loading = false
	e.sinceSnap = len(m.l.Records) // the journal tail since the last snapshot
	e.epoch = h.epochs[e.shard].Load()
	if e.epoch != 0 {
		fence := Fence{ShardEpoch: e.epoch, Seq: d.Seq()}
		for _, t := range e.fx.Tracked {
			e.rt.dispatch(h, e.key, t, fence)
		}
	}
	e.fx.Reset()
	e.process(c)
}

// storeUnavailable reports whether a failed Store.Load says nothing about
// the entity's data: anything but corrupt data (which fails the entity)
// is the store's own trouble, and may pass.
func storeUnavailable(err error) bool {
	return !errors.Is(err, persistence.ErrCorrupt) && !errors.Is(err, machine.ErrCorrupt) &&
		!errors.Is(err, machine.ErrNondeterminism)
}

// fail puts the entity out of service: waiting callers and later ones get
// err, and the shard is asked to stop it (the next use loads it afresh).
func (e *entity[S, I, A, R, U]) fail(c protoactor.Context, err error) {
	e.failed = err
	e.loading = false
	e.failAll(err)
	c.Send(c.Parent(), &stopMe{entity: e.key})
}

func (e *entity[S, I, A, R, U]) enqueue(c protoactor.Context, r *request) {
	if e.failed != nil {
		if errors.Is(e.failed, ErrMoved) {
			e.h.bounce(r, e.failed) // completions go on to the owner
		} else {
			r.finish(response{err: e.failed})
		}
		return
	}
	if !r.query && !r.completion && len(e.queue)-e.qhead >= e.h.cfg.MailboxLimit {
		e.h.overload()
		r.finish(response{err: fmt.Errorf("%w: %s has %d inputs waiting", ErrOverloaded, e.key, len(e.queue)-e.qhead)})
		return
	}
	e.queue = append(e.queue, r)
	if !e.loading && e.batch == nil {
		e.process(c)
	}
}

// effects makes e.fx empty and ready, from the kind's pool when the entity
// was idle.
func (e *entity[S, I, A, R, U]) effects() {
	if e.fx == nil {
		if fx, ok := e.rt.effects.Get().(*machine.Effects[A, U]); ok {
			e.fx = fx
		} else {
			e.fx = &machine.Effects[A, U]{}
		}
	}
	e.fx.Reset()
}

func (e *entity[S, I, A, R, U]) pop() *request {
	r := e.queue[e.qhead]
	e.queue[e.qhead] = nil
	e.qhead++
	if e.qhead == len(e.queue) {
		e.queue = e.queue[:0]
		e.qhead = 0
	}
	return r
}

// process steps queued inputs into one batch and starts its append; it
// returns when a batch is in flight or nothing is left. A query waits for
// the inputs before it to be durable, so it never shows unacknowledged
// state.
func (e *entity[S, I, A, R, U]) process(c protoactor.Context) {
	h := e.h
	var b *batch[A, U]
	for e.batch == nil && e.qhead < len(e.queue) && !e.loading {
		e.effects()
		if b == nil {
			b = e.rt.getBatch(h, e.self)
		}
		replies := b.replies[:0]
		now := h.cfg.Clock()
		// Deadlines come from callers' contexts and the attempt timeout:
		// real time, whatever Config.Clock says.
		wall := time.Now()
		for e.qhead < len(e.queue) && len(replies) < h.cfg.MaxBatchInputs {
			r := e.queue[e.qhead]
			if r.query {
				if len(replies) > 0 {
					break
				}
				e.pop()
				e.answerQuery(r)
				continue
			}
			e.pop()
			if (r.reply != nil || r.done != nil) && !r.deadline.IsZero() && wall.After(r.deadline) {
				r.finish(response{err: context.DeadlineExceeded})
				continue
			}
			in := machine.Input[I, R]{Time: now, RequestID: r.requestID}
			if r.completion {
				res, ok := r.result.(R)
				if !ok {
					h.log.Error("completion of the wrong type dropped", "entity", e.key.String(), "type", fmt.Sprintf("%T", r.result))
					continue
				}
				in.Completion = &machine.Completion[R]{ActionID: r.actionID, Result: res}
			} else {
				in.Value = r.input.(I)
			}
			start := time.Now()
			out, err := e.d.Step(in, e.fx)
			e.rt.m.outcome(out, err, time.Since(start))
			e.count(out, err)
			if err != nil && r.completion && e.retryCompletion(r, err) {
				continue
			}
			resp := response{}
			if err != nil {
				resp = e.stepError(err)
			}
			if err == nil && out.Err != nil {
				resp = response{err: out.Err, rejected: true}
			}
			replies = append(replies, stepReply{req: r, resp: resp})
		}
		b.replies = replies
		if len(e.fx.Records) == 0 {
			for _, sr := range replies {
				sr.req.finish(sr.resp)
			}
			clear(replies)
			continue
		}
		e.persist(c, b)
		b = nil
	}
	if b != nil {
		e.rt.putBatch(b)
	}
	if e.batch == nil && e.qhead == len(e.queue) && e.d != nil {
		// Idle: give back the buffers a busy entity reuses (a million idle
		// entities must fit in memory).
		e.queue = e.qone[:0]
		e.qhead = 0
		if e.fx != nil {
			e.fx.Reset()
			e.rt.effects.Put(e.fx)
			e.fx = nil
		}
		e.d.Trim()
	}
	e.maybeStop(c)
}

func (e *entity[S, I, A, R, U]) count(out machine.Outcome, err error) {
	c := &e.h.stats
	if err != nil {
		c.failed.Add(1)
		e.h.log.Error("step failed", "entity", e.key.String(), "err", err)
		return
	}
	switch out.Status {
	case machine.Accepted:
		c.accepted.Add(1)
	case machine.Rejected:
		c.rejected.Add(1)
		if out.RolledBack {
			e.h.log.Warn("machine mutated its state before rejecting an input (rule 1); rolled back", "entity", e.key.String())
		}
	case machine.Duplicate:
		c.duplicates.Add(1)
	case machine.Stale:
		c.stale.Add(1)
	}
}

// persist appends the batch's records (and a snapshot when due) and
// remembers what to release once the append is durable.
func (e *entity[S, I, A, R, U]) persist(_ protoactor.Context, b *batch[A, U]) {
	h := e.h
	b.seq, b.start = e.d.Seq(), time.Now()
	e.rt.m.batch.Observe(float64(len(e.fx.Records)))
	if len(e.fx.Tracked) > 0 {
		b.tracked = append(b.tracked[:0], e.fx.Tracked...)
	}
	if len(e.fx.Untracked) > 0 {
		b.untracked = append([]U(nil), e.fx.Untracked...)
	}
	recs := e.fx.Records
	req := persistence.AppendRequest{
		Entity:      e.key,
		Shard:       e.shard,
		ExpectedSeq: recs[0].Seq - 1,
		Records:     recs,
		Pending:     e.d.NumOutstanding() > 0,
		Epoch:       e.epoch,
	}
	e.sinceSnap += len(recs)
	if n := h.cfg.SnapshotEveryRecords; n > 0 && e.sinceSnap >= n {
		if snap, err := e.d.Snapshot(); err == nil {
			req.Snapshot = &snap
			e.sinceSnap = 0
		} else {
			h.log.Error("snapshot failed; continuing with the journal", "entity", e.key.String(), "err", err)
		}
	}
	e.batch = b
	h.appends.Add(1)
	h.stats.appends.Add(1)
	h.cfg.Store.AppendAsync(req, b.done)
}

func (e *entity[S, I, A, R, U]) onAppended(c protoactor.Context, m *appended) {
	h := e.h
	b := e.batch
	e.batch = nil
	h.appends.Add(-1)
	if b == nil {
		return
	}
	defer e.rt.putBatch(b)
	e.rt.m.persist.Observe(time.Since(b.start).Seconds())
	if m.err != nil {
		h.stats.appendFailures.Add(1)
		h.metrics.appendFailures.Inc()
		var conflict *persistence.ConflictError
		if errors.As(m.err, &conflict) && conflict.Fenced {
			// A newer owner has written the entity: this host's view of
			// the shard is stale. Nothing of the batch is durable; its
			// callers are told the entity moved (they retry at the owner
			// with the same request IDs) and the entity stops serving here
			// instead of reloading and failing again until the view
			// catches up.
			h.log.Warn("append fenced: a newer owner wrote the entity; stopping it here", "entity", e.key.String(),
				"epoch", conflict.RequestEpoch, "owner_epoch", conflict.StoredEpoch)
			err := fmt.Errorf("%w: %s is owned under a newer epoch (%d > %d)", ErrMoved, e.key, conflict.StoredEpoch, conflict.RequestEpoch)
			for _, sr := range b.replies {
				h.bounce(sr.req, err)
			}
			e.failed = err
			e.bounceQueued()
			c.Send(c.Parent(), &stopMe{entity: e.key})
			return
		}
		// The batch is not durable and the live state is ahead of the
		// store: answer its callers, forget its actions, and reload.
		h.log.Error("append failed; reloading the entity", "entity", e.key.String(), "err", m.err)
		err := fmt.Errorf("%w: %s: %w", ErrUnavailable, e.key, m.err)
		for _, sr := range b.replies {
			sr.req.finish(response{err: err})
		}
		e.startLoad()
		return
	}
	e.durable(b.seq)
	for _, sr := range b.replies {
		sr.req.finish(sr.resp)
	}
	if e.owner() {
		fence := Fence{ShardEpoch: e.epoch, Seq: b.seq}
		for _, t := range b.tracked {
			e.rt.dispatch(h, e.key, t, fence)
		}
	} else if len(b.tracked) > 0 {
		// The shard was handed off while the append was in flight: the
		// actions are durable, and the owner's Restore re-drives them.
		h.log.Debug("shard handed off; leaving the batch's actions to the new owner", "entity", e.key.String(), "actions", len(b.tracked))
	}
	if len(b.untracked) > 0 && e.rt.opts.Sink != nil {
		e.rt.sink(h, e.key, b.untracked) // the sink's job keeps the slice
	}
	e.process(c)
}

func (e *entity[S, I, A, R, U]) answerQuery(r *request) {
	var s S
	if err := e.rt.kind.CopyState(&s, e.d.State()); err != nil {
		r.finish(response{err: fmt.Errorf("actor: copying the state of %s: %w", e.key, err)})
		return
	}
	detachView(&s)
	r.finish(response{state: s})
}

// maybeStop stops a passivating entity once it is idle. An entity with
// outstanding tracked actions refuses ordinary passivation (its actions'
// results are on their way); the active-entity cap forces it.
func (e *entity[S, I, A, R, U]) maybeStop(c protoactor.Context) {
	if e.passivating && e.failed != nil {
		c.Stop(c.Self())
		return
	}
	if !e.passivating || e.loading || e.batch != nil || e.qhead < len(e.queue) {
		return
	}
	if !e.forced && e.d != nil && e.d.NumOutstanding() > 0 {
		e.passivating = false
		c.Send(c.Parent(), &passivateRefused{entity: e.key})
		return
	}
	c.Stop(c.Self())
}

// owner reports whether this host still owns the entity's shard under
// the epoch the entity loaded with.
func (e *entity[S, I, A, R, U]) owner() bool {
	return e.epoch != 0 && e.h.epochs[e.shard].Load() == e.epoch
}

// bounceQueued answers the queued (not yet stepped) inputs with ErrMoved
// and sends queued completions on to the shard's owner.
func (e *entity[S, I, A, R, U]) bounceQueued() {
	for e.qhead < len(e.queue) {
		e.h.bounce(e.pop(), fmt.Errorf("%w: shard %d of %s was handed off", ErrMoved, e.shard, e.key))
	}
}

// failAll answers every waiting caller with err.
func (e *entity[S, I, A, R, U]) failAll(err error) {
	for e.qhead < len(e.queue) {
		e.pop().finish(response{err: err})
	}
	if b := e.batch; b != nil {
		for _, sr := range b.replies {
			sr.req.finish(response{err: err})
		}
		// The append's callback still arrives (to a dead actor); account
		// for it here so shutdown does not wait for it.
		e.batch = nil
		e.h.appends.Add(-1)
	}
}
