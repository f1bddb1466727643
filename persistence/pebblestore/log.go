package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// The group log: the store's durability point. Each committed group is
// one frame appended to the current segment file of <dir>/log and synced
// (fdatasync) before the group is acknowledged. A frame holds every
// Pebble write the group makes, in batch order, so replaying it
// re-applies the group exactly (all writes are blind sets and deletes, so
// replaying a frame whose effect is already in Pebble changes nothing).
//
// Frame: payloadLen u32 LE | crc32c(payload) u32 LE | synced u64 LE |
// crc32c(first 16 bytes) u32 LE | payload, where synced is the offset in
// the segment up to which the log was known durable when the frame was
// written (so a later frame tells whether an earlier one was synced).
// Payload: a sequence of ops, each
//
//	opSet:         kind | uvarint len | key | uvarint len | value
//	opDelete:      kind | uvarint len | key
//	opDeleteRange: kind | uvarint len | start | uvarint len | end
const (
	frameHeaderLen = 20
	opSet          = 1
	opDelete       = 2
	opDeleteRange  = 3
	segmentSuffix  = ".log"
	logDirName     = "log"
)

// logPos is a position in the log: a segment number and a byte offset
// in it. Positions order by (seg, off).
type logPos struct {
	seg uint64
	off int64
}

func (p logPos) less(o logPos) bool {
	return p.seg < o.seg || (p.seg == o.seg && p.off < o.off)
}

func segmentName(seg uint64) string { return fmt.Sprintf("%016d%s", seg, segmentSuffix) }

func parseSegmentName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(num) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}

// appendFrameOp appends one op to a frame payload.
func appendFrameOp(dst []byte, kind byte, key, value []byte) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	if kind != opDelete {
		dst = binary.AppendUvarint(dst, uint64(len(value)))
		dst = append(dst, value...)
	}
	return dst
}

// sealFrame fills in the header of a frame whose payload follows
// frameHeaderLen reserved bytes in buf.
func sealFrame(buf []byte, synced int64) {
	payload := buf[frameHeaderLen:]
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:], machine.Checksum(payload))
	binary.LittleEndian.PutUint64(buf[8:], uint64(synced))
	binary.LittleEndian.PutUint32(buf[16:], machine.Checksum(buf[:16]))
}

// frameSynced returns the synced offset recorded in a valid frame.
func frameSynced(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b[8:])) }

// frameAt checks the frame at the start of b and returns its payload and
// total length; ok is false if it is incomplete or fails a checksum.
func frameAt(b []byte) (payload []byte, n int, ok bool) {
	if len(b) < frameHeaderLen || machine.Checksum(b[:16]) != binary.LittleEndian.Uint32(b[16:]) {
		return nil, 0, false
	}
	l := binary.LittleEndian.Uint32(b)
	if l == 0 || uint64(l) > uint64(len(b)-frameHeaderLen) {
		return nil, 0, false
	}
	payload = b[frameHeaderLen : frameHeaderLen+int(l)]
	if machine.Checksum(payload) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, false
	}
	return payload, frameHeaderLen + int(l), true
}

var errBadFrame = errors.New("malformed frame payload")

// applyFrame adds the writes of a frame payload to b.
func applyFrame(b *pebble.Batch, payload []byte) error {
	for len(payload) > 0 {
		kind := payload[0]
		payload = payload[1:]
		field := func() ([]byte, bool) {
			n, k := binary.Uvarint(payload)
			if k <= 0 || n > uint64(len(payload)-k) {
				return nil, false
			}
			f := payload[k : k+int(n)]
			payload = payload[k+int(n):]
			return f, true
		}
		key, ok := field()
		if !ok {
			return errBadFrame
		}
		var err error
		switch kind {
		case opSet, opDeleteRange:
			value, ok := field()
			if !ok {
				return errBadFrame
			}
			if kind == opSet {
				err = b.Set(key, value, nil)
			} else {
				err = b.DeleteRange(key, value, nil)
			}
		case opDelete:
			err = b.Delete(key, nil)
		default:
			return errBadFrame
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func logCorruption(seg uint64, off int64, reason string) error {
	return &persistence.CorruptionError{Where: "log", Reason: fmt.Sprintf("segment %d offset %d: %s", seg, off, reason)}
}

// syncDir makes the directory's entries durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// listSegments returns the segment numbers in dir, ascending.
func listSegments(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, n := range names {
		if seg, ok := parseSegmentName(n); ok {
			segs = append(segs, seg)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

func readAll(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// replayLog calls apply for every frame after from, in order. A frame in
// the last segment that is incomplete or fails its checksum, and that no
// later frame says was synced, was never acknowledged (a crash tore its
// write, or wrote later unsynced pages but not its own) and is dropped
// with everything after it; any other damage is a
// *persistence.CorruptionError. It returns the segments it found.
func replayLog(fs vfs.FS, dir string, from logPos, apply func(payload []byte, end logPos) error) ([]uint64, error) {
	segs, err := listSegments(fs, dir)
	if err != nil {
		return nil, err
	}
	var todo []uint64
	for _, seg := range segs {
		if seg >= from.seg {
			todo = append(todo, seg)
		}
	}
	// The checkpoint's segment is created before the checkpoint names it
	// and removed only after a later checkpoint.
	if from.seg > 0 && ((len(todo) == 0 && from.off > 0) || (len(todo) > 0 && todo[0] != from.seg)) {
		return nil, logCorruption(from.seg, from.off, "the checkpointed segment is missing")
	}
	for i, seg := range todo {
		if i > 0 && seg != todo[i-1]+1 {
			return nil, logCorruption(todo[i-1]+1, 0, "segment is missing")
		}
		data, err := readAll(fs, fs.PathJoin(dir, segmentName(seg)))
		if err != nil {
			return nil, fmt.Errorf("pebblestore: reading log segment %d: %w", seg, err)
		}
		off := int64(0)
		if seg == from.seg {
			off = from.off
		}
		if off > int64(len(data)) {
			return nil, logCorruption(seg, off, fmt.Sprintf("segment is %d bytes, shorter than the checkpoint", len(data)))
		}
		last := i == len(todo)-1
		for off < int64(len(data)) {
			payload, n, ok := frameAt(data[off:])
			if !ok {
				if last && !syncedPast(data, off) {
					break // torn by a crash: never acknowledged
				}
				return nil, logCorruption(seg, off, "damaged frame that a later frame says was synced")
			}
			if err := apply(payload, logPos{seg, off + int64(n)}); err != nil {
				if errors.Is(err, errBadFrame) {
					return nil, logCorruption(seg, off, err.Error())
				}
				return nil, err
			}
			off += int64(n)
		}
	}
	return segs, nil
}

// syncedPast reports whether a valid frame after off says the log was
// synced past off (so the frame at off was durable before it).
func syncedPast(data []byte, off int64) bool {
	for i := off + 1; i+frameHeaderLen <= int64(len(data)); i++ {
		if _, _, ok := frameAt(data[i:]); ok && frameSynced(data[i:]) > off {
			return true
		}
	}
	return false
}

// segLog writes frames. append runs on the committer goroutine only;
// syncTo on the acknowledging goroutine.
type segLog struct {
	fs       vfs.FS
	dir      string
	segBytes int64

	syncMu    sync.Mutex // held while syncing, and while switching segments
	f         vfs.File   // the current segment (changed under syncMu)
	seg       uint64
	written   atomic.Int64 // bytes written to the current segment
	synced    logPos       // guarded by syncMu: everything before it is durable
	syncedOff atomic.Int64 // synced.off while synced.seg is the current segment, else 0
	// failed (guarded by syncMu) is the first failed sync: every later
	// sync fails with it (a retried fsync may "succeed" after losing data).
	failed error

	// The syncer syncs ahead: kicked after each frame, it starts a sync at
	// once, so the disk works on the next groups while the acknowledging
	// goroutine applies and answers the previous ones (syncTo then finds
	// its frames durable, or waits for the sync under way).
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newSegLog(fs vfs.FS, dir string, segBytes int64, f vfs.File, seg uint64, synced logPos) *segLog {
	l := &segLog{fs: fs, dir: dir, segBytes: segBytes, f: f, seg: seg, synced: synced,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.syncer()
	return l
}

func (l *segLog) syncer() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
			_ = l.syncTo(logPos{}) // its error is kept in failed
		}
	}
}

// syncAhead asks the syncer to sync what is written (never blocks).
func (l *segLog) syncAhead() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// createSegment creates segment seg and makes its directory entry durable.
func createSegment(fs vfs.FS, dir string, seg uint64) (vfs.File, error) {
	f, err := fs.Create(fs.PathJoin(dir, segmentName(seg)))
	if err != nil {
		return nil, err
	}
	if err := syncDir(fs, dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// append seals and writes one frame (frameHeaderLen reserved bytes, then
// the payload) and returns the position after it. It switches to a new
// segment first when the current one is full; the old one is synced
// before anything is written to the new one, so only the last segment
// can ever hold unsynced frames.
func (l *segLog) append(frame []byte) (logPos, error) {
	if w := l.written.Load(); w > 0 && w+int64(len(frame)) > l.segBytes {
		if err := l.rotate(); err != nil {
			return logPos{}, err
		}
	}
	sealFrame(frame, l.syncedOff.Load())
	n, err := l.f.Write(frame)
	l.written.Add(int64(n))
	if err != nil {
		return logPos{}, err
	}
	return logPos{l.seg, l.written.Load()}, nil
}

func (l *segLog) rotate() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.failed != nil {
		return l.failed
	}
	if err := l.f.SyncData(); err != nil {
		l.failed = err
		return err
	}
	l.synced = logPos{l.seg, l.written.Load()}
	f, err := createSegment(l.fs, l.dir, l.seg+1)
	if err != nil {
		return err
	}
	old := l.f
	l.f, l.seg = f, l.seg+1
	l.written.Store(0)
	l.syncedOff.Store(0)
	return old.Close()
}

// syncTo returns once everything before end is durable: one sync covers
// every frame written before it started. The zero end means everything
// written so far.
func (l *segLog) syncTo(end logPos) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.failed != nil {
		return l.failed
	}
	pos := logPos{l.seg, l.written.Load()}
	if end == (logPos{}) {
		end = pos
	}
	if l.f == nil || !l.synced.less(end) {
		return nil
	}
	if err := l.f.SyncData(); err != nil {
		l.failed = err
		return err
	}
	l.synced = pos
	l.syncedOff.Store(pos.off)
	return nil
}

func (l *segLog) close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// removeSegmentsBefore deletes the segments numbered below seg.
func removeSegmentsBefore(fs vfs.FS, dir string, seg uint64) error {
	segs, err := listSegments(fs, dir)
	if err != nil {
		return err
	}
	removed := false
	for _, s := range segs {
		if s < seg {
			if err := fs.Remove(fs.PathJoin(dir, segmentName(s))); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed {
		return syncDir(fs, dir)
	}
	return nil
}
