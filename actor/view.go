package actor

import (
	"errors"
	"fmt"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/machine/kv"
	"github.com/phasm-go/phasm/persistence"
)

// Database-backed state in the runtime: an active entity of a kind whose
// state implements machine.ViewState reads its keyspace through a bounded
// kv.Cache over the store's persistence.Keyspace. The cache holds the
// writes of steps whose append is in flight (so the next step reads them)
// and recently read values; the store applies each append's writes with
// its records, under the same compare-and-set and group commit. A failed
// append or a passivation drops the cache: the store is the truth.

// defaultViewReadTimeout bounds one keyspace read when the kind sets none.
const defaultViewReadTimeout = 5 * time.Second

// recoverEntity rebuilds the entity's driver from what the store loaded;
// for a database-backed kind it also sets up the keyspace cache.
func (e *entity[S, I, A, R, U]) recoverEntity(l persistence.Loaded) (*machine.Driver[S, I, A, R, U], error) {
	k := e.rt.kind
	e.dropCache()
	if !k.HasView() {
		return k.Recover(e.key.ID, l.Snapshot, l.Records)
	}
	ks, ok := e.h.cfg.Store.(persistence.Keyspace)
	if !ok { // Register checks this; a store swapped since is a bug
		return nil, fmt.Errorf("actor: the store has no keyspaces for database-backed %s", e.key)
	}
	o := &e.rt.opts
	timeout := o.ViewReadTimeout
	if timeout == 0 {
		timeout = defaultViewReadTimeout
	}
	e.cache = kv.NewCache(persistence.Source(ks, e.key, timeout), o.ViewCacheEntries, o.ViewCacheBytes)
	return k.RecoverFrom(e.key.ID, l.Snapshot, l.Records, e.cache)
}

// durable tells the cache that the store holds the entity up to seq.
func (e *entity[S, I, A, R, U]) durable(seq uint64) {
	if e.cache != nil {
		e.cache.Durable(seq)
	}
}

// dropCache forgets the keyspace cache (passivation, reload).
func (e *entity[S, I, A, R, U]) dropCache() {
	if e.cache != nil {
		e.cache.Drop()
		e.cache = nil
	}
}

// stepError turns a failed step into the reply: a keyspace read failure is
// retryable (ErrUnavailable), anything else recurs (permanent).
func (e *entity[S, I, A, R, U]) stepError(err error) response {
	if errors.Is(err, kv.ErrRead) {
		return response{err: fmt.Errorf("%w: %s: %w", ErrUnavailable, e.key, err)}
	}
	return response{err: err, permanent: true}
}

// detachView keeps a query's copy of a database-backed state from reading
// the entity's live view from another goroutine: queries see the
// in-memory part only.
func detachView[S any](s *S) {
	if vs, ok := any(s).(machine.ViewState); ok {
		vs.BindView(nil)
	}
}

// retryCompletion re-sends a completion whose step could not read the
// keyspace, after a pause: a completion has no caller to retry it, and
// dropping it would leave its action outstanding until the entity reloads.
// It reports whether it took the request.
func (e *entity[S, I, A, R, U]) retryCompletion(r *request, err error) bool {
	if !errors.Is(err, kv.ErrRead) {
		return false
	}
	h, self := e.h, e.self
	wait := max(h.cfg.Actions.InitialBackoff, 10*time.Millisecond)
	time.AfterFunc(wait, func() { h.root.Send(self, r) })
	return true
}
