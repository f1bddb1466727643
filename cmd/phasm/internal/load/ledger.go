package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
)

// ledger keeps, per entity and quantity, the lower and upper bound of what
// the entity must show (see the package documentation).
type ledger struct {
	names  []string
	n      int
	lo, hi []atomic.Int64 // [entity*len(names)+quantity]
	// lost counts the quantities within found below their lower bound.
	lost atomic.Int64
}

func newLedger(entities int, names ...string) *ledger {
	q := len(names)
	return &ledger{names: names, n: entities, lo: make([]atomic.Int64, entities*q), hi: make([]atomic.Int64, entities*q)}
}

// add records amount of quantity q at entity e for an operation with
// outcome o.
func (l *ledger) add(e, q int, amount int64, o outcome) {
	i := e*len(l.names) + q
	switch o {
	case ok:
		l.lo[i].Add(amount)
		l.hi[i].Add(amount)
	case failed:
		l.hi[i].Add(amount)
	}
}

// bounds returns the bounds of quantity q at entity e.
func (l *ledger) bounds(e, q int) (int64, int64) {
	i := e*len(l.names) + q
	return l.lo[i].Load(), l.hi[i].Load()
}

// within returns a violation when v is outside the bounds of quantity q
// at entity e, or "".
func (l *ledger) within(entity string, e, q int, v int64, what string) string {
	lo, hi := l.bounds(e, q)
	switch {
	case v < lo:
		l.lost.Add(1)
		return fmt.Sprintf("%s: %s is %d, but acknowledged operations add up to %d: an acknowledged operation was lost", entity, what, v, lo)
	case v > hi:
		if lo == hi {
			return fmt.Sprintf("%s: %s is %d, but acknowledged operations add up to %d: an operation was applied twice or invented", entity, what, v, hi)
		}
		return fmt.Sprintf("%s: %s is %d, more than the %d that acknowledged and unacknowledged operations allow: an operation was applied twice or invented", entity, what, v, hi)
	}
	return ""
}

// manifest is the ledger as kept in a data directory.
type manifest struct {
	Version    int       `json:"version"`
	Workload   string    `json:"workload"`
	Entities   int       `json:"entities"`
	Shards     int       `json:"shards"`
	Seeds      []uint64  `json:"seeds"`
	IDPrefix   string    `json:"id_prefix,omitempty"`
	Quantities []string  `json:"quantities"`
	Lo         [][]int64 `json:"lo"`
	Hi         [][]int64 `json:"hi"`
}

// ErrNoManifest: --verify found no ledger of the workload in --data.
var ErrNoManifest = errors.New("load: no load ledger in the data directory")

func manifestPath(dir, workload string) string {
	return filepath.Join(dir, "phasm-load-"+workload+".json")
}

// readManifest loads the ledger of workload from dir; ok is false when
// there is none.
func readManifest(dir, workload string) (m manifest, found bool, err error) {
	path := manifestPath(dir, workload)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return manifest{}, false, nil
	}
	if err != nil {
		return manifest{}, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return manifest{}, false, fmt.Errorf("load: %s: %w", path, err)
	}
	if m.Version != 1 || m.Workload != workload || len(m.Lo) != m.Entities || len(m.Hi) != m.Entities {
		return manifest{}, false, fmt.Errorf("load: %s: not a version 1 %s ledger of %d entities", path, workload, m.Entities)
	}
	return m, true, nil
}

func (l *ledger) load(m manifest) error {
	if m.Entities != l.n || len(m.Quantities) != len(l.names) {
		return fmt.Errorf("load: the data directory's ledger has %d entities and %d quantities, this run %d and %d (use the same --entities)",
			m.Entities, len(m.Quantities), l.n, len(l.names))
	}
	for e := 0; e < l.n; e++ {
		if len(m.Lo[e]) != len(l.names) || len(m.Hi[e]) != len(l.names) {
			return fmt.Errorf("load: ledger row %d malformed", e)
		}
		for q := range l.names {
			l.lo[e*len(l.names)+q].Store(m.Lo[e][q])
			l.hi[e*len(l.names)+q].Store(m.Hi[e][q])
		}
	}
	return nil
}

func (l *ledger) save(dir, workload string, shards int, seeds []uint64, idPrefix string) error {
	m := manifest{Version: 1, Workload: workload, Entities: l.n, Shards: shards, Seeds: seeds, IDPrefix: idPrefix, Quantities: l.names,
		Lo: make([][]int64, l.n), Hi: make([][]int64, l.n)}
	for e := 0; e < l.n; e++ {
		m.Lo[e] = make([]int64, len(l.names))
		m.Hi[e] = make([]int64, len(l.names))
		for q := range l.names {
			m.Lo[e][q], m.Hi[e][q] = l.bounds(e, q)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	path := manifestPath(dir, workload)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
