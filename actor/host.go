package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/shard"
)

// Host is one node: it hosts the entities of the registered kinds on
// protoactor-go actors, persists their inputs in the Store before replying,
// and executes their tracked actions.
//
// Build it with New, Register kinds, then Start; Stop drains it.
type Host struct {
	cfg    Config
	log    *slog.Logger
	system *protoactor.ActorSystem
	root   *protoactor.RootContext
	kinds  map[string]kindEntry
	// codecs holds the wire codecs of every kind this process can send to:
	// the hosted kinds, and a client's registered kinds.
	codecs map[string]kindCodecs
	shards []*protoactor.PID
	// tables hold, per shard, its active entities for direct sends
	// (route.go).
	tables []*shardTable
	net    *netState // nil without cluster mode
	// epochs holds, per shard, the epoch this host owns it under (0: not
	// owned). Written by the shard actors only; read by entities for their
	// fence. Without a watched view every shard is owned under
	// Config.ShardEpoch.
	epochs []atomic.Uint64
	// active counts each shard's entity actors (running or stopping).
	active []atomic.Int64

	state      atomic.Int32 // hostNew, hostStarted, hostStopping, hostStopped
	pending    atomic.Int64 // admitted requests not yet answered
	appends    atomic.Int64 // store appends in flight
	queued     atomic.Int64 // tracked actions waiting or executing
	jobs       chan func()  // tracked actions (and sinks) for the workers
	jobsMu     sync.RWMutex
	jobsClosed bool
	dispatch   *poolDispatcher
	stopCtx    context.Context
	stopFn     context.CancelFunc
	bg         sync.WaitGroup // loaders, executors, the ticker
	stats      counters
	metrics    *metrics
	stopOnce   sync.Once
}

const (
	hostNew int32 = iota
	hostStarted
	hostStopping
	hostStopped
)

// New validates cfg and returns a host that is not started yet.
func New(cfg Config) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := &Host{cfg: cfg, log: cfg.Logger, kinds: map[string]kindEntry{}, codecs: map[string]kindCodecs{}, metrics: newMetrics()}
	if cfg.Cluster != nil {
		h.net = newNetState(*cfg.Cluster, false)
	}
	h.epochs = make([]atomic.Uint64, cfg.Shards)
	h.active = make([]atomic.Int64, cfg.Shards)
	if !h.followsView() {
		for i := range h.epochs {
			h.epochs[i].Store(cfg.ShardEpoch)
		}
	}
	if cfg.Metrics != nil {
		if err := h.metrics.register(cfg.Metrics, h); err != nil {
			return nil, fmt.Errorf("%w: registering metrics: %w", ErrInvalidConfig, err)
		}
	}
	h.stopCtx, h.stopFn = context.WithCancel(context.Background())
	return h, nil
}

// kindEntry is the type-erased view of a registered kind.
type kindEntry interface {
	kindCodecs
	newEntity(h *Host, e machine.Entity, shard uint32) protoactor.Actor
}

// ShardOf returns the shard an entity lives in.
func (h *Host) ShardOf(e machine.Entity) uint32 {
	return uint32(shard.Of(e, h.cfg.Shards))
}

// Start spawns the shard actors and re-activates, eagerly, every entity
// that the store lists with outstanding tracked actions, so their work
// resumes without waiting for a new message. A host that follows a
// watched cluster view (ClusterConfig.Watch) owns no shard until its first
// view arrives, and re-activates a shard's entities when it gains it.
func (h *Host) Start(ctx context.Context) error {
	if err := h.startSystem(); err != nil {
		return err
	}
	h.dispatch = newPoolDispatcher(8*runtime.GOMAXPROCS(0), 300)
	h.startWorkers()
	h.shards = make([]*protoactor.PID, h.cfg.Shards)
	h.tables = make([]*shardTable, h.cfg.Shards)
	for i := range h.tables {
		h.tables[i] = &shardTable{ents: map[machine.Entity]*slot{}}
	}
	strategy := protoactor.NewOneForOneStrategy(0, 0, func(reason any) protoactor.Directive {
		h.log.Error("entity actor failed; stopping it (its state reloads on next use)", "reason", reason)
		return protoactor.StopDirective
	})
	for i := range h.shards {
		id := uint32(i)
		props := protoactor.PropsFromProducer(func() protoactor.Actor { return newShardActor(h, id) },
			protoactor.WithSupervisor(strategy), protoactor.WithDispatcher(h.dispatch))
		h.shards[i] = h.root.Spawn(props)
	}
	// Eager re-activation of entities with outstanding tracked actions
	// (a host that follows a view does it per shard as it gains them).
	var problems []error
	for i := range h.shards {
		if h.followsView() {
			break // activatePending, when the shard is gained
		}
		ents, err := h.cfg.Store.Pending(ctx, uint32(i))
		if err != nil {
			problems = append(problems, fmt.Errorf("shard %d: %w", i, err))
			continue
		}
		if len(ents) > 0 {
			h.root.Send(h.shards[i], &activate{entities: ents})
			h.stats.eagerActivations.Add(uint64(len(ents)))
		}
	}
	if h.net != nil {
		if err := h.startNet(); err != nil {
			problems = append(problems, err)
		}
	}
	h.bg.Add(1)
	go h.ticker()
	if len(problems) > 0 {
		return fmt.Errorf("actor: listing entities with outstanding actions: %w", errors.Join(problems...))
	}
	return nil
}

// startSystem moves the host (or client) to started and creates its actor
// system, logging through the host's logger.
func (h *Host) startSystem() error {
	if !h.state.CompareAndSwap(hostNew, hostStarted) {
		return errors.New("actor: Start called twice")
	}
	logger := h.log
	h.system = protoactor.NewActorSystem(protoactor.WithLoggerFactory(func(*protoactor.ActorSystem) *slog.Logger {
		return logger.With("lib", "protoactor")
	}))
	h.root = h.system.Root
	return nil
}

// ticker drives idle passivation from the shard actors (not from
// protoactor's receive timeouts, which race).
func (h *Host) ticker() {
	defer h.bg.Done()
	every := time.Second
	if h.cfg.IdleTimeout > 0 {
		every = min(every, max(h.cfg.IdleTimeout/4, 10*time.Millisecond))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stopCtx.Done():
			return
		case <-t.C:
			for _, pid := range h.shards {
				h.root.Send(pid, tickMsg{})
			}
		}
	}
}

// Stop stops accepting requests, drains what is in flight (requests and
// store appends) within ctx and the configured ShutdownTimeout, then stops
// the actors and the executors. Tracked actions still executing are
// abandoned: they are durable and re-driven by Restore at the next start.
func (h *Host) Stop(ctx context.Context) error {
	var err error
	h.stopOnce.Do(func() {
		if !h.state.CompareAndSwap(hostStarted, hostStopping) {
			h.state.Store(hostStopped)
			h.stopFn()
			return
		}
		ctx, cancel := context.WithTimeout(ctx, h.cfg.ShutdownTimeout)
		defer cancel()
		for h.pending.Load() > 0 || h.appends.Load() > 0 {
			if werr := h.wait(ctx, 2*time.Millisecond); werr != nil {
				err = fmt.Errorf("actor: drain incomplete (%d requests, %d appends in flight): %w", h.pending.Load(), h.appends.Load(), werr)
				break
			}
		}
		h.stopFn()
		h.closeJobs()
		for _, pid := range h.shards {
			_ = h.root.StopFuture(pid).Wait()
		}
		h.stopNet()
		h.system.Shutdown()
		h.bg.Wait()
		h.dispatch.stop()
		h.state.Store(hostStopped)
	})
	return err
}

// wait sleeps for d unless ctx or the host ends first.
func (h *Host) wait(ctx context.Context, d time.Duration) error {
	return h.retryWait(ctx, d, nil)
}

// retryWait waits d before a retry, less when changed (from viewChanged,
// taken before the attempt) is closed: a new view may route the retry to
// a new owner at once.
func (h *Host) retryWait(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-changed:
		return nil
	}
}

// viewChanged returns a channel closed when the next cluster view
// arrives (or is seen by polling ClusterConfig.View), or nil (never
// closed) without cluster mode.
func (h *Host) viewChanged() <-chan struct{} {
	if h.net == nil {
		return nil
	}
	return h.net.viewChanged()
}

// request is what travels to an entity: an input, a completion or a query.
type request struct {
	entity     machine.Entity
	requestID  string
	input      any
	completion bool
	actionID   machine.ActionID
	result     any
	query      bool
	reply      chan response // nil for Tell and completions
	// done, when set instead of reply, receives the answer (a request that
	// came by envelope: it sends the reply envelope). It must not block.
	done     func(response)
	deadline time.Time
	counted  bool // counted in Host.pending
	h        *Host
	// stripe, set while the request is on its way through the shard
	// actor, is the counter that keeps its entity's gate closed (route.go).
	stripe *atomic.Int32
}

type response struct {
	err   error
	state any
	// rejected: err is the machine's own answer (a rejection, or the
	// original reply of a duplicate), not a runtime failure.
	rejected bool
	// permanent: err is a step failure that will recur (a panic or limit
	// in machine code), so retrying cannot help.
	permanent bool
}

// finish answers the request exactly once.
func (r *request) finish(resp response) {
	if r.reply != nil {
		r.reply <- resp
		r.reply = nil
		if r.h != nil && r.h.dispatch != nil {
			r.h.dispatch.answered.Add(1)
		}
	} else if r.done != nil {
		done := r.done
		r.done = nil
		done(resp)
	}
	if r.counted {
		r.counted = false
		r.h.pending.Add(-1)
	}
}

// call admits a request and, when wait is set, waits for its answer. In
// cluster mode it goes to the owner of the entity's shard in the current
// view: this host, or another process over remote.
func (h *Host) call(ctx context.Context, req *request, wait bool) (response, error) {
	k, rt, err := h.check(req)
	if err != nil {
		return response{}, err
	}
	if err := ctx.Err(); err != nil {
		return response{}, err
	}
	if rt.remote {
		return h.callRemote(ctx, k, req, rt, wait)
	}
	if dl, ok := ctx.Deadline(); ok {
		req.deadline = dl
	}
	var ch chan response
	if wait {
		ch = make(chan response, 1)
		req.reply = ch
	}
	if err := h.admit(req); err != nil {
		return response{}, err
	}
	if !wait {
		return response{}, nil
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return response{}, ctx.Err()
	case <-h.stopCtx.Done():
		return response{}, ErrStopped
	}
}

// check validates a request against the host's state and kinds and finds
// its route.
func (h *Host) check(req *request) (kindCodecs, route, error) {
	switch h.state.Load() {
	case hostNew:
		return nil, route{}, ErrNotStarted
	case hostStopping, hostStopped:
		return nil, route{}, ErrStopped
	}
	k, ok := h.codecs[req.entity.Kind]
	if !ok {
		return nil, route{}, fmt.Errorf("%w: %q", ErrUnknownKind, req.entity.Kind)
	}
	if !req.query && !req.completion && !k.accepts(req.input) {
		return nil, route{}, fmt.Errorf("%w: %T for kind %q", ErrBadInput, req.input, req.entity.Kind)
	}
	rt, err := h.routeOf(req.entity)
	if err != nil {
		return nil, route{}, err
	}
	return k, rt, nil
}

// admitLocal admits a request whose answer goes to req.done, without
// waiting, when its entity lives on this host; it reports local false,
// having done nothing, when the entity lives on another node.
func (h *Host) admitLocal(req *request) (local bool, err error) {
	_, rt, err := h.check(req)
	if err != nil {
		return true, err
	}
	if rt.remote {
		return false, nil
	}
	return true, h.admit(req)
}

// admit counts a request against the host's bounds and hands it to its
// shard actor; the answer goes to req.reply or req.done.
func (h *Host) admit(req *request) error {
	if h.state.Load() != hostStarted {
		return ErrStopped
	}
	if _, ok := h.kinds[req.entity.Kind]; !ok {
		return fmt.Errorf("%w: %q is not hosted here", ErrUnknownKind, req.entity.Kind)
	}
	if !req.completion {
		if n := h.pending.Add(1); n > int64(h.cfg.MaxPendingRequests) {
			h.pending.Add(-1)
			h.overload()
			return fmt.Errorf("%w: %d requests pending", ErrOverloaded, n-1)
		}
		req.counted = true
		if !req.query && h.queued.Load() >= int64(h.cfg.Actions.MaxQueued) {
			h.pending.Add(-1)
			req.counted = false
			h.overload()
			return fmt.Errorf("%w: %d tracked actions queued", ErrOverloaded, h.queued.Load())
		}
	}
	req.h = h
	h.send(req)
	return nil
}

// complete routes a tracked action's result back to its entity, wherever
// the current view says it lives.
func (h *Host) complete(e machine.Entity, id machine.ActionID, result any) {
	if h.state.Load() != hostStarted {
		return // the action stays outstanding; Restore re-drives it
	}
	if rt, err := h.routeOf(e); err != nil || rt.remote {
		h.completeRemote(e, id, result)
		return
	}
	h.send(&request{entity: e, completion: true, actionID: id, result: result, h: h})
}

// Stats is a snapshot of the host's counters.
type Stats struct {
	Activations      uint64 // entities loaded
	Passivations     uint64 // entities stopped for idleness or the cap
	EagerActivations uint64 // entities re-activated at start for outstanding actions
	Accepted         uint64 // inputs accepted and durable
	Rejected         uint64 // inputs rejected by their machine
	Duplicates       uint64 // inputs answered from the request window
	StaleCompletions uint64 // completions dropped as not outstanding
	Failed           uint64 // steps failed by the driver (panics, limits)
	Appends          uint64 // store appends made
	AppendFailures   uint64 // store appends that failed (the entity reloaded)
	Overloaded       uint64 // requests refused with ErrOverloaded
	ActionsStarted   uint64 // tracked actions handed to executors
	ActionRetries    uint64 // executor attempts after the first
	ActionFailures   uint64 // actions that ended in a terminal failure result
	RestoreMismatch  uint64 // activations whose Restore disagreed with the journal
	LoadFailures     uint64 // activations that failed (corruption, nondeterminism, an unavailable store)
	Pending          int64  // requests admitted and not yet answered
	ActionsQueued    int64  // tracked actions waiting or executing
	Active           int64  // entity actors alive
}

type counters struct {
	activations, passivations, eagerActivations   atomic.Uint64
	accepted, rejected, duplicates, stale, failed atomic.Uint64
	appends, appendFailures, overloaded           atomic.Uint64
	actionsStarted, actionRetries, actionFailures atomic.Uint64
	restoreMismatch, loadFailures                 atomic.Uint64
}

func (h *Host) overload() {
	h.stats.overloaded.Add(1)
	h.metrics.overloaded.Inc()
}

func (h *Host) activeEntities() int64 {
	var n int64
	for i := range h.active {
		n += h.active[i].Load()
	}
	return n
}

// Stats returns the host's counters.
func (h *Host) Stats() Stats {
	c := &h.stats
	return Stats{
		Activations: c.activations.Load(), Passivations: c.passivations.Load(), EagerActivations: c.eagerActivations.Load(),
		Accepted: c.accepted.Load(), Rejected: c.rejected.Load(), Duplicates: c.duplicates.Load(),
		StaleCompletions: c.stale.Load(), Failed: c.failed.Load(), Appends: c.appends.Load(),
		AppendFailures: c.appendFailures.Load(), Overloaded: c.overloaded.Load(),
		ActionsStarted: c.actionsStarted.Load(), ActionRetries: c.actionRetries.Load(), ActionFailures: c.actionFailures.Load(),
		RestoreMismatch: c.restoreMismatch.Load(), LoadFailures: c.loadFailures.Load(),
		Pending: h.pending.Load(), ActionsQueued: h.queued.Load(), Active: h.activeEntities(),
	}
}

// Store returns the host's store.
func (h *Host) Store() persistence.Store { return h.cfg.Store }

// followsView reports whether shard ownership follows a watched cluster
// view (hand-off mode) rather than being fixed at start.
func (h *Host) followsView() bool { return h.net != nil && h.net.cfg.Watch != nil }

// bounce answers a request this host cannot serve because the shard is not
// (or no longer) its own: with err, or, for a local completion that nobody
// waits for, by sending it on to the shard's owner.
func (h *Host) bounce(r *request, err error) {
	if r.completion && r.reply == nil && r.done == nil {
		if h.net != nil {
			h.completeRemote(r.entity, r.actionID, r.result)
		}
		return
	}
	r.finish(response{err: err})
}

// activatePending re-activates, eagerly, the entities of a shard just
// gained under epoch that the store lists with outstanding tracked
// actions. A failed listing is retried with backoff while the host holds
// the shard under that epoch.
func (h *Host) activatePending(id uint32, epoch uint64) {
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		backoff := h.cfg.Actions.InitialBackoff
		for h.epochs[id].Load() == epoch && h.stopCtx.Err() == nil {
			ctx, cancel := context.WithTimeout(h.stopCtx, h.cfg.ShutdownTimeout)
			ents, err := h.cfg.Store.Pending(ctx, id)
			cancel()
			if err == nil {
				if len(ents) > 0 {
					h.stats.eagerActivations.Add(uint64(len(ents)))
					h.root.Send(h.shards[id], &activate{entities: ents, epoch: epoch})
				}
				return
			}
			h.log.Warn("listing a gained shard's entities with outstanding actions failed; retrying", "shard", id, "epoch", epoch, "err", err)
			if h.wait(h.stopCtx, jitter(backoff)) != nil {
				return
			}
			backoff = min(backoff*2, h.cfg.Actions.MaxBackoff)
		}
	}()
}

// ShardInfo is one shard as a host holds it now.
type ShardInfo struct {
	// Epoch is the epoch this host owns the shard under, the fence its
	// entities' actions carry; 0 when it does not own the shard.
	Epoch uint64
	// Active is the number of the shard's entity actors in memory,
	// including those stopping.
	Active int
}

// Shard reports how this host holds shard id now (the zero ShardInfo for
// an id out of range).
func (h *Host) Shard(id uint32) ShardInfo {
	if int(id) >= len(h.epochs) {
		return ShardInfo{}
	}
	return ShardInfo{Epoch: h.epochs[id].Load(), Active: int(h.active[id].Load())}
}
