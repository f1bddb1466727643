package pebblestore

import (
	"context"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// Writes are added to the batch sorted by key, but two writes of one key
// keep their order (the later wins) and range deletions come last.
func TestStagingSortsKeysAndKeepsTheOrderOfOneKey(t *testing.T) {
	var st staging
	st.set(append(st.key('b'), 1), []byte("b1"))
	st.set(append(st.key('a'), 9), []byte("first"))
	st.deleteRange([]byte("a"), []byte("a\x05"))
	st.delete(append(st.key('a'), 9))
	st.set(append(st.key('a'), 2), []byte("a2"))
	mark := st.mark()
	st.set(append(st.key('c'), 0), []byte("dropped"))
	st.undo(mark)

	db, err := pebble.Open(t.TempDir(), quiet())
	require.NoError(t, err)
	defer db.Close()
	b := db.NewBatch()
	require.NoError(t, st.writeTo(b))
	type write struct {
		kind  pebble.InternalKeyKind
		key   string
		value string
	}
	var got []write
	r := b.Reader()
	for {
		kind, k, v, ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		got = append(got, write{kind, string(k), string(v)})
	}
	require.Equal(t, []write{
		{pebble.InternalKeyKindSet, "a\x02", "a2"},
		{pebble.InternalKeyKindSet, "a\x09", "first"},
		{pebble.InternalKeyKindDelete, "a\x09", ""},
		{pebble.InternalKeyKindSet, "b\x01", "b1"},
		{pebble.InternalKeyKindRangeDelete, "a", "a\x05"},
	}, got)
}

// Appends queued back to back (most land in one group) that set and then
// clear the pending flag, and snapshot over records of earlier appends of
// the same group, leave the state of the last one.
func TestAppendsOfOneEntityInOneGroup(t *testing.T) {
	s := openIn(t, t.TempDir(), Options{Pebble: quiet()})
	defer s.Close()
	ctx := context.Background()
	for round := range 20 {
		e := machine.Entity{Kind: "k", ID: string(rune('a' + round))}
		dones := make([]chan error, 6)
		for i := range dones {
			seq := uint64(i + 1)
			req := persistence.AppendRequest{
				Entity: e, ExpectedSeq: seq - 1, Shard: 3, Pending: i%2 == 0,
				Records: []machine.Record{{Seq: seq, Kind: machine.RecordInput, Time: 1, RequestID: "r", Payload: []byte{byte(i)}}},
			}
			if i == 4 {
				req.Snapshot = &machine.Snapshot{Seq: seq, State: []byte("s")}
			}
			dones[i] = make(chan error, 1)
			s.AppendAsync(req, func(err error) { dones[i] <- err })
		}
		for _, d := range dones {
			require.NoError(t, <-d)
		}
		pending, err := s.Pending(ctx, 3)
		require.NoError(t, err)
		require.NotContains(t, pending, e, "the last append cleared the flag")
		l, err := s.Load(ctx, e)
		require.NoError(t, err)
		require.EqualValues(t, 6, l.LastSeq)
		require.NotNil(t, l.Snapshot)
		require.EqualValues(t, 5, l.Snapshot.Seq)
		require.Len(t, l.Records, 1)
		require.EqualValues(t, 6, l.Records[0].Seq)
	}
}

// Many writes of a few keys: each key's writes stay in staging order.
func TestStagingIsStable(t *testing.T) {
	var st staging
	for i := range 200 {
		st.set(append(st.key('j'), byte((i*7)%5)), []byte{byte(i)})
	}
	db, err := pebble.Open(t.TempDir(), quiet())
	require.NoError(t, err)
	defer db.Close()
	b := db.NewBatch()
	require.NoError(t, st.writeTo(b))
	last := map[string]int{}
	prevKey := ""
	r := b.Reader()
	for {
		_, k, v, ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		require.GreaterOrEqual(t, string(k), prevKey, "keys are sorted")
		prevKey = string(k)
		if p, seen := last[string(k)]; seen {
			require.Greater(t, int(v[0]), p, "writes of key %q out of order", k)
		}
		last[string(k)] = int(v[0])
	}
	require.Len(t, last, 5)
}

// The pending flag lives in the pending index only (the meta key is not
// rewritten when it flips): a reopened store, whose cache is empty, reads
// it back from the index and clears or moves it correctly.
func TestPendingFlagSurvivesReopenWithoutMetaWrites(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := machine.Entity{Kind: "k", ID: "flip"}
	seq := uint64(0)
	appendPending := func(s *Store, shard uint32, pending bool) {
		t.Helper()
		seq++
		require.NoError(t, s.Append(ctx, persistence.AppendRequest{Entity: e, ExpectedSeq: seq - 1, Shard: shard, Pending: pending,
			Records: []machine.Record{{Seq: seq, Kind: machine.RecordInput, Time: 1, RequestID: "r", Payload: []byte{1}}}}))
	}
	listed := func(s *Store, shard uint32) bool {
		t.Helper()
		got, err := s.Pending(ctx, shard)
		require.NoError(t, err)
		return slices.Contains(got, e)
	}
	for _, step := range []struct {
		shard   uint32
		pending bool
	}{{1, true}, {1, false}, {1, true}, {1, true}, {2, true}, {2, false}, {3, false}, {3, true}, {3, false}} {
		s := openIn(t, dir, Options{Pebble: quiet()})
		appendPending(s, step.shard, step.pending)
		require.NoError(t, s.Close())
		s = openIn(t, dir, Options{Pebble: quiet()})
		for shard := uint32(0); shard < 4; shard++ {
			require.Equal(t, step.pending && shard == step.shard, listed(s, shard), "after seq %d: shard %d", seq, shard)
		}
		require.NoError(t, s.Close())
	}
}
