package actor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence/memstore"
)

// killRequests is how many requests the client has waiting on the node
// when the node is killed.
const killRequests = 8

// pausableNode serves like remoteNode; the line PAUSE on stdin stalls its
// store, so requests it receives afterwards wait (as on a stuck disk)
// until the process dies.
func pausableNode() error {
	view := remoteView("a", "", false)
	store := memstore.New()
	h, err := actor.New(actor.Config{Store: store, Shards: remoteShards,
		Cluster: &actor.ClusterConfig{Listen: "127.0.0.1:0", View: func() cluster.View { return view }}})
	if err != nil {
		return err
	}
	kind, err := counter.NewKind(remoteLimit)
	if err != nil {
		return err
	}
	if _, err := actor.Register(h, kind, actor.KindOptions[counter.State, counter.Input, machine.None, machine.None, machine.None]{}); err != nil {
		return err
	}
	if err := h.Start(context.Background()); err != nil {
		return err
	}
	fmt.Println("ADDR", h.RemoteAddr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "PAUSE" {
			store.Pause()
			fmt.Println("PAUSED")
		}
	}
	select {} // killed by the test
}

// killClient asks once (the connection is up), then on GO sends
// killRequests asks that the paused node will never answer, prints SENT,
// and reports how each ended once the node is killed.
func killClient(nodeAddr string) error {
	view := remoteView("client", nodeAddr, false)
	c, err := actor.NewClient(actor.ClientConfig{ClusterConfig: actor.ClusterConfig{Listen: "127.0.0.1:0", View: func() cluster.View { return view }}})
	if err != nil {
		return err
	}
	kind, err := counter.NewKind(remoteLimit)
	if err != nil {
		return err
	}
	k, err := actor.RegisterClient(c, kind)
	if err != nil {
		return err
	}
	// Far longer than the remote RequestTimeout: a call that waits it out
	// ends with the timeout's error, not the lost connection's.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return err
	}
	if err := k.Ref("warm").Ask(ctx, counter.Input{Add: 1}); err != nil {
		return fmt.Errorf("first ask: %w", err)
	}
	fmt.Println("READY")
	sc := bufio.NewScanner(os.Stdin)
	if !sc.Scan() || sc.Text() != "GO" {
		return errors.New("no GO on stdin")
	}
	var wg sync.WaitGroup
	errs := make([]error, killRequests)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = k.Ref(fmt.Sprintf("k-%d", i)).Ask(ctx, counter.Input{Add: 1}, actor.WithoutRetry())
		}()
	}
	time.Sleep(300 * time.Millisecond) // let them reach the node (if not, they wait in its send queue)
	fmt.Println("SENT")
	start := time.Now()
	wg.Wait()
	lost := 0
	for _, err := range errs {
		if errors.Is(err, actor.ErrUnavailable) && strings.Contains(err.Error(), "lost the connection") {
			lost++
		} else {
			fmt.Println("OTHER", err)
		}
	}
	fmt.Fprintln(os.Stderr, "waiting requests ended", time.Since(start), "after SENT")
	fmt.Println("LOST", lost)
	// Until the peer answers again, a new request is refused at once
	// (or, once per PeerProbeInterval, sent as a short probe).
	err = k.Ref("after").Ask(ctx, counter.Input{Add: 1}, actor.WithoutRetry())
	fmt.Println("AFTER", errors.Is(err, actor.ErrUnavailable), err)
	fmt.Println("INFLIGHT", c.InFlight())
	return c.Stop(ctx)
}

// TestRemoteCallsEndWhenTheOwnerIsKilled: requests waiting on a node that
// is killed with SIGKILL end with a retryable ErrUnavailable as soon as the
// connection drops, instead of waiting out the remote RequestTimeout (10
// s by default) for replies that cannot come; the next request to the
// dead peer is refused without waiting.
func TestRemoteCallsEndWhenTheOwnerIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	node := exec.Command(os.Args[0], "-test.run=^TestRemoteChild$", "-test.count=1")
	node.Env = append(os.Environ(), remoteRoleEnv+"=pausable-node")
	node.Stderr = os.Stderr
	nodeIn, err := node.StdinPipe()
	require.NoError(t, err)
	nodeOut, err := node.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, node.Start())
	defer func() { _ = node.Process.Kill(); _ = node.Wait() }()
	nodeLines := bufio.NewScanner(nodeOut)
	var addr string
	for nodeLines.Scan() {
		if a, ok := strings.CutPrefix(nodeLines.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	require.NotEmpty(t, addr, "the node printed no address")

	client := exec.Command(os.Args[0], "-test.run=^TestRemoteChild$", "-test.count=1")
	client.Env = append(os.Environ(), remoteRoleEnv+"=kill-client", remoteAddrEnv+"="+addr)
	client.Stderr = os.Stderr
	clientIn, err := client.StdinPipe()
	require.NoError(t, err)
	clientOut, err := client.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, client.Start())
	defer func() { _ = client.Process.Kill() }()
	lines := bufio.NewScanner(clientOut)
	expect := func(sc *bufio.Scanner, want string) {
		t.Helper()
		var seen []string
		for sc.Scan() {
			if sc.Text() == want {
				return
			}
			seen = append(seen, sc.Text())
		}
		t.Fatalf("no %q line; saw %q", want, seen)
	}
	expect(lines, "READY")
	_, err = fmt.Fprintln(nodeIn, "PAUSE")
	require.NoError(t, err)
	expect(nodeLines, "PAUSED")
	_, err = fmt.Fprintln(clientIn, "GO")
	require.NoError(t, err)
	expect(lines, "SENT")
	require.NoError(t, node.Process.Kill()) // SIGKILL

	got := map[string]string{}
	var out []string
	for lines.Scan() {
		out = append(out, lines.Text())
		if f := strings.SplitN(lines.Text(), " ", 2); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	require.NoError(t, client.Wait(), "client failed:\n%s", strings.Join(out, "\n"))
	t.Logf("client:\n%s", strings.Join(out, "\n"))
	require.Equal(t, fmt.Sprint(killRequests), got["LOST"], "every waiting request ends with the lost connection")
	require.True(t, strings.HasPrefix(got["AFTER"], "true "), got["AFTER"])
	require.Equal(t, "0", got["INFLIGHT"])
}
