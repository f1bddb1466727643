package actor_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/persistence/memstore"
)

// Environment of the TLS children: the certificate files to use (the
// client runs without TLS when they are unset).
const (
	tlsCertEnv = "PHASM_ACTOR_TLS_CERT"
	tlsKeyEnv  = "PHASM_ACTOR_TLS_KEY"
	tlsCAEnv   = "PHASM_ACTOR_TLS_CA"
)

func childTLS() (*tls.Config, error) {
	if os.Getenv(tlsCertEnv) == "" {
		return nil, nil
	}
	return cluster.LoadTLS(cluster.CertFiles{Cert: os.Getenv(tlsCertEnv), Key: os.Getenv(tlsKeyEnv), CA: os.Getenv(tlsCAEnv)})
}

// tlsNode serves over mutual TLS until its stdin closes.
func tlsNode() error {
	tc, err := childTLS()
	if err != nil {
		return err
	}
	view := remoteView("a", "", false)
	h, err := counterNode(memstore.New(), func() cluster.View { return view }, tc, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	fmt.Println("ADDR", h.RemoteAddr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
	}
	st := h.Stats()
	fmt.Println("ACCEPTED", st.Accepted)
	return h.Stop(context.Background())
}

// tlsClient asks the node once and prints the outcome.
func tlsClient(nodeAddr string) error {
	tc, err := childTLS()
	if err != nil {
		return err
	}
	view := remoteView("client", nodeAddr, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, k, err := counterClient(ctx, actor.ClusterConfig{TLS: tc, View: func() cluster.View { return view }})
	if err != nil {
		return err
	}
	err = k.Ref("t1").Ask(ctx, counter.Input{Add: 1})
	fmt.Println("ASK", err == nil, err)
	return c.Stop(context.Background())
}

// TestRemoteMutualTLS: a node on mutual TLS serves a client whose
// certificate comes from the cluster's CA, and nothing from a client with
// a certificate from another CA or without TLS (its requests never reach
// an entity).
func TestRemoteMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	dir := t.TempDir()
	now := time.Now()
	ca, err := cluster.WriteDevCA(filepath.Join(dir, "ca"), now)
	require.NoError(t, err)
	nodeFiles, err := ca.WriteNode(filepath.Join(dir, "node"), "a", []string{"127.0.0.1"}, now)
	require.NoError(t, err)
	clientFiles, err := ca.WriteNode(filepath.Join(dir, "client"), "client", []string{"127.0.0.1"}, now)
	require.NoError(t, err)
	other, err := cluster.WriteDevCA(filepath.Join(dir, "other-ca"), now)
	require.NoError(t, err)
	foreignFiles, err := other.WriteNode(filepath.Join(dir, "foreign"), "client", []string{"127.0.0.1"}, now)
	require.NoError(t, err)
	env := func(f *cluster.CertFiles) []string {
		if f == nil {
			return nil
		}
		return []string{tlsCertEnv + "=" + f.Cert, tlsKeyEnv + "=" + f.Key, tlsCAEnv + "=" + f.CA}
	}

	var nodeErr strings.Builder
	node := startChild(t, &nodeErr, "tls-node", env(&nodeFiles)...)
	addr := node.await(t, "ADDR ", nil)

	ask := func(f *cluster.CertFiles) string {
		c := exec.Command(os.Args[0], "-test.run=^TestRemoteChild$", "-test.count=1")
		c.Env = append(append(os.Environ(), remoteRoleEnv+"=tls-client", remoteAddrEnv+"="+addr), env(f)...)
		out, err := c.Output()
		require.NoError(t, err, "client: %s", out)
		for _, l := range strings.Split(string(out), "\n") {
			if r, ok := strings.CutPrefix(l, "ASK "); ok {
				return r
			}
		}
		t.Fatalf("client printed no ASK line:\n%s", out)
		return ""
	}
	require.Equal(t, "true <nil>", ask(&clientFiles), "a certificate from the cluster's CA is served")
	foreign := ask(&foreignFiles)
	require.True(t, strings.HasPrefix(foreign, "false "), "a certificate from another CA: %s", foreign)
	plain := ask(nil)
	require.True(t, strings.HasPrefix(plain, "false "), "no TLS: %s", plain)
	t.Logf("foreign CA: %s\nno TLS: %s", foreign, plain)

	require.NoError(t, node.stdin.Close())
	var rest []string
	for node.out.Scan() {
		rest = append(rest, node.out.Text())
	}
	require.NoError(t, node.cmd.Wait(), "node: %s", nodeErr.String())
	require.Contains(t, rest, "ACCEPTED 1", "only the client with the cluster's certificate reached an entity")
	require.Contains(t, nodeErr.String(), "refused a connection to the remote: TLS handshake failed", "the node logs the refused peers")
}
