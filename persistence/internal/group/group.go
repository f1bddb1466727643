// Package group is the group-commit engine the persistence backends share:
// a bounded queue of appends and one committer goroutine that drains it in
// groups and hands each group to a backend's commit function, which writes
// the group in one durable write and sets each append's outcome.
//
// In-flight appends (queued or being committed) are bounded by MaxQueue;
// a full queue makes AppendAsync fail with persistence.ErrOverloaded and
// Append wait. An append whose context ends before it joins a group is
// withdrawn (state CAS) and returns ctx.Err(); once claimed by a group it
// gets the group's outcome.
package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/phasm-go/phasm/persistence"
)

// Defaults for zero Config fields.
const (
	DefaultMaxQueue        = 16384
	DefaultMaxGroupAppends = 1024
	DefaultPipelineDepth   = 4
)

const (
	stateQueued int32 = iota
	stateClaimed
	stateWithdrawn
)

// Op is one queued append.
type Op struct {
	Req persistence.AppendRequest
	Enc persistence.Encoded
	// Err is the outcome, set by the commit function.
	Err error

	ctx   context.Context // nil for AppendAsync
	state atomic.Int32
	done  func(error) // AppendAsync's callback, or nil
	ch    chan error  // Append's outcome when done is nil
}

// CommitFunc writes ops (all claimed, in queue order) and sets each op's
// Err. It returns the ops it chose not to write in this group (for
// example a second append to an entity already in the group); they are
// offered first to the next group, in the returned order, and their Err is
// ignored.
//
// If it returns a non-nil wait, the group is not yet durable: the engine
// calls wait on another goroutine (while the next group is being built
// and written: a pipeline of at most PipelineDepth groups), and a non-nil
// error from wait becomes the outcome of every written op. Groups are
// acknowledged in order.
type CommitFunc func(ops []*Op) (carry []*Op, wait func() error)

// Config bounds the engine.
type Config struct {
	// MaxQueue bounds in-flight appends (queued or being committed).
	MaxQueue int
	// MaxGroupAppends bounds the appends written by one commit.
	MaxGroupAppends int
	// Limits are checked (and requests encoded) before anything is queued.
	Limits persistence.Limits
	// PipelineDepth bounds the groups written but still waiting for their
	// sync (default DefaultPipelineDepth); it matters only to commit
	// functions that return a wait.
	PipelineDepth int
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxQueue < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxQueue is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, c.MaxQueue, DefaultMaxQueue))
	}
	if c.MaxGroupAppends < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxGroupAppends is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, c.MaxGroupAppends, DefaultMaxGroupAppends))
	}
	if c.PipelineDepth < 0 {
		errs = append(errs, fmt.Errorf("%w: PipelineDepth is %d, must be >= 0 (0 means %d)", persistence.ErrInvalidOptions, c.PipelineDepth, DefaultPipelineDepth))
	}
	errs = append(errs, c.Limits.Validate())
	return errors.Join(errs...)
}

// Engine runs the queue and the committer goroutine.
type Engine struct {
	cfg    Config
	commit CommitFunc
	slots  chan struct{}
	queue  chan *Op
	quit   chan struct{}
	exited chan struct{}
	syncs  chan pendingSync

	mu     sync.RWMutex // guards closed against sends to queue
	closed bool
	// shut mirrors closed for Closed, which needs no lock: a check
	// before encoding, not the guard against sending to queue.
	shut    atomic.Bool
	abort   error // set by Abort: queued ops fail with it instead of committing
	closeMu sync.Mutex
}

// New starts an engine. cfg must be valid; zero fields take defaults.
func New(cfg Config, commit CommitFunc) *Engine {
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxGroupAppends == 0 {
		cfg.MaxGroupAppends = DefaultMaxGroupAppends
	}
	if cfg.PipelineDepth == 0 {
		cfg.PipelineDepth = DefaultPipelineDepth
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	e := &Engine{
		cfg:    cfg,
		commit: commit,
		slots:  make(chan struct{}, cfg.MaxQueue),
		queue:  make(chan *Op, cfg.MaxQueue),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
		syncs:  make(chan pendingSync, cfg.PipelineDepth-1),
	}
	go e.loop()
	return e
}

// Append validates, queues and waits; see persistence.Store.Append.
func (e *Engine) Append(ctx context.Context, req persistence.AppendRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Closed() {
		return persistence.ErrClosed
	}
	enc, err := persistence.Encode(&req, e.cfg.Limits)
	if err != nil {
		return err
	}
	// The channel goes back to the pool on every return: by then it is
	// empty and nothing will send on it (a withdrawn op is never finished).
	ch := resultChans.Get().(chan error)
	defer resultChans.Put(ch)
	op := &Op{Req: req, Enc: enc, ctx: ctx, ch: ch}
	select {
	case e.slots <- struct{}{}: // the common case: room in the queue
	default:
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.quit:
			return persistence.ErrClosed
		}
	}
	if !e.enqueue(op) {
		<-e.slots
		return persistence.ErrClosed
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		if op.state.CompareAndSwap(stateQueued, stateWithdrawn) {
			return ctx.Err()
		}
		return <-ch // claimed by a group: its outcome is ours
	}
}

// resultChans recycles Append's result channels.
var resultChans = sync.Pool{New: func() any { return make(chan error, 1) }}

// AppendAsync validates and queues without blocking; see
// persistence.Store.AppendAsync.
func (e *Engine) AppendAsync(req persistence.AppendRequest, done func(error)) {
	if e.Closed() {
		go done(persistence.ErrClosed)
		return
	}
	enc, err := persistence.Encode(&req, e.cfg.Limits)
	if err != nil {
		go done(err)
		return
	}
	select {
	case e.slots <- struct{}{}:
	default:
		go done(persistence.ErrOverloaded)
		return
	}
	op := &Op{Req: req, Enc: enc, done: done}
	if !e.enqueue(op) {
		<-e.slots
		go done(persistence.ErrClosed)
	}
}

func (e *Engine) enqueue(op *Op) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return false
	}
	e.queue <- op // never blocks: a slot is held and len(queue) <= slots
	return true
}

// Closed reports whether Close or Abort was called.
func (e *Engine) Closed() bool { return e.shut.Load() }

// Close stops accepting appends, commits what is queued and waits for the
// committer to exit. It is idempotent.
func (e *Engine) Close() { e.stop(nil) }

// Abort stops accepting appends and fails what is queued (not yet in a
// group) with err instead of committing it, then waits for the committer
// to exit. A group already being committed finishes normally.
func (e *Engine) Abort(err error) { e.stop(err) }

func (e *Engine) stop(abort error) {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.exited
		return
	}
	e.closed = true
	e.shut.Store(true)
	e.abort = abort
	e.mu.Unlock()
	close(e.quit)
	<-e.exited
}

// pendingSync is a written group waiting for its sync.
type pendingSync struct {
	ops  []*Op
	wait func() error
}

func (e *Engine) loop() {
	notified := make(chan struct{})
	go e.notifier(notified)
	defer func() {
		close(e.syncs)
		<-notified
		close(e.exited)
	}()
	var carry []*Op
	for {
		group := make([]*Op, 0, e.cfg.MaxGroupAppends)
		group = append(group, carry...)
		carry = nil
		if len(group) == 0 {
			select {
			case op := <-e.queue:
				group = e.claim(group, op)
			case <-e.quit:
				e.drain()
				return
			}
		}
	fill:
		for len(group) < e.cfg.MaxGroupAppends {
			select {
			case op := <-e.queue:
				group = e.claim(group, op)
			default:
				break fill
			}
		}
		if len(group) == 0 {
			continue
		}
		carry = e.run(group)
	}
}

// run commits group and hands its written ops to the notifier; it returns
// the carried ops.
func (e *Engine) run(group []*Op) (carry []*Op) {
	c, wait := e.commit(group)
	carry = append([]*Op(nil), c...)
	carried := make(map[*Op]bool, len(carry))
	for _, op := range carry {
		carried[op] = true
	}
	written := group[:0]
	for _, op := range group {
		if !carried[op] {
			written = append(written, op)
		}
	}
	e.syncs <- pendingSync{ops: written, wait: wait}
	return carry
}

// notifier acknowledges groups in order, after their sync when they have
// one to wait for.
func (e *Engine) notifier(done chan<- struct{}) {
	defer close(done)
	for ps := range e.syncs {
		var err error
		if ps.wait != nil {
			err = ps.wait()
		}
		for _, op := range ps.ops {
			if op.Err == nil {
				op.Err = err
			}
			e.finish(op, op.Err)
		}
	}
}

// drain handles what is left after quit: commit it (Close) or fail it
// (Abort).
func (e *Engine) drain() {
	var group []*Op
	for {
		select {
		case op := <-e.queue:
			group = e.claim(group, op)
			continue
		default:
		}
		break
	}
	e.mu.RLock()
	abort := e.abort
	e.mu.RUnlock()
	for len(group) > 0 {
		if abort != nil {
			for _, op := range group {
				e.finish(op, abort)
			}
			return
		}
		n := min(len(group), e.cfg.MaxGroupAppends)
		carry := e.run(append([]*Op(nil), group[:n]...))
		group = append(carry, group[n:]...)
	}
}

// claim adds op to group unless its caller withdrew it or its context
// already ended.
func (e *Engine) claim(group []*Op, op *Op) []*Op {
	if !op.state.CompareAndSwap(stateQueued, stateClaimed) {
		<-e.slots // withdrawn: the caller already returned
		return group
	}
	if op.ctx != nil {
		if err := op.ctx.Err(); err != nil {
			e.finish(op, err)
			return group
		}
	}
	return append(group, op)
}

func (e *Engine) finish(op *Op, err error) {
	if op.done != nil {
		op.done(err)
	} else {
		op.ch <- err
	}
	<-e.slots
}
