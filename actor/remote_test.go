package actor_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/memstore"
	"github.com/phasm-go/phasm/shard"
)

// The remote test runs a node and a client in two processes (this test
// binary re-executed: protoactor's remote sets gRPC's global logger, so
// one process may run only one remote). The node owns every shard but one,
// which its view gives to a node "b" that does not exist; the client's
// stale view says the node owns everything.

const (
	remoteRoleEnv = "PHASM_ACTOR_REMOTE_ROLE"
	remoteAddrEnv = "PHASM_ACTOR_REMOTE_NODE"
	remoteShards  = 8
	remoteLimit   = 100
	movedEntity   = "moved-1"
)

// remoteView is the static view: node "a" at addr owns every shard, except
// (when moved is set) the shard of movedEntity, owned by "b".
func remoteView(self shard.NodeID, addr string, moved bool) cluster.View {
	m, err := shard.Initial(remoteShards, []shard.NodeID{"a"})
	if err != nil {
		panic(err)
	}
	members := []cluster.Member{{ID: "a", Addrs: cluster.Addresses{Remote: addr}, Status: shard.Alive}}
	if moved {
		s := shard.Of(machine.Entity{Kind: "counter", ID: movedEntity}, remoteShards)
		m.Shards[s] = shard.Assignment{Owner: "b", Epoch: 2}
		m.Epoch = 2
		members = append(members, cluster.Member{ID: "b", Addrs: cluster.Addresses{Remote: "127.0.0.1:1"}, Status: shard.Alive})
	}
	return cluster.View{Version: 1, Self: self, Leader: "a", Map: m, Members: members}
}

// counterNode starts a host on store serving the counter kind, routing by
// view (and on mutual TLS when tc is set).
func counterNode(store persistence.Store, view func() cluster.View, tc *tls.Config, log *slog.Logger) (*actor.Host, error) {
	h, err := actor.New(actor.Config{Store: store, Shards: remoteShards, Logger: log,
		Cluster: &actor.ClusterConfig{Listen: "127.0.0.1:0", TLS: tc, View: view}})
	if err != nil {
		return nil, err
	}
	kind, err := counter.NewKind(remoteLimit)
	if err != nil {
		return nil, err
	}
	if _, err := actor.Register(h, kind, actor.KindOptions[counter.State, counter.Input, machine.None, machine.None, machine.None]{}); err != nil {
		return nil, err
	}
	return h, h.Start(context.Background())
}

// counterClient starts a client of the counter kind.
func counterClient(ctx context.Context, cfg actor.ClusterConfig) (*actor.Client, *actor.KindRef[counter.State, counter.Input], error) {
	cfg.Listen = "127.0.0.1:0"
	c, err := actor.NewClient(actor.ClientConfig{ClusterConfig: cfg})
	if err != nil {
		return nil, nil, err
	}
	kind, err := counter.NewKind(remoteLimit)
	if err != nil {
		return nil, nil, err
	}
	k, err := actor.RegisterClient(c, kind)
	if err != nil {
		return nil, nil, err
	}
	return c, k, c.Start(ctx)
}

// child is a re-executed test binary in one of TestRemoteChild's roles.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startChild starts a child in role with extra environment; its stderr
// goes to stderr (nil: the test's).
func startChild(t *testing.T, stderr io.Writer, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRemoteChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), remoteRoleEnv+"="+role), env...)
	cmd.Stderr = stderr
	if stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return &child{role: role, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
}

// await reads lines until one starting with prefix, returning its rest;
// the lines before it are kept in seen.
func (c *child) await(t *testing.T, prefix string, seen *[]string) string {
	t.Helper()
	for c.out.Scan() {
		if seen != nil {
			*seen = append(*seen, c.out.Text())
		}
		if rest, ok := strings.CutPrefix(c.out.Text(), prefix); ok {
			return rest
		}
	}
	t.Fatalf("the %s child printed no %q line", c.role, prefix)
	return ""
}

func TestRemoteChild(t *testing.T) {
	role := os.Getenv(remoteRoleEnv)
	if role == "" {
		t.Skip("runs only as a child of TestRemoteNodeAndClient")
	}
	var err error
	switch role {
	case "node":
		err = remoteNode()
	case "client":
		err = remoteClient(os.Getenv(remoteAddrEnv))
	case "pausable-node":
		err = pausableNode()
	case "kill-client":
		err = killClient(os.Getenv(remoteAddrEnv))
	case "seed-client":
		err = seedClient(os.Getenv(remoteAddrEnv))
	case "tls-node":
		err = tlsNode()
	case "tls-client":
		err = tlsClient(os.Getenv(remoteAddrEnv))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// remoteNode serves until its stdin closes.
func remoteNode() error {
	var view atomic.Pointer[cluster.View]
	first := remoteView("a", "", true)
	view.Store(&first)
	h, err := counterNode(memstore.New(), func() cluster.View { return *view.Load() }, nil, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	// The view a seeded client learns names this node at its address.
	withAddr := remoteView("a", h.RemoteAddr(), true)
	withAddr.Version++
	view.Store(&withAddr)
	fmt.Println("ADDR", h.RemoteAddr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	st := h.Stats()
	fmt.Printf("STATS accepted=%d rejected=%d duplicates=%d\n", st.Accepted, st.Rejected, st.Duplicates)
	start := time.Now()
	err = h.Stop(ctx)
	fmt.Fprintln(os.Stderr, "node stopped in", time.Since(start))
	return err
}

func remoteClient(nodeAddr string) error {
	var view atomic.Pointer[cluster.View] // read by the client's view poller
	first := remoteView("client", nodeAddr, false)
	view.Store(&first)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, k, err := counterClient(ctx, actor.ClusterConfig{View: func() cluster.View { return *view.Load() }})
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop(ctx) }()
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	ref := k.Ref("c1")
	for _, add := range []uint64{5, 7} {
		if err := ref.Ask(ctx, counter.Input{Add: add}); err != nil {
			return fmt.Errorf("ask %d: %w", add, err)
		}
	}
	s, err := ref.Query(ctx)
	if err != nil {
		return err
	}
	say("QUERY1 %d %d", s.Value, s.Increments)
	err = ref.Ask(ctx, counter.Input{Add: 1000})
	var me *machine.Error
	say("OVERFLOW %t %t %v", errors.Is(err, counter.ErrOverflow), errors.As(err, &me), err)
	err = ref.Ask(ctx, counter.Input{}) // ErrZero
	say("ZERO %t", errors.Is(err, counter.ErrZero))
	for i := 0; i < 2; i++ {
		if err := ref.Ask(ctx, counter.Input{Add: 3}, actor.WithRequestID("dup-1")); err != nil {
			return fmt.Errorf("dup ask %d: %w", i, err)
		}
	}
	if err := ref.Tell(counter.Input{Add: 1}); err != nil {
		return err
	}
	if s, err = ref.Query(ctx); err != nil {
		return err
	}
	say("QUERY2 %d %d", s.Value, s.Increments)
	// Many entities at once (every shard the node owns).
	errs := make(chan error, 64)
	movedShard := shard.Of(machine.Entity{Kind: "counter", ID: movedEntity}, remoteShards)
	for i, n := 0, 0; n < cap(errs); i++ {
		id := fmt.Sprintf("e-%d", i)
		if shard.Of(machine.Entity{Kind: "counter", ID: id}, remoteShards) == movedShard {
			continue
		}
		n++
		go func() { errs <- k.Ref(id).Ask(ctx, counter.Input{Add: 1}) }()
	}
	ok := 0
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err == nil {
			ok++
		} else {
			say("PARALLEL-ERR %v", err)
		}
	}
	say("PARALLEL %d", ok)
	// The node's view gives movedEntity's shard to "b": it answers MOVED,
	// and Ask retries until its deadline.
	mctx, mcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = k.Ref(movedEntity).Ask(mctx, counter.Input{Add: 1})
	mcancel()
	say("MOVED %t %t %v", errors.Is(err, actor.ErrMoved), errors.Is(err, context.DeadlineExceeded), err)
	// A view whose owner is down fails fast (no wait on a dead peer).
	down := remoteView("client", nodeAddr, false)
	down.Members = []cluster.Member{{ID: "a", Addrs: cluster.Addresses{Remote: "127.0.0.1:1"}, Status: shard.Down}}
	down.Version++
	view.Store(&down)
	dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = ref.Ask(dctx, counter.Input{Add: 1}, actor.WithoutRetry())
	dcancel()
	say("DOWN %t %t %v", errors.Is(err, actor.ErrNoOwner), !errors.Is(err, context.DeadlineExceeded), err)
	say("INFLIGHT %d", c.InFlight())
	start := time.Now()
	err = c.Stop(ctx)
	fmt.Fprintln(os.Stderr, "client stopped in", time.Since(start))
	return err
}

// seedClient learns the view from the node (ClusterConfig.Seeds) instead
// of being given one.
func seedClient(nodeAddr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, k, err := counterClient(ctx, actor.ClusterConfig{Seeds: []string{nodeAddr}})
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop(ctx) }()
	ref := k.Ref("seeded-1")
	if err := ref.Ask(ctx, counter.Input{Add: 2}); err != nil {
		return fmt.Errorf("seeded ask: %w", err)
	}
	s, err := ref.Query(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("SEEDED %d\n", s.Value)
	// The learned view gives movedEntity's shard to "b", which does not
	// answer: the request is retried until the deadline, never sent to "a".
	mctx, mcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = k.Ref(movedEntity).Ask(mctx, counter.Input{Add: 1})
	mcancel()
	fmt.Println("SEEDMOVED", errors.Is(err, context.DeadlineExceeded), err)
	return nil
}

func TestRemoteNodeAndClient(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	node := startChild(t, nil, "node")
	var nodeLines []string
	addr := node.await(t, "ADDR ", &nodeLines)
	require.NotEmpty(t, addr, "the node printed no address:\n%s", strings.Join(nodeLines, "\n"))

	client := exec.Command(os.Args[0], "-test.run=^TestRemoteChild$", "-test.count=1")
	client.Env = append(os.Environ(), remoteRoleEnv+"=client", remoteAddrEnv+"="+addr)
	client.Stderr = os.Stderr
	out, err := client.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.NoError(t, err, "client failed:\n%s", out)
	got := map[string]string{}
	for _, l := range lines {
		if f := strings.SplitN(l, " ", 2); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	t.Logf("client:\n%s", out)
	require.Equal(t, "12 2", got["QUERY1"])
	require.True(t, strings.HasPrefix(got["OVERFLOW"], "true true "), got["OVERFLOW"])
	require.Equal(t, "true", got["ZERO"])
	require.Equal(t, "16 4", got["QUERY2"], "the retried request ID must not be applied twice")
	require.Equal(t, "64", got["PARALLEL"])
	require.True(t, strings.HasPrefix(got["MOVED"], "true true "), got["MOVED"])
	require.True(t, strings.HasPrefix(got["DOWN"], "true true "), got["DOWN"])
	require.Equal(t, "0", got["INFLIGHT"])

	seeded := exec.Command(os.Args[0], "-test.run=^TestRemoteChild$", "-test.count=1")
	seeded.Env = append(os.Environ(), remoteRoleEnv+"=seed-client", remoteAddrEnv+"="+addr)
	seeded.Stderr = os.Stderr
	out, err = seeded.Output()
	require.NoError(t, err, "seeded client failed:\n%s", out)
	t.Logf("seeded client:\n%s", out)
	require.Contains(t, string(out), "SEEDED 2\n", "a client given only the node's address learns the view and is served")
	require.Contains(t, string(out), "SEEDMOVED true ")

	require.NoError(t, node.stdin.Close())
	for node.out.Scan() {
		nodeLines = append(nodeLines, node.out.Text())
	}
	require.NoError(t, node.cmd.Wait(), "node failed:\n%s", strings.Join(nodeLines, "\n"))
	require.Contains(t, nodeLines, "STATS accepted=69 rejected=2 duplicates=1", strings.Join(nodeLines, "\n"))
}
