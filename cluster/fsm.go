package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
)

// fsm adapts State to raft.FSM. Raft calls Apply, Snapshot and Restore from
// one goroutine; readers (views, the leader loop, RPC handlers) take the
// read lock and clone.
type fsm struct {
	mu  sync.RWMutex
	st  State
	log *slog.Logger
	// changed is fired after every change of st.
	changed *notifier
}

// applyResult is what fsm.Apply returns through raft's ApplyFuture.
type applyResult struct {
	changed bool
	version uint64
	err     error
}

var _ raft.FSM = (*fsm)(nil)

// Apply decodes and applies one log entry. A command that cannot be decoded
// or is rejected leaves the state unchanged on every replica alike (they
// all see the same bytes), and its error goes back to the proposer.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return applyResult{}
	}
	var c Command
	if err := c.UnmarshalBinary(l.Data); err != nil {
		f.log.Error("cluster: undecodable command in the raft log", "index", l.Index, "err", err)
		return applyResult{err: err}
	}
	f.mu.Lock()
	changed, err := f.st.Apply(c)
	v := f.st.Version
	f.mu.Unlock()
	if changed {
		f.changed.fire()
	}
	return applyResult{changed: changed, version: v, err: err}
}

// state returns a deep copy of the current state.
func (f *fsm) state() State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Clone()
}

// Snapshot encodes the state now; Persist writes those bytes later.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	b, err := f.st.MarshalBinary()
	f.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("%w: reading: %w", ErrCorruptSnapshot, err)
	}
	var st State
	if err := st.UnmarshalBinary(b); err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.changed.fire()
	return nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// notifier is a broadcast: wait returns a channel that is closed at the
// next fire.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) fire() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}
