package pebblestore

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// The crash test re-executes the test binary as a child that appends as
// fast as it can and prints every acknowledged append; the parent kills
// it with SIGKILL at a random moment and checks the directory it leaves.

const (
	crashChildEnv  = "PHASM_PEBBLE_CRASH_CHILD_DIR"
	crashSmallEnv  = "PHASM_PEBBLE_CRASH_SMALL" // set: checkpoint and rotate segments often
	crashEntities  = 64
	crashRunBudget = 60 * time.Second // the child gives up on its own after this
)

func crashEntity(i int) machine.Entity {
	return machine.Entity{Kind: "crash", ID: strconv.Itoa(i)}
}

// crashAppend is the deterministic append the child makes to entity i at
// expected seq: 1 to 3 records, a snapshot every few, a pending flag.
func crashAppend(i int, expected uint64) persistence.AppendRequest {
	n := 1 + int((expected+uint64(i))%3)
	req := persistence.AppendRequest{Entity: crashEntity(i), Shard: uint32(i % 4), ExpectedSeq: expected}
	for j := range n {
		req.Records = append(req.Records, crashRecord(i, expected+1+uint64(j)))
	}
	last := req.LastSeq()
	req.Pending = last%2 == 1
	if expected%5 == 4 {
		req.Snapshot = &machine.Snapshot{Seq: last - 1, State: []byte(fmt.Sprintf("state %d %d", i, last-1))}
	}
	return req
}

func crashRecord(i int, seq uint64) machine.Record {
	return machine.Record{Seq: seq, Kind: machine.RecordInput, Time: int64(seq), Payload: []byte(fmt.Sprintf("entity %d record %d", i, seq))}
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	opts := Options{Pebble: quiet()}
	if os.Getenv(crashSmallEnv) != "" {
		opts = smallOpts(nil)
	}
	s, err := Open(dir, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	lines := make(chan string, 4096)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), crashRunBudget)
	defer cancel()
	for i := range crashEntities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := s.Load(ctx, crashEntity(i))
			if err != nil {
				fmt.Fprintln(os.Stderr, "child load:", err)
				os.Exit(3)
			}
			seq := l.LastSeq
			for ctx.Err() == nil {
				req := crashAppend(i, seq)
				if err := s.Append(ctx, req); err != nil {
					if ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "child append:", err)
						os.Exit(3)
					}
					return
				}
				seq = req.LastSeq()
				lines <- fmt.Sprintf("ack %d %d", i, seq)
			}
		}()
	}
	go func() { wg.Wait(); close(lines) }()
	w := bufio.NewWriter(os.Stdout)
	for l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
		if len(lines) == 0 {
			w.Flush()
		}
	}
	w.Flush()
	os.Exit(0)
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := rand.Uint64()
	t.Logf("seed %d (kill points are drawn from it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	acked := make([]uint64, crashEntities)
	for round := range 4 {
		// Rounds 1 and 3 checkpoint often (a checkpoint every few hundred
		// appends, segments of 8 KiB), so kills land in and around them.
		small := round%2 == 1
		killAfter := 50 + rng.IntN(8000)
		crashRound(t, dir, killAfter, acked, small)
		t.Logf("round %d: killed after %d acks (frequent checkpoints: %v)", round, killAfter, small)
	}
}

func crashRound(t *testing.T, dir string, killAfter int, acked []uint64, small bool) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	if small {
		cmd.Env = append(cmd.Env, crashSmallEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	n := 0
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue // test framework chatter
		}
		i, err1 := strconv.Atoi(f[1])
		seq, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || i < 0 || i >= crashEntities {
			t.Fatalf("bad line from child: %q", sc.Text())
		}
		acked[i] = max(acked[i], seq)
		n++
		if n == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended (%v) after %d acks before it could be killed", err, n)
	}

	s, err := Open(dir, Options{Pebble: quiet()})
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	ctx := t.Context()
	pending := map[uint32][]machine.Entity{}
	for shard := range uint32(4) {
		if pending[shard], err = s.Pending(ctx, shard); err != nil {
			t.Fatal(err)
		}
	}
	for i := range crashEntities {
		e := crashEntity(i)
		l, err := s.Load(ctx, e) // Load checks checksums and that the journal has no gap
		if err != nil {
			t.Fatalf("entity %d: %v", i, err)
		}
		if l.LastSeq < acked[i] {
			t.Fatalf("entity %d: acknowledged seq %d lost, store has %d", i, acked[i], l.LastSeq)
		}
		// What is stored is exactly a prefix of what the child wrote:
		// replaying its deterministic appends lands on LastSeq.
		var seq, snapSeq uint64
		for seq < l.LastSeq {
			req := crashAppend(i, seq)
			seq = req.LastSeq()
			if req.Snapshot != nil {
				snapSeq = req.Snapshot.Seq
			}
		}
		if seq != l.LastSeq {
			t.Fatalf("entity %d: LastSeq %d is not at an append boundary (half an append is visible)", i, l.LastSeq)
		}
		from := uint64(0)
		if snapSeq > 0 {
			if l.Snapshot == nil || l.Snapshot.Seq != snapSeq || string(l.Snapshot.State) != fmt.Sprintf("state %d %d", i, snapSeq) {
				t.Fatalf("entity %d: snapshot %+v, want seq %d", i, l.Snapshot, snapSeq)
			}
			from = snapSeq
		}
		for j, r := range l.Records {
			want := crashRecord(i, from+1+uint64(j))
			if r.Seq != want.Seq || string(r.Payload) != string(want.Payload) {
				t.Fatalf("entity %d: record %d is %+v, want %+v", i, j, r, want)
			}
		}
		if got := storedSeqs(t, s, e); len(got) != len(l.Records) {
			t.Fatalf("entity %d: %d journal keys stored, %d after the snapshot expected (truncation not atomic?)", i, len(got), len(l.Records))
		}
		listed := false
		for _, p := range pending[uint32(i%4)] {
			listed = listed || p == e
		}
		if want := l.LastSeq%2 == 1; listed != want {
			t.Fatalf("entity %d at seq %d: pending index lists it %v, want %v", i, l.LastSeq, listed, want)
		}
		acked[i] = l.LastSeq // the next round continues from what is stored
	}
}

// TestPowerLossKeepsAcknowledged runs on Pebble's strict in-memory file
// system, which forgets everything not synced when told to: unlike
// SIGKILL (where the OS page cache survives), this catches an append
// acknowledged before its fsync.
func TestPowerLossKeepsAcknowledged(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("frequentCheckpoints=%v", small), func(t *testing.T) { testPowerLoss(t, small) })
	}
}

func testPowerLoss(t *testing.T, small bool) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	fs := vfs.NewStrictMem()
	opts := Options{Pebble: &pebble.Options{FS: fs, Logger: quietLogger{}}}
	if small {
		opts = smallOpts(fs)
	}
	// Make the directory itself durable first, as an installer would.
	if err := fs.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := fs.OpenDir("")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	root.Close()
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := make([]uint64, crashEntities)
	cut := false
	stopAfter := 100 + rng.IntN(3000)
	if small {
		stopAfter = 1000 + rng.IntN(4000) // several checkpoints first
	}
	var count int
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range crashEntities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seq uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				req := crashAppend(i, seq)
				if err := s.Append(t.Context(), req); err != nil {
					return
				}
				seq = req.LastSeq()
				mu.Lock()
				if !cut {
					acked[i] = seq
					count++
					if count == stopAfter {
						// The power goes out: syncs from now on are lost.
						fs.SetIgnoreSyncs(true)
						cut = true
						close(stop)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if small && s.checkpoints.Load() == 0 {
		t.Fatal("no checkpoint ran before the power loss")
	}
	s.Close()
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
	s, err = Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range crashEntities {
		l, err := s.Load(t.Context(), crashEntity(i))
		if err != nil {
			t.Fatalf("entity %d: %v", i, err)
		}
		if l.LastSeq < acked[i] {
			t.Fatalf("entity %d: acknowledged seq %d lost after power loss, store has %d", i, acked[i], l.LastSeq)
		}
	}
}
