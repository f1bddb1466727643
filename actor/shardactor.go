package actor

import (
	"container/list"
	"fmt"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"

	"github.com/phasm-go/phasm/machine"
)

// shardActor owns the entities of one shard: it routes their inputs,
// activates them on first use, and passivates them when idle or when the
// shard holds more than its share of the active-entity cap (least recently
// used first). It is the parent of its entity actors, so it learns when
// one has fully stopped; inputs that arrive for an entity while it is
// stopping wait here and go to its next activation.
type shardActor struct {
	h    *Host
	id   uint32
	ents map[machine.Entity]*slot
	pids map[string]*slot // by PID.Id
	lru  *list.List       // of *slot; front is the most recently used
	cap  int
	// props are shared by every entity of a kind in this shard (a Props
	// per entity would cost hundreds of bytes each); the producer reads
	// the entity being spawned from next, set just before the synchronous
	// Spawn call.
	props map[string]*protoactor.Props
	next  machine.Entity
}

type slot struct {
	key      machine.Entity
	pid      *protoactor.PID
	lastUsed time.Time
	stopping bool
	waiting  []*request
	elem     *list.Element
}

func newShardActor(h *Host, id uint32) *shardActor {
	per := (h.cfg.MaxActiveEntities + h.cfg.Shards - 1) / h.cfg.Shards
	return &shardActor{h: h, id: id, ents: map[machine.Entity]*slot{}, pids: map[string]*slot{}, lru: list.New(), cap: max(per, 1),
		props: map[string]*protoactor.Props{}}
}

// Receive implements protoactor.Actor.
func (s *shardActor) Receive(c protoactor.Context) {
	switch m := c.Message().(type) {
	case *request:
		s.route(c, m)
	case *activate:
		for _, e := range m.entities {
			if _, ok := s.ents[e]; !ok {
				if _, known := s.h.kinds[e.Kind]; known {
					s.spawn(c, e)
				}
			}
		}
	case *protoactor.Terminated:
		s.terminated(c, m)
	case *stopMe:
		if sl, ok := s.ents[m.entity]; ok && !sl.stopping {
			sl.stopping = true
			c.Send(sl.pid, &passivate{force: true})
		}
	case *passivateRefused:
		if sl, ok := s.ents[m.entity]; ok && sl.stopping {
			sl.stopping = false
			s.flush(c, sl)
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
	sl := &slot{key: e, pid: c.Spawn(props), lastUsed: s.h.cfg.Clock()}
	s.h.metrics.active.Inc()
	sl.elem = s.lru.PushFront(sl)
	s.ents[e] = sl
	s.pids[sl.pid.Id] = sl
	if len(s.ents) > s.cap {
		s.evict(c)
	}
	return sl
}

// evict asks the least recently used entities beyond the cap to stop.
func (s *shardActor) evict(c protoactor.Context) {
	over := len(s.ents) - s.cap
	for el := s.lru.Back(); el != nil && over > 0; el = el.Prev() {
		sl := el.Value.(*slot)
		if sl.stopping {
			continue
		}
		sl.stopping = true
		c.Send(sl.pid, &passivate{force: true})
		over--
	}
}

// tick passivates entities idle for longer than the idle timeout.
func (s *shardActor) tick(c protoactor.Context) {
	if s.h.cfg.IdleTimeout < 0 {
		return
	}
	cutoff := s.h.cfg.Clock().Add(-s.h.cfg.IdleTimeout)
	for el := s.lru.Back(); el != nil; el = el.Prev() {
		sl := el.Value.(*slot)
		if sl.lastUsed.After(cutoff) {
			break
		}
		if !sl.stopping {
			sl.stopping = true
			c.Send(sl.pid, &passivate{})
		}
	}
}

func (s *shardActor) terminated(c protoactor.Context, m *protoactor.Terminated) {
	sl, ok := s.pids[m.Who.Id]
	if !ok {
		return
	}
	delete(s.pids, m.Who.Id)
	delete(s.ents, sl.key)
	s.lru.Remove(sl.elem)
	s.h.stats.passivations.Add(1)
	s.h.metrics.passivations.Inc()
	s.h.metrics.active.Dec()
	if len(sl.waiting) == 0 || s.h.state.Load() != hostStarted {
		for _, r := range sl.waiting {
			r.finish(response{err: ErrStopped})
		}
		return
	}
	// Inputs arrived while it stopped: activate it again for them.
	next := s.spawn(c, sl.key)
	next.waiting = sl.waiting
	s.flush(c, next)
}

func (s *shardActor) flush(c protoactor.Context, sl *slot) {
	for _, r := range sl.waiting {
		c.Send(sl.pid, r)
	}
	sl.waiting = nil
}
