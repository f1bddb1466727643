package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// smallOpts checkpoints and rotates segments often.
func smallOpts(fs vfs.FS) Options {
	po := quiet()
	if fs != nil {
		po.FS = fs
	}
	return Options{Pebble: po, CheckpointBytes: 16 << 10, SegmentBytes: 8 << 10}
}

// strictFS returns a strict in-memory FS with a durable directory "db".
func strictFS(t *testing.T) *vfs.MemFS {
	fs := vfs.NewStrictMem()
	require.NoError(t, fs.MkdirAll("db", 0o755))
	require.NoError(t, syncDir(fs, ""))
	return fs
}

// crash simulates a power loss: everything not synced is forgotten (the
// store's Close checkpoint included).
func crash(t *testing.T, s *Store, fs *vfs.MemFS) {
	t.Helper()
	fs.SetIgnoreSyncs(true)
	s.Close()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
}

func testRec(e machine.Entity, seq uint64) machine.Record {
	return machine.Record{Seq: seq, Kind: machine.RecordInput, Time: int64(seq), Payload: fmt.Appendf(nil, "%s/%d %0100d", e.ID, seq, seq)}
}

func appendN(t *testing.T, s *Store, e machine.Entity, from uint64, n int) uint64 {
	t.Helper()
	for i := range n {
		seq := from + uint64(i) + 1
		require.NoError(t, s.Append(t.Context(), persistence.AppendRequest{Entity: e, ExpectedSeq: seq - 1, Records: []machine.Record{testRec(e, seq)}}))
	}
	return from + uint64(n)
}

// checkEntity loads e and checks it holds exactly records 1..last (after
// its snapshot, if any).
func checkEntity(t *testing.T, s *Store, e machine.Entity, last uint64) {
	t.Helper()
	l, err := s.Load(t.Context(), e)
	require.NoError(t, err)
	require.Equal(t, last, l.LastSeq, "entity %s", e)
	from := uint64(0)
	if l.Snapshot != nil {
		from = l.Snapshot.Seq
	}
	require.Len(t, l.Records, int(last-from), "entity %s", e)
	for i, r := range l.Records {
		want := testRec(e, from+1+uint64(i))
		require.Equal(t, want.Seq, r.Seq)
		require.Equal(t, string(want.Payload), string(r.Payload))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// After a crash, Open starts from the last checkpoint's marker and
// replays the frames written after it: nothing acknowledged is lost.
func TestRecoveryReplaysFramesAfterCheckpoint(t *testing.T) {
	fs := strictFS(t)
	s, err := Open("db", smallOpts(fs))
	require.NoError(t, err)
	es := []machine.Entity{{Kind: "k", ID: "a"}, {Kind: "k", ID: "b"}, {Kind: "k", ID: "c"}}
	last := make([]uint64, len(es))
	for round := range 40 {
		for i, e := range es {
			last[i] = appendN(t, s, e, last[i], 3+round%4)
		}
	}
	waitFor(t, "a checkpoint", func() bool { return s.checkpoints.Load() > 0 })
	// Appends after the last checkpoint, so that some frames need replay.
	for {
		last[0] = appendN(t, s, es[0], last[0], 1)
		waitFor(t, "no checkpoint running", func() bool {
			s.viewMu.RLock()
			defer s.viewMu.RUnlock()
			return s.frozen == nil
		})
		s.viewMu.RLock()
		tailed := s.active.bytes > 0
		s.viewMu.RUnlock()
		if tailed {
			break // and no checkpoint can start without another append
		}
	}
	crash(t, s, fs)

	s, err = Open("db", smallOpts(fs))
	require.NoError(t, err)
	defer s.Close()
	require.Positive(t, s.replayedFrom.off, "replay should start at a checkpoint after some frames")
	require.Positive(t, s.replayedFrames, "frames after the checkpoint should be replayed")
	for i, e := range es {
		checkEntity(t, s, e, last[i])
	}
}

// logFrames returns the offsets of the frames in a segment from off on.
func logFrames(t *testing.T, data []byte, off int64) []int64 {
	var out []int64
	for off < int64(len(data)) {
		_, n, ok := frameAt(data[off:])
		require.True(t, ok, "bad frame at %d", off)
		out = append(out, off)
		off += int64(n)
	}
	return out
}

// crashedWithFrames leaves a crashed store in fs whose log holds one frame
// (one append of seq 1..n to e) after its checkpoint marker per append,
// and returns the last segment's path, its bytes and the frames' offsets.
func crashedWithFrames(t *testing.T, fs *vfs.MemFS, e machine.Entity, n int) (string, []byte, []int64) {
	s, err := Open("db", Options{Pebble: &pebble.Options{FS: fs, Logger: quietLogger{}}})
	require.NoError(t, err)
	appendN(t, s, e, 0, n)
	crash(t, s, fs)
	segs, err := listSegments(fs, "db/log")
	require.NoError(t, err)
	require.Len(t, segs, 1)
	path := fs.PathJoin("db/log", segmentName(segs[0]))
	f, err := fs.Open(path)
	require.NoError(t, err)
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	f.Close()
	frames := logFrames(t, data, 0)
	require.Len(t, frames, n)
	return path, data, frames
}

func rewrite(t *testing.T, fs vfs.FS, path string, data []byte) {
	f, err := fs.Create(path)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// A frame torn by a crash at the end of the log was never acknowledged:
// Open drops it (and only it).
func TestTornLastFrameIsDiscarded(t *testing.T) {
	e := machine.Entity{Kind: "k", ID: "torn"}
	for name, damage := range map[string]func(data []byte, last int64) []byte{
		"truncated payload": func(data []byte, last int64) []byte { return data[:len(data)-7] },
		"truncated header":  func(data []byte, last int64) []byte { return data[:last+5] },
		"flipped byte":      func(data []byte, last int64) []byte { data[len(data)-3] ^= 1; return data },
		"zeroed":            func(data []byte, last int64) []byte { clear(data[last:]); return data },
	} {
		t.Run(name, func(t *testing.T) {
			fs := strictFS(t)
			path, data, frames := crashedWithFrames(t, fs, e, 5)
			rewrite(t, fs, path, damage(slices.Clone(data), frames[len(frames)-1]))
			s, err := Open("db", Options{Pebble: &pebble.Options{FS: fs, Logger: quietLogger{}}})
			require.NoError(t, err)
			require.Equal(t, 4, s.replayedFrames)
			checkEntity(t, s, e, 4)
			// The store goes on from there, and the torn frame stays gone.
			appendN(t, s, e, 4, 3)
			crash(t, s, fs)
			s, err = Open("db", Options{Pebble: &pebble.Options{FS: fs, Logger: quietLogger{}}})
			require.NoError(t, err)
			defer s.Close()
			checkEntity(t, s, e, 7)
		})
	}
}

// A damaged frame followed by valid frames is corruption, not a torn
// write: Open fails with a *persistence.CorruptionError.
func TestCorruptMiddleFrameIsCorruption(t *testing.T) {
	e := machine.Entity{Kind: "k", ID: "mid"}
	for name, damage := range map[string]func(data []byte, at int64){
		"payload": func(data []byte, at int64) { data[at+frameHeaderLen+2] ^= 0x10 },
		"length":  func(data []byte, at int64) { data[at+1] ^= 0x10 },
	} {
		t.Run(name, func(t *testing.T) {
			fs := strictFS(t)
			path, data, frames := crashedWithFrames(t, fs, e, 5)
			damage(data, frames[2])
			rewrite(t, fs, path, data)
			_, err := Open("db", Options{Pebble: &pebble.Options{FS: fs, Logger: quietLogger{}}})
			var ce *persistence.CorruptionError
			require.ErrorAs(t, err, &ce)
			require.ErrorIs(t, err, persistence.ErrCorrupt)
			require.Equal(t, "log", ce.Where)
		})
	}
}

// Load merges the records checkpointed into Pebble with the tail, also
// while a checkpoint has written records to Pebble that are still in the
// frozen tail (present in both).
func TestLoadMergesTailAndPebble(t *testing.T) {
	s := openIn(t, t.TempDir(), smallOpts(nil))
	e := machine.Entity{Kind: "k", ID: "merge"}
	flushed := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	s.testHook = func(point string) {
		if point == "flushed" {
			once.Do(func() {
				close(flushed)
				<-release
			})
		}
	}
	var last uint64
	// Fill the tail until a checkpoint starts and stops at the hook.
	for {
		last = appendN(t, s, e, last, 1)
		select {
		case <-flushed:
		default:
			continue
		}
		break
	}
	s.viewMu.RLock()
	frozen := s.frozen.records(e).recs
	s.viewMu.RUnlock()
	require.NotEmpty(t, frozen, "the frozen tail should hold records")
	inPebble := 0
	for _, r := range frozen {
		if _, closer, err := s.db.Get(journalKey(e, r.seq)); err == nil {
			closer.Close()
			inPebble++
		}
	}
	require.Equal(t, len(frozen), inPebble, "the frozen tail's records should be in Pebble too")
	last = appendN(t, s, e, last, 5) // into the active tail
	checkEntity(t, s, e, last)
	close(release)
	waitFor(t, "the checkpoint", func() bool { return s.checkpoints.Load() > 0 })
	checkEntity(t, s, e, last)
	// Records only in Pebble, then only in the tail.
	last = appendN(t, s, e, last, 3)
	checkEntity(t, s, e, last)
	require.Equal(t, seqRange(1, last), storedSeqs(t, s, e))
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// A truncating snapshot applied while a checkpoint copies the frozen
// tail: the cut records must not come back in Pebble.
func TestSnapshotDuringCheckpointCopy(t *testing.T) {
	s := openIn(t, t.TempDir(), smallOpts(nil))
	e := machine.Entity{Kind: "k", ID: "cut"}
	copied := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	s.testHook = func(point string) {
		if point == "copied" {
			once.Do(func() {
				close(copied)
				<-release
			})
		}
	}
	var last uint64
	for {
		last = appendN(t, s, e, last, 1)
		select {
		case <-copied:
		default:
			continue
		}
		break
	}
	// The frozen tail has been copied into the batch; a snapshot at the
	// end cuts every record.
	seq := last + 1
	require.NoError(t, s.Append(t.Context(), persistence.AppendRequest{Entity: e, ExpectedSeq: last, Records: []machine.Record{testRec(e, seq)},
		Snapshot: &machine.Snapshot{Seq: seq, State: []byte("s")}}))
	last = seq
	close(release)
	waitFor(t, "the checkpoint", func() bool { return s.checkpoints.Load() > 0 })
	require.Empty(t, storedSeqs(t, s, e), "records cut by the snapshot came back")
	l, err := s.Load(t.Context(), e)
	require.NoError(t, err)
	require.Equal(t, last, l.LastSeq)
	require.Empty(t, l.Records)
	// And after a restart.
	require.NoError(t, s.Close())
	s = openIn(t, s.dir, s.opts)
	require.Empty(t, storedSeqs(t, s, e))
}

// Checkpoints running while entities append (with truncating snapshots)
// and others load: every Load sees a consistent prefix. Run with -race.
func TestCheckpointConcurrentWithAppendsAndLoads(t *testing.T) {
	s := openIn(t, t.TempDir(), smallOpts(nil))
	const writers = 8
	var acked [writers]atomic.Uint64
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	ent := func(i int) machine.Entity { return machine.Entity{Kind: "k", ID: fmt.Sprint(i)} }
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			e := ent(i)
			var seq uint64
			for ctx.Err() == nil {
				req := persistence.AppendRequest{Entity: e, ExpectedSeq: seq, Records: []machine.Record{testRec(e, seq+1), testRec(e, seq+2)}}
				if (seq/2)%7 == 6 {
					req.Snapshot = &machine.Snapshot{Seq: seq + 1, State: []byte("s")}
				}
				if err := s.Append(context.Background(), req); err != nil {
					errs <- err
					return
				}
				seq += 2
				acked[i].Store(seq)
			}
		}()
		go func() {
			defer wg.Done()
			e := ent(i)
			for ctx.Err() == nil {
				floor := acked[i].Load()
				l, err := s.Load(context.Background(), e)
				if err != nil {
					errs <- err
					return
				}
				if l.LastSeq < floor {
					errs <- fmt.Errorf("%s: LastSeq %d below acknowledged %d", e, l.LastSeq, floor)
					return
				}
				from := uint64(0)
				if l.Snapshot != nil {
					from = l.Snapshot.Seq
				}
				for j, r := range l.Records {
					if want := testRec(e, from+1+uint64(j)); r.Seq != want.Seq || string(r.Payload) != string(want.Payload) {
						errs <- fmt.Errorf("%s: record %d is %d %q", e, j, r.Seq, r.Payload)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	require.Greater(t, s.checkpoints.Load(), int64(2), "checkpoints should have run")
	for i := range writers {
		l, err := s.Load(t.Context(), ent(i))
		require.NoError(t, err)
		require.Equal(t, acked[i].Load(), l.LastSeq)
	}
	// Everything survives a restart, and truncation left nothing behind.
	require.NoError(t, s.Close())
	s = openIn(t, s.dir, s.opts)
	for i := range writers {
		l, err := s.Load(t.Context(), ent(i))
		require.NoError(t, err)
		require.Equal(t, acked[i].Load(), l.LastSeq)
		require.Len(t, storedSeqs(t, s, ent(i)), len(l.Records))
	}
}

// Segments wholly before a checkpoint are deleted.
func TestSegmentsDeletedAfterCheckpoint(t *testing.T) {
	s := openIn(t, t.TempDir(), smallOpts(nil))
	logDir := s.fs.PathJoin(s.dir, logDirName)
	first, err := listSegments(s.fs, logDir)
	require.NoError(t, err)
	require.Len(t, first, 1)
	e := machine.Entity{Kind: "k", ID: "seg"}
	var last uint64
	for s.checkpoints.Load() < 3 {
		last = appendN(t, s, e, last, 10)
	}
	segs, err := listSegments(s.fs, logDir)
	require.NoError(t, err)
	marker, err := readMarker(s.db)
	require.NoError(t, err)
	require.NotContains(t, segs, first[0], "the first segment should be gone")
	require.Greater(t, s.log.seg, first[0]+2, "segments should rotate")
	for _, seg := range segs {
		require.GreaterOrEqual(t, seg, marker.seg, "segment %d is before the checkpoint at %d", seg, marker.seg)
	}
	checkEntity(t, s, e, last)
}

// The tails stay bounded: appends wait while a checkpoint is behind.
func TestTailIsBounded(t *testing.T) {
	block := make(chan struct{})
	var unblock sync.Once
	s := openIn(t, t.TempDir(), smallOpts(nil))
	t.Cleanup(func() { unblock.Do(func() { close(block) }) }) // runs before Close
	var once sync.Once
	s.testHook = func(point string) {
		if point == "copied" {
			once.Do(func() { <-block })
		}
	}
	e := machine.Entity{Kind: "k", ID: "bound"}
	done := make(chan uint64)
	go func() {
		var last uint64
		for {
			req := persistence.AppendRequest{Entity: e, ExpectedSeq: last, Records: []machine.Record{testRec(e, last+1)}}
			if err := s.Append(context.Background(), req); err != nil {
				done <- last
				return
			}
			last++
			if last == 2000 {
				done <- last
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	limit := int64(s.opts.MaxTailBytes + 4096) // one append per group here
	require.LessOrEqual(t, s.tailBytes.Load(), limit)
	select {
	case n := <-done:
		t.Fatalf("all %d appends went through while the checkpoint was blocked", n)
	default:
	}
	unblock.Do(func() { close(block) })
	require.EqualValues(t, 2000, <-done)
	checkEntity(t, s, e, 2000)
}

func TestOptionsValidateTail(t *testing.T) {
	err := Options{CheckpointBytes: -1, MaxTailBytes: -1, SegmentBytes: -1}.Validate()
	require.ErrorIs(t, err, persistence.ErrInvalidOptions)
	for _, f := range []string{"CheckpointBytes", "MaxTailBytes", "SegmentBytes"} {
		require.Contains(t, err.Error(), f)
	}
	err = Options{CheckpointBytes: 1 << 20, MaxTailBytes: 1 << 20}.Validate()
	require.ErrorIs(t, err, persistence.ErrInvalidOptions)
	require.NoError(t, Options{CheckpointBytes: 1 << 20, MaxTailBytes: 2 << 20}.Validate())
	require.NoError(t, Options{CheckpointBytes: 1 << 30}.Validate())
	if errors.Is(Options{}.Validate(), persistence.ErrInvalidOptions) {
		t.Fatal("zero options are valid")
	}
}

// A checkpoint makes the Pebble writes of the groups before its marker
// durable (not just the records it writes): after a power loss, an
// entity's pending flag written before the checkpoint is still there,
// though its frame is no longer replayed.
func TestCheckpointMakesEarlierWritesDurable(t *testing.T) {
	fs := strictFS(t)
	s, err := Open("db", smallOpts(fs))
	require.NoError(t, err)
	a := machine.Entity{Kind: "k", ID: "pending"}
	require.NoError(t, s.Append(t.Context(), persistence.AppendRequest{Entity: a, Shard: 7, Pending: true, Records: []machine.Record{testRec(a, 1)}}))
	b := machine.Entity{Kind: "k", ID: "filler"}
	var last uint64
	for s.checkpoints.Load() < 2 {
		last = appendN(t, s, b, last, 10)
	}
	crash(t, s, fs)
	s, err = Open("db", smallOpts(fs))
	require.NoError(t, err)
	defer s.Close()
	require.Positive(t, s.replayedFrom.off)
	pending, err := s.Pending(t.Context(), 7)
	require.NoError(t, err)
	require.Equal(t, []machine.Entity{a}, pending)
	checkEntity(t, s, a, 1)
	checkEntity(t, s, b, last)
}

// Writeback may persist a later unsynced frame but not an earlier one: a
// damaged frame is torn (dropped with what follows) unless a later frame
// says the log was synced past it.
func TestDamagedFrameBeforeUnsyncedFrameIsTorn(t *testing.T) {
	frame := func(synced int64, key string) []byte {
		b := appendFrameOp(make([]byte, frameHeaderLen), opSet, []byte(key), []byte("v"))
		sealFrame(b, synced)
		return b
	}
	f1 := frame(0, "a")
	for _, tc := range []struct {
		name    string
		synced2 int64 // what the second frame says was synced
		corrupt bool
	}{
		{"second frame written before the first was synced", 0, false},
		{"second frame written after the first was synced", int64(len(f1)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			require.NoError(t, fs.MkdirAll("log", 0o755))
			data := append(slices.Clone(f1), frame(tc.synced2, "b")...)
			data = append(data, frame(tc.synced2, "c")...)
			data[frameHeaderLen+1] ^= 1 // damage the first frame's payload
			rewrite(t, fs, fs.PathJoin("log", segmentName(1)), data)
			n := 0
			_, err := replayLog(fs, "log", logPos{seg: 1}, func([]byte, logPos) error { n++; return nil })
			if tc.corrupt {
				var ce *persistence.CorruptionError
				require.ErrorAs(t, err, &ce)
				return
			}
			require.NoError(t, err)
			require.Zero(t, n, "nothing after a torn frame is replayed")
		})
	}
}
