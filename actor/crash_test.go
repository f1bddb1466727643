package actor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence/pebblestore"
)

// The crash test runs a node on Pebble in a child process (this test binary
// re-executed) under a bank workload, kills it with SIGKILL at random
// moments, several times, and then checks the data with a final, clean
// run: every acknowledged input is in the journal, money is conserved, no
// balance is negative, and every transfer that was in flight completed
// exactly once (re-driven by Restore after the restart).

const (
	crashDirEnv  = "PHASM_ACTOR_CRASH_DIR"
	crashModeEnv = "PHASM_ACTOR_CRASH_MODE"
	crashSeedEnv = "PHASM_ACTOR_CRASH_SEED"
	crashShards  = 16
	crashAccts   = 40
	crashFunds   = 10_000
)

func crashName(i int) string { return fmt.Sprintf("acct-%02d", i) }

type crashReport struct {
	Violations []string            `json:"violations"`
	Journal    map[string][]string `json:"journal"` // account -> request IDs in its journal
	Transfers  uint64              `json:"transfers"`
	Credits    int64               `json:"credits"`
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashRecoveryUnderSIGKILL")
	}
	if err := crashChild(dir, os.Getenv(crashModeEnv), os.Getenv(crashSeedEnv)); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func crashChild(dir, mode, seedText string) error {
	store, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	h, err := actor.New(actor.Config{Store: store, Shards: crashShards, SnapshotEveryRecords: -1,
		Actions: actor.ActionConfig{InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}})
	if err != nil {
		return err
	}
	bank, err := registerBank(h, account.Options{})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := h.Start(ctx); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	if mode == "verify" {
		qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := waitQuiet(qctx, h, store, crashShards); err != nil {
			return err
		}
		names := make([]string, crashAccts)
		for i := range names {
			names[i] = crashName(i)
		}
		totals, states, err := readBank(qctx, bank.Ref, names)
		if err != nil {
			return err
		}
		rep := crashReport{Violations: totals.check(states), Journal: map[string][]string{}, Transfers: totals.transfers, Credits: totals.credits}
		for _, n := range names {
			l, err := store.Load(qctx, machine.Entity{Kind: account.KindName, ID: n})
			if err != nil {
				return err
			}
			for _, r := range l.Records {
				if r.RequestID != "" {
					rep.Journal[n] = append(rep.Journal[n], r.RequestID)
				}
			}
		}
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dir+"/report.json", b, 0o644); err != nil {
			return err
		}
		say("REPORT written")
		return h.Stop(ctx)
	}

	// Load mode: fund every account (idempotently), then transfer until killed.
	for i := 0; i < crashAccts; i++ {
		id := fmt.Sprintf("init-%d", i)
		if err := bank.Ref(crashName(i)).Ask(ctx, account.Input{Kind: account.Deposit, AmountCents: crashFunds}, actor.WithRequestID(id)); err != nil {
			return err
		}
		say("ACK %s %s deposit ok", id, crashName(i))
	}
	var wg sync.WaitGroup
	for g := 0; g < 24; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), uint64(len(seedText))))
			for n := 0; ; n++ {
				from, to := r.IntN(crashAccts), r.IntN(crashAccts-1)
				if to >= from {
					to++
				}
				id := fmt.Sprintf("t-%s-%d-%d", seedText, g, n)
				in := account.Input{Kind: account.Transfer, To: crashName(to), AmountCents: 1 + r.Int64N(500), Ref: uint64(n)}
				err := bank.Ref(crashName(from)).Ask(ctx, in, actor.WithRequestID(id))
				switch {
				case err == nil:
					say("ACK %s %s transfer ok", id, crashName(from))
				case errors.Is(err, account.ErrInsufficientFunds) || errors.Is(err, account.ErrTooManyTransfers):
					say("ACK %s %s transfer rejected", id, crashName(from))
				default:
					say("ERR %s %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

func TestCrashRecoveryUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	acked := map[string]string{} // request ID -> account whose journal must hold it
	for round := 0; round < 4; round++ {
		lines := runChild(t, dir, "load", fmt.Sprint(seed+uint64(round)), time.Duration(150+r.IntN(500))*time.Millisecond)
		n := 0
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 5 && f[0] == "ACK" {
				acked[f[1]] = f[2]
				n++
			}
		}
		t.Logf("round %d: killed after %d acknowledged inputs", round, n)
		require.Positive(t, n, "the child acknowledged nothing before it was killed:\n%s", strings.Join(lines, "\n"))
	}
	lines := runChild(t, dir, "verify", "0", 0)
	b, err := os.ReadFile(dir + "/report.json")
	require.NoError(t, err, "no report from the verifying child:\n%s", strings.Join(lines, "\n"))
	var rep crashReport
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Empty(t, rep.Violations)
	inJournal := map[string]bool{}
	for _, ids := range rep.Journal {
		for _, id := range ids {
			inJournal[id] = true
		}
	}
	missing := 0
	for id, acct := range acked {
		if !inJournal[id] {
			missing++
			t.Errorf("acknowledged input %s of %s is not in the journal", id, acct)
		}
	}
	t.Logf("%d acknowledged inputs all durable; %d transfers accepted in all; credits %d", len(acked)-missing, rep.Transfers, rep.Credits)
}

// runChild runs this test binary as a crash child; a positive killAfter
// SIGKILLs it that long after its first acknowledgement.
func runChild(t *testing.T, dir, mode, seed string, killAfter time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode, crashSeedEnv+"="+seed)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	var lines []string
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "ACK") {
				once.Do(func() { close(first) })
			}
		}
	}()
	if killAfter > 0 {
		select {
		case <-first:
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("the child acknowledged nothing within 60s")
		}
		time.Sleep(killAfter) // a random moment of the workload, not a wait for a condition
		require.NoError(t, cmd.Process.Kill())
	}
	<-done
	// Drain whatever is left so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if killAfter == 0 {
		require.NoError(t, err, "verifying child failed:\n%s", strings.Join(lines, "\n"))
	}
	return lines
}
