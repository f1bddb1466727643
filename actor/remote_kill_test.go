package actor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/examples/counter/counter"
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
	h, err := counterNode(store, func() cluster.View { return view }, nil, nil)
	if err != nil {
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
	// Far longer than the remote RequestTimeout: a call that waits it out
	// ends with the timeout's error, not the lost connection's.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, k, err := counterClient(ctx, actor.ClusterConfig{View: func() cluster.View { return view }})
	if err != nil {
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
	node := startChild(t, nil, "pausable-node")
	addr := node.await(t, "ADDR ", nil)
	client := startChild(t, nil, "kill-client", remoteAddrEnv+"="+addr)
	client.await(t, "READY", nil)
	_, err := fmt.Fprintln(node.stdin, "PAUSE")
	require.NoError(t, err)
	node.await(t, "PAUSED", nil)
	_, err = fmt.Fprintln(client.stdin, "GO")
	require.NoError(t, err)
	client.await(t, "SENT", nil)
	require.NoError(t, node.cmd.Process.Kill()) // SIGKILL

	got := map[string]string{}
	var out []string
	for client.out.Scan() {
		out = append(out, client.out.Text())
		if f := strings.SplitN(client.out.Text(), " ", 2); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	require.NoError(t, client.cmd.Wait(), "client failed:\n%s", strings.Join(out, "\n"))
	t.Logf("client:\n%s", strings.Join(out, "\n"))
	require.Equal(t, fmt.Sprint(killRequests), got["LOST"], "every waiting request ends with the lost connection")
	require.True(t, strings.HasPrefix(got["AFTER"], "true "), got["AFTER"])
	require.Equal(t, "0", got["INFLIGHT"])
}
