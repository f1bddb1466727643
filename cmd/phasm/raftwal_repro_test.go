//go:build repro

package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// TestRaftWALAfterGracefulRestarts reads the Raft log a node left behind
// in the fault suite (seed 20261127): n1 was stopped with SIGTERM (a
// graceful leave) in two rolling restarts a minute apart, with kills,
// pauses and partitions of other nodes in between. At its next start it
// logged `raft: failed to get log: index=1 error="sealed segment has no
// index block"` and never served again (no "node started"); a restart did
// not help. The log is in testdata (the directory cluster.Node opens as
// DataDir/raft-wal, with its wal-meta.db): raft-wal's metadata says the
// first segment (indexes 1..253) is sealed, but the segment file has no
// index block. Either a seal is not made durable before the metadata says
// so, or cluster/node.go's shutdown (which closes the metadata database
// itself, working around raft-wal v0.4.0's Close) lets the metadata commit
// without the segment's index block. Behind the build tag `repro`: it
// fails until the cause is fixed in cluster/ (then the file should read).
//
//	go test -tags repro -run TestRaftWALAfterGracefulRestarts -v ./cmd/phasm/
func TestRaftWALAfterGracefulRestarts(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("tar", "xzf", filepath.Join("testdata", "raft-wal-sealed-no-index.tar.gz"), "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v\n%s", err, out)
	}
	w, err := wal.Open(filepath.Join(dir, "raft-wal"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, _ := w.FirstIndex()
	last, _ := w.LastIndex()
	var l raft.Log
	for i := first; i <= last; i++ {
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("the Raft log holds %d..%d but index %d cannot be read: %v", first, last, i, err)
		}
	}
}
