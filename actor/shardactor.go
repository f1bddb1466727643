package actor

import (
	"container/list"
	"fmt"
	"sync/atomic"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/shard"
)

// shardActor owns the entities of one shard: it routes their inputs,
// activates them on first use, and passivates them when idle or when the
// shard holds more than its share of the active-entity cap (least recently
// used first). It is the parent of its entity actors, so it learns when
// one has fully stopped; inputs that arrive for an entity while it is
// stopping wait here and go to its next activation.
//
// In cluster mode the shard follows its ownership (ownership messages from
// the host's view watcher): while this host does not own it, it answers
// every request with ErrMoved (completions go on to the owner); when it
// loses the shard it passivates every entity (their in-flight appends
// finish, queued inputs are answered ErrMoved, outstanding actions are left
// to the new owner's Restore); when it gains it, it activates the entities
// the store lists with outstanding actions.
type shardActor struct {
	h  *Host
	id uint32
	// epoch is the epoch this host owns the shard under; 0: not owned.
	epoch uint64
	t     *shardTable              // its entities, shared with direct senders
	ents  map[machine.Entity]*slot // t.ents: read here without the lock
	pids  map[string]*slot         // by PID.Id
	lru   *list.List               // of *slot; front is the most recently used
	cap   int
	// props are shared by every entity of a kind in this shard (a Props
	// per entity would cost hundreds of bytes each); the producer reads
	// the entity being spawned from next, set just before the synchronous
	// Spawn call.
	props map[string]*protoactor.Props
	next  machine.Entity
}

type slot struct {
	key machine.Entity
	pid *protoactor.PID
	// gate and used are shared with direct senders (route.go); the rest
	// belongs to the shard actor.
	gate atomic.Int64
	used atomic.Bool
	open bool
	// stripe counts the entity's requests on their way through the shard
	// actor (route.go).
	stripe *atomic.Int32
	// lastUsed is when the shard last saw the entity used: a request it
	// routed, or the used mark of direct requests found by its LRU scans.
	lastUsed time.Time
	stopping bool
	// reactivate: activate the entity again when it has stopped, even
	// with no input waiting (it has outstanding actions to re-drive).
	reactivate bool
	waiting    []*request
	elem       *list.Element
}

func newShardActor(h *Host, id uint32) *shardActor {
	per := (h.cfg.MaxActiveEntities + h.cfg.Shards - 1) / h.cfg.Shards
	t := h.tables[id]
	return &shardActor{h: h, id: id, epoch: h.epochs[id].Load(), t: t, ents: t.ents, pids: map[string]*slot{}, lru: list.New(), cap: max(per, 1),
		props: map[string]*protoactor.Props{}}
}

// Receive implements protoactor.Actor.
func (s *shardActor) Receive(c protoactor.Context) {
	switch m := c.Message().(type) {
	case *request:
		if m.stripe != nil {
			m.stripe.Add(-1)
			m.stripe = nil
		}
		s.route(c, m)
	case *activate:
		if s.epoch == 0 || (m.epoch != 0 && m.epoch != s.epoch) {
			return // listed under an ownership this host no longer holds
		}
		for _, e := range m.entities {
			if _, known := s.h.kinds[e.Kind]; !known {
				continue
			}
			if sl, ok := s.ents[e]; !ok {
				s.open(s.spawn(c, e))
			} else if sl.stopping {
				sl.reactivate = true
			}
		}
	case *ownership:
		s.own(c, m.epoch)
	case *protoactor.Terminated:
		s.terminated(c, m)
	case *stopMe:
		if sl, ok := s.ents[m.entity]; ok && !sl.stopping {
			s.stop(c, sl, &passivate{force: true})
		}
	case *passivateRefused:
		if sl, ok := s.ents[m.entity]; ok && sl.stopping && s.epoch != 0 {
			sl.stopping = false
			s.flush(c, sl)
			s.open(sl)
		}
	case tickMsg:
		s.tick(c)
	case *protoactor.Stopping:
		for _, sl := range s.ents {
			for _, r := range sl.waiting {
				r.finish(response{err: ErrStopped})
			}
			sl.waiting = nil
		}
	}
}

func (s *shardActor) route(c protoactor.Context, r *request) {
	if s.epoch == 0 {
		s.h.bounce(r, fmt.Errorf("%w: shard %d of %s is not owned by this node", ErrMoved, s.id, r.entity))
		return
	}
	sl, ok := s.ents[r.entity]
	if !ok {
		sl = s.spawn(c, r.entity)
	}
	sl.lastUsed = s.h.cfg.Clock()
	s.lru.MoveToFront(sl.elem)
	if sl.stopping {
		if !r.completion && !r.query && len(sl.waiting) >= s.h.cfg.MailboxLimit {
			s.h.overload()
			r.finish(response{err: fmt.Errorf("%w: %s is passivating with %d inputs waiting", ErrOverloaded, r.entity, len(sl.waiting))})
			return
		}
		sl.waiting = append(sl.waiting, r)
		return
	}
	c.Send(sl.pid, r)
	s.open(sl)
}

func (s *shardActor) spawn(c protoactor.Context, e machine.Entity) *slot {
	props, ok := s.props[e.Kind]
	if !ok {
		k, h := s.h.kinds[e.Kind], s.h
		props = protoactor.PropsFromProducer(func() protoactor.Actor { return k.newEntity(h, s.next, s.id) },
			protoactor.WithDispatcher(h.dispatch), protoactor.WithMailbox(protoactor.UnboundedLockfree()))
		s.props[e.Kind] = props
	}
	s.next = e
	sl := &slot{key: e, pid: c.Spawn(props), lastUsed: s.h.cfg.Clock(), stripe: s.t.stripe(shard.Key(e))}
	sl.gate.Store(closedGate)
	s.h.metrics.active.Inc()
	s.h.active[s.id].Add(1)
	sl.elem = s.lru.PushFront(sl)
	s.t.mu.Lock()
	s.ents[e] = sl
	s.t.mu.Unlock()
	s.pids[sl.pid.Id] = sl
	if len(s.ents) > s.cap {
		s.evict(c, sl)
	}
	return sl
}

// evict asks the least recently used entities beyond the cap to stop,
// except the one just activated (when every other entity is already
// stopping, the shard is over its cap until they have stopped: stopping
// the new one too would drop the inputs it was activated for). An entity
// used directly since the shard last looked gets a second chance (it moves
// to the front).
func (s *shardActor) evict(c protoactor.Context, spawned *slot) {
	over := len(s.ents) - s.cap
	now := s.h.cfg.Clock()
	for el, n := s.lru.Back(), s.lru.Len(); el != nil && over > 0 && n > 0; n-- {
		sl, prev := el.Value.(*slot), el.Prev()
		switch {
		case sl.stopping, sl == spawned:
		case s.refresh(sl, now):
		default:
			s.stop(c, sl, &passivate{force: true})
			over--
		}
		el = prev
	}
}

// refresh moves an entity used directly since the last look to the
// front, as used now, and reports whether it did.
func (s *shardActor) refresh(sl *slot, now time.Time) bool {
	if !sl.used.Load() {
		return false
	}
	sl.used.Store(false)
	sl.lastUsed = now
	s.lru.MoveToFront(sl.elem)
	return true
}

// stop closes the entity's gate, then asks it to stop.
func (s *shardActor) stop(c protoactor.Context, sl *slot, m *passivate) {
	s.seal(sl)
	sl.stopping = true
	c.Send(sl.pid, m)
}

// tick passivates entities idle for longer than the idle timeout.
func (s *shardActor) tick(c protoactor.Context) {
	if s.h.cfg.IdleTimeout < 0 {
		return
	}
	now := s.h.cfg.Clock()
	cutoff := now.Add(-s.h.cfg.IdleTimeout)
	for el, n := s.lru.Back(), s.lru.Len(); el != nil && n > 0; n-- {
		sl, prev := el.Value.(*slot), el.Prev()
		if sl.lastUsed.After(cutoff) {
			break
		}
		if !s.refresh(sl, now) && !sl.stopping {
			s.stop(c, sl, &passivate{})
		}
		el = prev
	}
}

func (s *shardActor) terminated(c protoactor.Context, m *protoactor.Terminated) {
	sl, ok := s.pids[m.Who.Id]
	if !ok {
		return
	}
	delete(s.pids, m.Who.Id)
	s.t.mu.Lock()
	delete(s.ents, sl.key)
	s.t.mu.Unlock()
	s.lru.Remove(sl.elem)
	s.h.stats.passivations.Add(1)
	s.h.metrics.passivations.Inc()
	s.h.metrics.active.Dec()
	s.h.active[s.id].Add(-1)
	if (len(sl.waiting) == 0 && !sl.reactivate) || s.h.state.Load() != hostStarted {
		for _, r := range sl.waiting {
			r.finish(response{err: ErrStopped})
		}
		return
	}
	if s.epoch == 0 {
		for _, r := range sl.waiting {
			s.h.bounce(r, fmt.Errorf("%w: shard %d of %s was handed off", ErrMoved, s.id, r.entity))
		}
		return
	}
	// Inputs arrived while it stopped: activate it again for them.
	next := s.spawn(c, sl.key)
	next.waiting = sl.waiting
	s.flush(c, next)
	s.open(next)
}

func (s *shardActor) flush(c protoactor.Context, sl *slot) {
	if sl.stopping {
		return // they wait for its next activation
	}
	for _, r := range sl.waiting {
		c.Send(sl.pid, r)
	}
	sl.waiting = nil
}

// own takes a new ownership of the shard. Losing it, or holding it under a
// new epoch (it moved away and back between two views this host saw),
// hands off every active entity: each finishes its append in flight,
// answers its queued inputs ErrMoved and stops, whatever its outstanding
// actions (they are durable; the owner's Restore re-drives them). Gaining
// it activates the entities the store lists with outstanding actions.
func (s *shardActor) own(c protoactor.Context, epoch uint64) {
	if epoch == s.epoch {
		return
	}
	old := s.epoch
	s.epoch = epoch
	s.h.epochs[s.id].Store(epoch)
	s.h.log.Debug("shard ownership changed", "shard", s.id, "epoch", epoch, "previous", old, "active", len(s.ents))
	for _, sl := range s.ents {
		sl.reactivate = false
		s.stop(c, sl, &passivate{force: true, handoff: true})
		if epoch == 0 {
			for _, r := range sl.waiting {
				s.h.bounce(r, fmt.Errorf("%w: shard %d of %s was handed off", ErrMoved, s.id, r.entity))
			}
			sl.waiting = nil
		}
	}
	if epoch != 0 {
		s.h.activatePending(s.id, epoch)
	}
}
