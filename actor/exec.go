package actor

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// dispatch executes a tracked action in its own goroutine: bounded by the
// host's in-flight semaphore, retried with exponential backoff and jitter,
// and completed with a terminal failure result after the retry budget. The
// result returns to the entity as a completion input, routed like any
// input. If the host stops first, the action is abandoned: it is durable,
// and Restore re-drives it at the next activation.
func (k *kindRuntime[S, I, A, R, U]) dispatch(h *Host, e machine.Entity, t machine.Tracked[A], fence Fence) {
	h.queued.Add(1)
	h.stats.actionsStarted.Add(1)
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		defer h.queued.Add(-1)
		if r, ok := k.execute(h, e, t, fence); ok {
			h.complete(e, t.ID, r)
		}
	}()
}

func (k *kindRuntime[S, I, A, R, U]) execute(h *Host, e machine.Entity, t machine.Tracked[A], fence Fence) (R, bool) {
	var zero R
	o := &k.opts
	key := machine.IdempotencyKey(e, t.ID)
	if o.Timer != nil {
		if at, ok := o.Timer(t.Action); ok {
			if d := at.Sub(h.cfg.Clock()); d > 0 {
				if sleepCtx(h.stopCtx, d) != nil {
					return zero, false
				}
			}
			return o.Fired(t.Action), true
		}
	}
	if o.Deliver != nil {
		if dv, ok := o.Deliver(e, t); ok {
			return k.deliver(h, t, dv, key)
		}
	}
	if o.Execute == nil {
		h.log.Error("no executor for a tracked action; it stays outstanding", "entity", e.String(), "action", t.ID)
		return zero, false
	}
	backoff := h.cfg.Actions.InitialBackoff
	for attempt := 1; ; attempt++ {
		if !h.acquire() {
			return zero, false
		}
		ctx, cancel := context.WithTimeout(h.stopCtx, h.cfg.Actions.AttemptTimeout)
		r, err := k.callExecutor(ctx, Call[A]{Entity: e, ID: t.ID, Action: t.Action, IdempotencyKey: key, Fence: fence, Attempt: attempt})
		cancel()
		h.release()
		if err == nil {
			return r, true
		}
		if h.stopCtx.Err() != nil {
			return zero, false
		}
		if attempt >= h.cfg.Actions.MaxAttempts {
			h.stats.actionFailures.Add(1)
			h.log.Warn("tracked action failed for good; delivering its failure result", "entity", e.String(), "action", t.ID, "attempts", attempt, "err", err)
			return o.Failure(t.Action, err), true
		}
		h.stats.actionRetries.Add(1)
		if sleepCtx(h.stopCtx, jitter(backoff)) != nil {
			return zero, false
		}
		backoff = min(backoff*2, h.cfg.Actions.MaxBackoff)
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
// key as request ID, retrying until the target answers: at-least-once
// delivery plus the target's request window make it effectively once.
// Only an input the target can never take (unknown kind, wrong type) ends
// the retries; its error becomes the reply.
func (k *kindRuntime[S, I, A, R, U]) deliver(h *Host, t machine.Tracked[A], dv Delivery, key string) (R, bool) {
	var zero R
	backoff := h.cfg.Actions.InitialBackoff
	for {
		ctx, cancel := context.WithTimeout(h.stopCtx, h.cfg.Actions.AttemptTimeout)
		resp, err := h.call(ctx, &request{entity: dv.To, requestID: key, input: dv.Input}, true)
		cancel()
		switch {
		case err == nil && (resp.err == nil || resp.rejected):
			return k.opts.Reply(t.Action, resp.err), true // the target's answer
		case err == nil && resp.permanent:
			return k.opts.Reply(t.Action, resp.err), true // it would fail again
		case errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrBadInput):
			return k.opts.Reply(t.Action, err), true // it can never be taken
		case h.stopCtx.Err() != nil || errors.Is(err, ErrStopped) || errors.Is(resp.err, ErrStopped):
			return zero, false
		}
		h.stats.actionRetries.Add(1)
		if sleepCtx(h.stopCtx, jitter(backoff)) != nil {
			return zero, false
		}
		backoff = min(backoff*2, h.cfg.Actions.MaxBackoff)
	}
}

func (h *Host) acquire() bool {
	select {
	case h.sem <- struct{}{}:
		return true
	case <-h.stopCtx.Done():
		return false
	}
}

func (h *Host) release() { <-h.sem }

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
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		defer func() {
			if v := recover(); v != nil {
				h.log.Error("untracked-action sink panicked", "entity", e.String(), "panic", v)
			}
		}()
		for _, u := range us {
			k.opts.Sink(h.stopCtx, e, u)
		}
	}()
}
