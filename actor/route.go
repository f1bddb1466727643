package actor

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/shard"
)

// Inputs reach an active entity without passing through its shard actor:
// the sender looks the entity up in its shard's table and, when the
// entity's gate is open, posts the request straight into the entity's
// mailbox. Everything else (an entity not yet active, one stopping, a
// shard not owned) takes the shard actor's path, which activates, holds
// and bounces as before. The shard actor keeps full control of the
// lifecycle through the gate:
//
//   - it opens an entity's gate only once no request for the entity can
//     still be in its own mailbox (per-stripe counters of requests on the
//     shard path), so a sender's later direct request never overtakes its
//     earlier one still queued at the shard;
//   - before it asks an entity to stop (idle, cap, failure, hand-off) it
//     closes the gate and waits for the senders inside to finish posting,
//     so every direct request is in the entity's mailbox before the stop
//     request and none reaches a stopped actor.
//
// Direct sends mark the entity used; the shard's LRU bookkeeping reads and
// clears the mark (a second chance) instead of seeing every input.

// routeStripes is the number of counters of requests on the shard path,
// per shard: a collision only delays opening a gate.
const routeStripes = 256

// closedGate is the gate bit that refuses direct senders; the bits below
// count the senders inside.
const closedGate = int64(1) << 62

// shardTable is the part of a shard its senders read. The shard actor is
// its only writer (under mu); it reads the map without the lock.
type shardTable struct {
	mu      sync.RWMutex
	ents    map[machine.Entity]*slot
	stripes [routeStripes]atomic.Int32
}

func (t *shardTable) lookup(e machine.Entity) *slot {
	t.mu.RLock()
	sl := t.ents[e]
	t.mu.RUnlock()
	return sl
}

// stripe returns the stripe counter of the entity whose shard key is k.
func (t *shardTable) stripe(k uint64) *atomic.Int32 { return &t.stripes[k%routeStripes] }

// enter admits a direct sender unless the gate is closed; leave must follow.
func (sl *slot) enter() bool {
	if sl.gate.Add(1)&closedGate != 0 {
		sl.gate.Add(-1)
		return false
	}
	return true
}

func (sl *slot) leave() { sl.gate.Add(-1) }

// send hands a request to its entity: straight to its mailbox when its
// gate is open, otherwise through the shard actor.
func (h *Host) send(req *request) {
	k := shard.Key(req.entity)
	id := shard.OfKey(k, h.cfg.Shards)
	t := h.tables[id]
	if sl := t.lookup(req.entity); sl != nil && sl.enter() {
		h.sendDirect(sl, req)
		return
	}
	stripe := t.stripe(k)
	stripe.Add(1)
	// The gate may have opened between the lookup and the count: the
	// shard opens it only while the stripe is zero, so once counted,
	// either the gate is open now or it stays closed until this request
	// has been routed.
	if sl := t.lookup(req.entity); sl != nil && sl.enter() {
		stripe.Add(-1)
		h.sendDirect(sl, req)
		return
	}
	req.stripe = stripe
	h.root.Send(h.shards[id], req)
}

func (h *Host) sendDirect(sl *slot, req *request) {
	if !sl.used.Load() {
		sl.used.Store(true)
	}
	h.root.Send(sl.pid, req)
	sl.leave()
}

// open lets senders reach the entity directly, unless a request for it may
// still wait in the shard's mailbox (it would be overtaken).
func (s *shardActor) open(sl *slot) {
	if sl.open || sl.stopping || s.epoch == 0 || sl.stripe.Load() != 0 {
		return
	}
	sl.gate.And(^closedGate)
	sl.open = true
}

// seal closes the entity's gate and waits until the senders inside have
// posted their requests: anything the shard sends the entity afterwards
// reaches its mailbox after them.
func (s *shardActor) seal(sl *slot) {
	if !sl.open {
		return
	}
	sl.open = false
	sl.gate.Or(closedGate)
	for sl.gate.Load() != closedGate {
		runtime.Gosched()
	}
}
