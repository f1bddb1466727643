package kv

import (
	"container/list"
	"slices"
)

// Cache is the runtime's per-entity layer in front of a store's keyspace:
// the writes of committed transitions that the store has not acknowledged
// yet (so the next transition reads them), and a bounded cache of values
// read. Commit adds a step's writes; Durable(seq) releases those the store
// has made durable; Drop empties it (passivation). It is a [Source] and a
// [Committer]; not safe for concurrent use (the entity's owner uses it).
//
// Only point reads are cached; scans read the store (merged with the
// pending writes), because a scan's result cannot be kept consistent by
// key without caching whole ranges. The pending writes are bounded by what
// the owner has in flight (the node has one append per entity in flight,
// of at most its batch limit of steps).
type Cache struct {
	base       Source
	pending    []pendingWrites // oldest first
	overlay    entries         // the net of pending
	maxEntries int
	maxBytes   int
	bytes      int
	lru        *list.List // of *cached, most recent first
	index      map[string]*list.Element
	hits, miss uint64
}

type pendingWrites struct {
	seq uint64
	ws  []Write
}

type cached struct {
	key   string
	value []byte
	found bool
}

// Cache defaults.
const (
	DefaultCacheEntries = 4096
	DefaultCacheBytes   = 4 << 20
)

// NewCache returns a cache over base holding at most maxEntries values and
// maxBytes of keys and values (zero or less: the defaults).
func NewCache(base Source, maxEntries, maxBytes int) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &Cache{base: base, maxEntries: maxEntries, maxBytes: maxBytes, lru: list.New(), index: map[string]*list.Element{}}
}

// Get implements [Source]: pending writes, then the cache, then the base.
// A failed base read is returned as is and caches nothing.
func (c *Cache) Get(key []byte) ([]byte, bool, error) {
	if v, found, known := c.overlay.get(key); known {
		return v, found, nil
	}
	if el, ok := c.index[string(key)]; ok {
		c.lru.MoveToFront(el)
		c.hits++
		e := el.Value.(*cached)
		return e.value, e.found, nil
	}
	c.miss++
	v, found, err := c.base.Get(key)
	if err != nil {
		return nil, false, err
	}
	c.remember(string(key), v, found)
	return v, found, nil
}

// Scan implements [Source]: the base merged with the pending writes.
func (c *Cache) Scan(start, end []byte, limit int) ([]Pair, bool, error) {
	if err := CheckScan(start, end, limit); err != nil {
		return nil, false, err
	}
	return mergeScan(c.base, c.overlay, start, end, limit)
}

// Commit implements [Committer]: the writes of the step that brought the
// entity to seq stay visible until Durable(seq).
func (c *Cache) Commit(seq uint64, ws []Write) {
	if len(ws) == 0 {
		return
	}
	c.pending = append(c.pending, pendingWrites{seq: seq, ws: ws})
	for _, w := range ws {
		c.overlay.put(entry{key: w.Key, value: w.Value, del: w.Delete})
	}
}

// Durable tells the cache that the store holds everything up to seq: the
// pending writes up to it move into the value cache.
func (c *Cache) Durable(seq uint64) {
	n := 0
	for n < len(c.pending) && c.pending[n].seq <= seq {
		n++
	}
	if n == 0 {
		return
	}
	done := slices.Clone(c.pending[:n])
	c.pending = slices.Delete(c.pending, 0, n)
	for _, p := range done {
		for _, w := range p.ws {
			c.remember(string(w.Key), w.Value, !w.Delete)
		}
	}
	c.overlay = c.overlay[:0]
	for _, p := range c.pending {
		for _, w := range p.ws {
			c.overlay.put(entry{key: w.Key, value: w.Value, del: w.Delete})
		}
	}
}

// PendingSteps returns the number of committed steps whose writes the
// store has not acknowledged.
func (c *Cache) PendingSteps() int { return len(c.pending) }

// Cached returns the number of values cached.
func (c *Cache) Cached() int { return c.lru.Len() }

// Stats returns the point reads answered from the cache and from the base.
func (c *Cache) Stats() (hits, misses uint64) { return c.hits, c.miss }

// Drop empties the cache and forgets the pending writes (the entity is
// passivated or reloaded; the store is the truth).
func (c *Cache) Drop() {
	c.pending = nil
	c.overlay = nil
	c.lru.Init()
	clear(c.index)
	c.bytes = 0
}

func (c *Cache) remember(key string, v []byte, found bool) {
	size := len(key) + len(v)
	if size > c.maxBytes {
		if el, ok := c.index[key]; ok {
			c.evict(el)
		}
		return
	}
	if el, ok := c.index[key]; ok {
		e := el.Value.(*cached)
		c.bytes += len(v) - len(e.value)
		e.value, e.found = v, found
		c.lru.MoveToFront(el)
	} else {
		c.index[key] = c.lru.PushFront(&cached{key: key, value: v, found: found})
		c.bytes += size
	}
	for c.lru.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.evict(c.lru.Back())
	}
}

func (c *Cache) evict(el *list.Element) {
	e := c.lru.Remove(el).(*cached)
	delete(c.index, e.key)
	c.bytes -= len(e.key) + len(e.value)
}
