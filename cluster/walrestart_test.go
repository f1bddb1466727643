package cluster_test

import (
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// openWAL opens a WAL with its own metadata database, closed by the
// returned function (as the node does).
func openWAL(t *testing.T, dir string) (*wal.WAL, func()) {
	t.Helper()
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	return w, func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		meta.Close()
	}
}

// TestRaftLogSurvivesTailTruncationAndRestart: Raft truncates a follower's
// log suffix when it conflicts with a new leader's (DeleteRange of the
// tail). raft-wal v0.4.0 marked the truncated tail segment sealed without
// writing its index block, so after a restart every read of it failed
// with "sealed segment has no index block" and the node could never start
// again (found by the fault suite after rolling restarts). v0.4.2 seals it
// properly; this pins the behaviour.
func TestRaftLogSurvivesTailTruncationAndRestart(t *testing.T) {
	dir := t.TempDir()
	w, closeWAL := openWAL(t, dir)
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("entry")})
	}
	if err := w.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(8, 10); err != nil { // a conflicting suffix
		t.Fatal(err)
	}
	if err := w.StoreLogs([]*raft.Log{{Index: 8, Term: 2, Type: raft.LogCommand, Data: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	closeWAL()

	w, closeWAL = openWAL(t, dir)
	defer closeWAL()
	for i := uint64(1); i <= 8; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d after the restart: %v", i, err)
		}
		if want := uint64(1); i == 8 {
			want = 2
			if l.Term != want {
				t.Fatalf("entry 8 has term %d, want %d (the leader's)", l.Term, want)
			}
		}
	}
	if last, err := w.LastIndex(); err != nil || last != 8 {
		t.Fatalf("last index %d, %v; want 8", last, err)
	}
}
