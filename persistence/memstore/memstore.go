// Package memstore is an in-memory persistence.Store for tests and the
// simulator.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// Store is an in-memory store. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	ents    map[machine.Entity]*entry
	pending map[uint32]map[machine.Entity]bool
	failN   int
	failErr error
	closed  bool
}

type entry struct {
	snap    []byte
	records [][]byte
	lastSeq uint64
}

// New returns an empty store.
func New() *Store {
	return &Store{ents: map[machine.Entity]*entry{}, pending: map[uint32]map[machine.Entity]bool{}}
}

// FailNextWrites makes the next n appends fail with err.
func (s *Store) FailNextWrites(n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failErr = n, err
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, e machine.Entity) (persistence.Loaded, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Loaded{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return persistence.Loaded{}, errors.New("memstore: closed")
	}
	en := s.ents[e]
	if en == nil {
		return persistence.Loaded{}, nil
	}
	var out persistence.Loaded
	out.LastSeq = en.lastSeq
	if en.snap != nil {
		snap, err := machine.DecodeSnapshot(en.snap)
		if err != nil {
			return persistence.Loaded{}, err
		}
		out.Snapshot = &snap
	}
	for _, b := range en.records {
		rec, err := machine.DecodeRecord(b)
		if err != nil {
			return persistence.Loaded{}, err
		}
		if out.Snapshot != nil && rec.Seq <= out.Snapshot.Seq {
			continue
		}
		out.Records = append(out.Records, rec)
	}
	return out, nil
}

// Append implements persistence.Store.
func (s *Store) Append(ctx context.Context, req persistence.AppendRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("memstore: closed")
	}
	if s.failN > 0 {
		s.failN--
		return s.failErr
	}
	en := s.ents[req.Entity]
	if en == nil {
		en = &entry{}
	}
	if en.lastSeq != req.ExpectedSeq {
		return fmt.Errorf("memstore: conflict: %s at seq %d, expected %d", req.Entity, en.lastSeq, req.ExpectedSeq)
	}
	for i, r := range req.Records {
		if r.Seq != req.ExpectedSeq+uint64(i)+1 {
			return fmt.Errorf("memstore: records not consecutive")
		}
		en.records = append(en.records, r.AppendBinary(nil))
	}
	if n := len(req.Records); n > 0 {
		en.lastSeq = req.Records[n-1].Seq
	}
	if req.Snapshot != nil {
		en.snap = req.Snapshot.AppendBinary(nil)
		keep := en.records[:0]
		for _, b := range en.records {
			rec, _ := machine.DecodeRecord(b)
			if rec.Seq > req.Snapshot.Seq {
				keep = append(keep, b)
			}
		}
		en.records = keep
	}
	s.ents[req.Entity] = en
	p := s.pending[req.Shard]
	if p == nil {
		p = map[machine.Entity]bool{}
		s.pending[req.Shard] = p
	}
	if req.Pending {
		p[req.Entity] = true
	} else {
		delete(p, req.Entity)
	}
	return nil
}

// AppendAsync implements persistence.Store.
func (s *Store) AppendAsync(req persistence.AppendRequest, done func(error)) {
	err := s.Append(context.Background(), req)
	go done(err)
}

// Pending implements persistence.Store.
func (s *Store) Pending(ctx context.Context, shard uint32) ([]machine.Entity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []machine.Entity
	for e := range s.pending[shard] {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// Close implements persistence.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
