package actor

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// Tracked actions run on a pool of MaxInFlight long-lived workers fed by a
// queue. An attempt that fails waits out its backoff off the pool (a
// timer re-queues it), so a failing external system does not starve the
// other actions; timers wait off the pool too. The number of actions
// queued or running is bounded by admission (ActionConfig.MaxQueued).

// actionRun is one tracked action on its way to a result.
type actionRun[A any] struct {
	e       machine.Entity
	t       machine.Tracked[A]
	fence   Fence
	key     string
	attempt int
	backoff time.Duration
}

func (h *Host) startWorkers() {
	h.jobs = make(chan func(), h.cfg.Actions.MaxQueued)
	for i := 0; i < h.cfg.Actions.MaxInFlight; i++ {
		h.bg.Add(1)
		go func() {
			defer h.bg.Done()
			// One channel, no select per job: closeJobs ends the loop.
			for job := range h.jobs {
				job()
			}
		}()
	}
}

// enqueue hands a job to the workers without ever blocking the caller.
func (h *Host) enqueue(job func()) {
	h.jobsMu.RLock()
	defer h.jobsMu.RUnlock()
	if h.jobsClosed {
		go job()
		return
	}
	select {
	case h.jobs <- job:
	default:
		go job()
	}
}

// closeJobs ends the workers after they ran what was queued (every job
// sees the stopped host and returns at once); later jobs run on goroutines
// of their own.
func (h *Host) closeJobs() {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	if !h.jobsClosed && h.jobs != nil {
		h.jobsClosed = true
		close(h.jobs)
	}
}

// dispatch starts executing a tracked action; its result returns to the
// entity as a completion input, routed like any input. If the host stops
// first, the action is abandoned: it is durable, and Restore re-drives it
// at the next activation.
func (k *kindRuntime[S, I, A, R, U]) dispatch(h *Host, e machine.Entity, t machine.Tracked[A], fence Fence) {
	h.queued.Add(1)
	h.stats.actionsStarted.Add(1)
	k.m.actionsStarted.Inc()
	run := &actionRun[A]{e: e, t: t, fence: fence, key: machine.IdempotencyKey(e, t.ID), backoff: h.cfg.Actions.InitialBackoff}
	if o := &k.opts; o.Timer != nil {
		if at, ok := o.Timer(t.Action); ok {
			d := max(at.Sub(h.cfg.Clock()), 0)
			time.AfterFunc(d, func() { k.finish(h, run, o.Fired(t.Action), true) })
			return
		}
	}
	if o := &k.opts; o.Deliver != nil {
		if dv, ok := o.Deliver(e, t); ok {
			k.deliverAsync(h, run, dv)
			return
		}
	}
	h.enqueue(func() { k.attempt(h, run) })
}

// finish delivers the result (when there is one) and releases the slot.
func (k *kindRuntime[S, I, A, R, U]) finish(h *Host, run *actionRun[A], r R, ok bool) {
	if ok {
		h.complete(run.e, run.t.ID, r)
	}
	h.queued.Add(-1)
}

// retry schedules the next attempt after a jittered, growing backoff.
func (k *kindRuntime[S, I, A, R, U]) retry(h *Host, run *actionRun[A]) {
	var zero R
	if h.stopCtx.Err() != nil {
		k.finish(h, run, zero, false)
		return
	}
	h.stats.actionRetries.Add(1)
	k.m.actionRetries.Inc()
	wait := jitter(run.backoff)
	run.backoff = min(run.backoff*2, h.cfg.Actions.MaxBackoff)
	time.AfterFunc(wait, func() { h.enqueue(func() { k.attempt(h, run) }) })
}

// attempt makes one attempt at the action.
func (k *kindRuntime[S, I, A, R, U]) attempt(h *Host, run *actionRun[A]) {
	var zero R
	if h.stopCtx.Err() != nil {
		k.finish(h, run, zero, false)
		return
	}
	run.attempt++
	o := &k.opts
	if o.Deliver != nil {
		if dv, ok := o.Deliver(run.e, run.t); ok {
			k.deliver(h, run, dv)
			return
		}
	}
	if o.Execute == nil {
		if o.Failure != nil {
			// Nothing can execute it: the machine learns that as a terminal
			// failure, as after a spent retry budget.
			h.stats.actionFailures.Add(1)
			k.m.actionFails.Inc()
			h.log.Error("no executor for a tracked action; delivering its failure result", "entity", run.e.String(), "action", run.t.ID)
			k.finish(h, run, o.Failure(run.t.Action, ErrNoExecutor), true)
			return
		}
		h.log.Error("no executor and no Failure for a tracked action; it stays outstanding", "entity", run.e.String(), "action", run.t.ID)
		k.finish(h, run, zero, false)
		return
	}
	ctx, cancel := context.WithTimeout(h.stopCtx, h.cfg.Actions.AttemptTimeout)
	r, err := k.callExecutor(ctx, Call[A]{Entity: run.e, ID: run.t.ID, Action: run.t.Action, IdempotencyKey: run.key, Fence: run.fence, Attempt: run.attempt})
	cancel()
	switch {
	case err == nil:
		k.finish(h, run, r, true)
	case h.stopCtx.Err() != nil:
		k.finish(h, run, zero, false)
	case run.attempt >= h.cfg.Actions.MaxAttempts:
		h.stats.actionFailures.Add(1)
		k.m.actionFails.Inc()
		h.log.Warn("tracked action failed for good; delivering its failure result", "entity", run.e.String(), "action", run.t.ID, "attempts", run.attempt, "err", err)
		k.finish(h, run, o.Failure(run.t.Action, err), true)
	default:
		k.retry(h, run)
	}
}

// callExecutor runs the user's executor, turning a panic into an error.
func (k *kindRuntime[S, I, A, R, U]) callExecutor(ctx context.Context, c Call[A]) (r R, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errors.New("actor: executor panicked")
		}
	}()
	return k.opts.Execute(ctx, c)
}

// deliver hands an input to another entity with the action's idempotency
// key as request ID. It retries until the target answers: at-least-once
// delivery plus the target's request window make it effectively once.
// Only an input the target can never take (unknown kind, wrong type, a
// step that fails in machine code) ends the retries; its error becomes
// the reply.
func (k *kindRuntime[S, I, A, R, U]) deliver(h *Host, run *actionRun[A], dv Delivery) {
	// Not derived from stopCtx: thousands of deliveries registering with one
	// parent context contend on its lock. call watches stopCtx itself.
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Actions.AttemptTimeout)
	resp, err := h.call(ctx, &request{entity: dv.To, requestID: run.key, input: dv.Input}, true)
	cancel()
	k.delivered(h, run, resp, err)
}

// deliverAsync makes the first attempt at a delivery to a local entity
// without a worker: the request goes straight to the target (from the
// sending entity's goroutine, after its commit) and the target's answer,
// handled on the goroutine that gives it, becomes the completion. A target
// that does not answer within the attempt timeout counts as a failed
// attempt. A target on another node takes the blocking path on a worker.
func (k *kindRuntime[S, I, A, R, U]) deliverAsync(h *Host, run *actionRun[A], dv Delivery) {
	run.attempt++
	timeout := h.cfg.Actions.AttemptTimeout
	d := &pendingDelivery[S, I, A, R, U]{k: k, h: h, run: run}
	req := &request{entity: dv.To, requestID: run.key, input: dv.Input, deadline: time.Now().Add(timeout), done: d.answered}
	d.timer = time.AfterFunc(timeout, d.timedOut)
	local, err := h.admitLocal(req)
	switch {
	case !local:
		if d.settle() {
			run.attempt--
			h.enqueue(func() { k.attempt(h, run) })
		}
	case err != nil:
		if d.settle() {
			k.delivered(h, run, response{}, err)
		}
	}
}

// pendingDelivery is one asynchronous delivery attempt: the first of the
// answer and the timeout settles it.
type pendingDelivery[S, I, A, R, U any] struct {
	k       *kindRuntime[S, I, A, R, U]
	h       *Host
	run     *actionRun[A]
	timer   *time.Timer
	settled atomic.Bool
}

// settle reports whether the caller is the first to settle the attempt,
// and then stops its timer. The timer's own callback uses settled directly:
// it may run before deliverAsync has stored the timer.
func (d *pendingDelivery[S, I, A, R, U]) settle() bool {
	if !d.settled.CompareAndSwap(false, true) {
		return false
	}
	d.timer.Stop()
	return true
}

// answered runs when the target answers: after admission, so after the
// timer was stored.
func (d *pendingDelivery[S, I, A, R, U]) answered(resp response) {
	if d.settle() {
		d.k.delivered(d.h, d.run, resp, nil)
	}
}

func (d *pendingDelivery[S, I, A, R, U]) timedOut() {
	if d.settled.CompareAndSwap(false, true) {
		d.k.delivered(d.h, d.run, response{}, context.DeadlineExceeded)
	}
}

// delivered acts on the outcome of one delivery attempt: the target's
// answer (resp) or the failure to get one (err).
func (k *kindRuntime[S, I, A, R, U]) delivered(h *Host, run *actionRun[A], resp response, err error) {
	var zero R
	switch {
	case err == nil && (resp.err == nil || resp.rejected):
		k.finish(h, run, k.opts.Reply(run.t.Action, resp.err), true) // the target's answer
	case err == nil && resp.permanent:
		k.finish(h, run, k.opts.Reply(run.t.Action, resp.err), true) // it would fail again
	case errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrBadInput) || errors.Is(err, ErrBadEnvelope):
		k.finish(h, run, k.opts.Reply(run.t.Action, err), true) // it can never be taken
	case h.stopCtx.Err() != nil || errors.Is(err, ErrStopped) || errors.Is(resp.err, ErrStopped):
		k.finish(h, run, zero, false)
	default:
		k.retry(h, run)
	}
}

// jitter draws a wait uniformly from [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sink hands untracked actions to the kind's sink, after their transition
// is durable, at most once.
func (k *kindRuntime[S, I, A, R, U]) sink(h *Host, e machine.Entity, us []U) {
	h.enqueue(func() {
		defer func() {
			if v := recover(); v != nil {
				h.log.Error("untracked-action sink panicked", "entity", e.String(), "panic", v)
			}
		}()
		for _, u := range us {
			k.opts.Sink(h.stopCtx, e, u)
		}
	})
}
