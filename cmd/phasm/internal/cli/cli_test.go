package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
	"github.com/phasm-go/phasm/cmd/phasm/internal/cli"
	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/pebblestore"
	"github.com/phasm-go/phasm/shard"
)

type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer is a bytes.Buffer safe for a node goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	code := cli.Main(context.Background(), args, cli.IO{In: strings.NewReader(stdin), Out: &out, Err: &errb},
		func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func readReport(t *testing.T, path string) load.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	for _, f := range []string{"workload", "seed", "duration_s", "ops_ok", "ops_rejected", "ops_failed", "throughput_ops_per_s", "latency_ms", "check"} {
		assert.Contains(t, raw, f)
	}
	assert.Len(t, raw, 9, "exactly the documented fields")
	var rep load.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	return rep
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range [][]string{{"--help"}, {"load", "--help"}, {"node", "--help"}, {"status", "--help"}, {"send", "--help"}, {"replay", "--help"}, {"certs", "--help"}} {
		r := run(t, nil, "", c...)
		assert.Equal(t, cli.ExitOK, r.code, c)
		assert.Contains(t, r.stdout, "Usage:", c)
	}
}

func TestLoadEachWorkloadPassesItsCheck(t *testing.T) {
	for _, w := range load.Workloads() {
		t.Run(w, func(t *testing.T) {
			js := filepath.Join(t.TempDir(), "r.json")
			r := run(t, nil, "", "load", "--workload", w, "--ops", "1500", "--concurrency", "16", "--entities", "50", "--seed", "11", "--json", js)
			require.Equal(t, cli.ExitOK, r.code, r.stdout+r.stderr)
			assert.True(t, strings.HasPrefix(r.stdout, "seed=11 workload="+w), "the seed and parameters come first: %q", r.stdout)
			assert.Contains(t, r.stdout, "check       PASSED")
			rep := readReport(t, js)
			assert.Equal(t, w, rep.Workload)
			assert.Equal(t, uint64(11), rep.Seed)
			assert.True(t, rep.Check.Passed, rep.Check.Violations)
			assert.NotNil(t, rep.Check.Violations)
			assert.Equal(t, int64(1500), rep.OpsOK+rep.OpsRejected+rep.OpsFailed)
			assert.Greater(t, rep.LatencyMS.Max, 0.0)
		})
	}
}

func TestLoadBadFlagsAreUsageErrors(t *testing.T) {
	r := run(t, nil, "", "load", "--workload", "nope", "--concurrency", "-3", "--ops", "-1")
	assert.Equal(t, cli.ExitUsage, r.code)
	for _, want := range []string{`--workload "nope" is unknown`, "--concurrency is -3", "--ops is -1"} {
		assert.Contains(t, r.stderr, want, "every problem listed at once")
	}
	r = run(t, nil, "", "load", "--concurrency", "many")
	assert.Equal(t, cli.ExitUsage, r.code)
	r = run(t, nil, "", "load", "--verify")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--verify needs --data")
	r = run(t, nil, "", "load", "--verify", "--data", filepath.Join(t.TempDir(), "missing"))
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "missing")
	r = run(t, nil, "", "bogus")
	assert.Equal(t, cli.ExitUsage, r.code)
}

func TestLoadAgainstAClusterValidatesAndReportsAnUnreachableCluster(t *testing.T) {
	r := run(t, nil, "", "load", "--target", "10.0.0.1:7000,10.0.0.2:7000")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--target needs --admin-target")
	r = run(t, nil, "", "load", "--target", "no-port", "--admin-target", "127.0.0.1:1")
	assert.Equal(t, cli.ExitUsage, r.code)
	r = run(t, nil, "", "load", "--admin-target", "127.0.0.1:1")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--admin-target applies to a cluster")
	r = run(t, nil, "", "load", "--target", "127.0.0.1:1", "--admin-target", "127.0.0.1:1", "--verify")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--verify --target needs --data")
	r = run(t, nil, "", "load", "--target", "127.0.0.1:1", "--admin-target", "127.0.0.1:1", "--ops", "10")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "no --target answered")
	r = run(t, nil, "", "status", "--target", "127.0.0.1:1", "--timeout", "2s")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "cluster status: no target answered")
}

func TestEnvironmentAndConfigFile(t *testing.T) {
	js := filepath.Join(t.TempDir(), "r.json")
	// The environment sets the workload; the flag wins over it for --ops.
	r := run(t, map[string]string{"PHASM_WORKLOAD": "counter", "PHASM_OPS": "99999", "PHASM_SEED": "5"}, "",
		"load", "--ops", "200", "--entities", "10", "--json", js)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	rep := readReport(t, js)
	assert.Equal(t, "counter", rep.Workload)
	assert.Equal(t, uint64(5), rep.Seed)
	assert.Equal(t, int64(200), rep.OpsOK)

	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"load": {"workload": "counter", "ops": 100, "entities": 5, "seed": 3}, "log-format": "json"}`), 0o644))
	r = run(t, nil, "", "--config", good, "load", "--json", js)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Equal(t, int64(100), readReport(t, js).OpsOK)

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{\n  \"nonsense\": true,\n  \"load\": {\n    \"concurrency\": -5,\n    \"bogus\": 1,\n    \"workload\": \"nope\",\n    \"ops\": \"many\"\n  }\n}\n"), 0o644))
	r = run(t, nil, "", "--config", bad, "load")
	assert.Equal(t, cli.ExitUsage, r.code)
	for _, want := range []string{
		bad + `:2: field "nonsense"`, bad + `:5: field "load.bogus"`, bad + `:7: field "load.ops"`,
		`--workload "nope" is unknown`, "--concurrency is -5",
	} {
		assert.Contains(t, r.stderr, want)
	}
	r = run(t, map[string]string{"PHASM_CONFIG": filepath.Join(dir, "absent.json")}, "", "load")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "absent.json")
	broken := filepath.Join(dir, "broken.json")
	require.NoError(t, os.WriteFile(broken, []byte("{\n\"load\": {,\n}"), 0o644))
	r = run(t, nil, "", "--config", broken, "load")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, broken+":2:")
}

// forgeCredit writes, bypassing the runtime, a journal record that
// credits an account with money no other account paid: a corrupted
// balance that only a correctness check can catch.
func forgeCredit(t *testing.T, dir, id string, cents int64) {
	t.Helper()
	store, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	defer store.Close()
	k, err := account.NewKind()
	require.NoError(t, err)
	e := machine.Entity{Kind: account.KindName, ID: id}
	ctx := context.Background()
	l, err := store.Load(ctx, e)
	require.NoError(t, err)
	d, err := k.Recover(id, l.Snapshot, l.Records)
	require.NoError(t, err)
	var fx machine.Effects[account.Action, machine.None]
	out, err := d.Step(account.In{Time: time.Now(), RequestID: "forged",
		Value: account.Input{Kind: account.Credit, AmountCents: cents, From: "acct-999999", TransferID: 1}}, &fx)
	require.NoError(t, err)
	require.Equal(t, machine.Accepted, out.Status)
	require.NoError(t, store.Append(ctx, persistence.AppendRequest{Entity: e, Shard: uint32(shard.Of(e, load.Shards)),
		ExpectedSeq: l.LastSeq, Records: fx.Records, Pending: d.NumOutstanding() > 0}))
}

func TestVerifyDetectsCorruptedData(t *testing.T) {
	dir := t.TempDir()
	r := run(t, nil, "", "load", "--data", dir, "--ops", "1500", "--entities", "40", "--concurrency", "8", "--seed", "3")
	require.Equal(t, cli.ExitOK, r.code, r.stdout+r.stderr)
	_, err := os.Stat(filepath.Join(dir, "phasm-load-bank.json"))
	require.NoError(t, err, "the client's ledger is kept with the data")

	js := filepath.Join(t.TempDir(), "v.json")
	r = run(t, nil, "", "load", "--verify", "--data", dir, "--json", js) // the ledger gives the entity count
	require.Equal(t, cli.ExitOK, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "entities=40")
	assert.True(t, readReport(t, js).Check.Passed)

	// A second run on the same data accumulates the ledger; another
	// entity count is refused.
	r = run(t, nil, "", "load", "--data", dir, "--ops", "500", "--concurrency", "8", "--seed", "4")
	require.Equal(t, cli.ExitOK, r.code, r.stdout+r.stderr)
	r = run(t, nil, "", "load", "--data", dir, "--ops", "10", "--entities", "41")
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "use the same --entities")
	// A data directory without a ledger of the workload cannot be verified.
	r = run(t, nil, "", "load", "--verify", "--workload", "counter", "--data", dir)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "no load ledger")

	// The replay of one account goes through every record.
	r = run(t, nil, "", "replay", "account", load.AccountID(1), "--data", dir)
	require.Equal(t, cli.ExitOK, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "replayed ")
	assert.Contains(t, r.stdout, "every outcome and digest as recorded")

	forgeCredit(t, dir, load.AccountID(7), 12345)
	r = run(t, nil, "", "load", "--verify", "--data", dir, "--entities", "40", "--json", js)
	assert.Equal(t, cli.ExitCheckFailed, r.code, r.stdout+r.stderr)
	rep := readReport(t, js)
	assert.False(t, rep.Check.Passed)
	all := strings.Join(rep.Check.Violations, "\n")
	assert.Contains(t, all, "money not conserved")
	assert.Contains(t, all, load.AccountID(7)+": credited cents is")
	assert.Contains(t, r.stdout, "check       FAILED")
}

func TestReplayReportsNondeterminism(t *testing.T) {
	dir := t.TempDir()
	store, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	k, err := counter.NewKind(0)
	require.NoError(t, err)
	d, err := k.NewDriver("c")
	require.NoError(t, err)
	var fx machine.Effects[machine.None, machine.None]
	for i := 1; i <= 3; i++ {
		_, err := d.Step(counter.In{Time: time.Unix(int64(i), 0), Value: counter.Input{Add: uint64(i)}}, &fx)
		require.NoError(t, err)
	}
	fx.Records[1].Digest ^= 0xff // what a nondeterministic machine would leave behind
	e := machine.Entity{Kind: "counter", ID: "c"}
	require.NoError(t, store.Append(context.Background(), persistence.AppendRequest{Entity: e, Shard: uint32(shard.Of(e, load.Shards)), Records: fx.Records}))
	require.NoError(t, store.Close())

	r := run(t, nil, "", "replay", "counter", "c", "--data", dir)
	assert.Equal(t, cli.ExitCheckFailed, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stderr, "nondeterminism in counter/c at seq 2: digest differs")
	assert.Contains(t, r.stdout, "nondeterminism: digest")

	r = run(t, nil, "", "replay", "counter", "c", "--data", dir, "--json")
	assert.Equal(t, cli.ExitCheckFailed, r.code)
	assert.Contains(t, r.stdout, `"error"`)

	r = run(t, nil, "", "replay", "nope", "c", "--data", filepath.Join(dir, "missing"))
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, `unknown kind "nope"`)
	assert.Contains(t, r.stderr, "no such directory")
	r = run(t, nil, "", "replay", "counter", "c")
	assert.Equal(t, cli.ExitUsage, r.code)
	r = run(t, nil, "", "replay", "counter", "other", "--data", dir)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "no journal")
}

// startNode runs `phasm node` in-process and returns its admin address
// and a function that stops it (SIGTERM's path: the context ends) and
// returns its exit code.
func startNode(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	app := cli.New(cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb}, func(string) string { return "" })
	addrs := make(chan string, 1)
	app.NodeReady = func(addr string) { addrs <- addr }
	done := make(chan int, 1)
	go func() { done <- app.Run(ctx, append([]string{"node", "--admin", "127.0.0.1:0"}, args...)) }()
	select {
	case addr := <-addrs:
		stopped := false
		stop := func() int {
			if stopped {
				return 0
			}
			stopped = true
			cancel()
			select {
			case code := <-done:
				return code
			case <-time.After(60 * time.Second):
				t.Fatal("the node did not stop")
				return -1
			}
		}
		t.Cleanup(func() { stop() })
		return addr, stop
	case code := <-done:
		cancel()
		t.Fatalf("node exited with %d: %s", code, errb.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("the node did not start")
	}
	return "", nil
}

func TestNodeAdminAPIAndClients(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startNode(t, "--data", dir, "--admin-token", "s3cret", "--node-id", "n1")
	env := map[string]string{"PHASM_ADMIN": addr, "PHASM_ADMIN_TOKEN": "s3cret"}

	r := run(t, env, "", "send", "account", "alice", `{"kind":"deposit","amount_cents":1000}`)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.JSONEq(t, `{"accepted":true}`, r.stdout)
	r = run(t, env, "", "send", "account", "alice", `{"kind":"transfer","amount_cents":400,"to":"bob","ref":1}`, "--request-id", "t-1")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = run(t, env, `{"kind":"withdraw","amount_cents":5000}`, "send", "account", "alice", "-")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.JSONEq(t, `{"accepted":false,"error":{"code":"bank.insufficient_funds","message":"bank: insufficient funds"}}`, r.stdout)
	r = run(t, env, "", "send", "clinic", "c1", `{"kind":"exact","ref":1,"type":"checkup","day":"Mon","start":"09:30"}`)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = run(t, env, "", "send", "counter", "visits", `{"add":3}`)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)

	// Bad inputs.
	r = run(t, env, "", "send", "account", "alice", `{"kind":`)
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "not a JSON object")
	r = run(t, env, "", "send", "nope", "x", `{}`)
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, `unknown kind "nope"`)
	r = run(t, env, "", "send", "account", "alice", `{"kind":"deposit","amount_cents":1,"colour":"red"}`)
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "colour")
	r = run(t, map[string]string{"PHASM_ADMIN": addr, "PHASM_ADMIN_TOKEN": "wrong"}, "", "send", "counter", "visits", `{"add":3}`)
	assert.Equal(t, cli.ExitFailure, r.code)
	assert.Contains(t, r.stderr, "401")

	// status, as a table and as JSON.
	r = run(t, env, "", "status")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "n1")
	assert.Contains(t, r.stdout, "account, clinic, counter")
	r = run(t, env, "", "status", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var st admin.Status
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.Equal(t, "n1", st.NodeID)
	assert.GreaterOrEqual(t, st.Stats.Accepted, uint64(4))

	// The HTTP API directly: the token, the state, the journal.
	get := func(path, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	code, _ := get("/healthz", "")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get("/readyz", "")
	assert.Equal(t, http.StatusOK, code)
	code, body := get("/metrics", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "phasm_inputs_total")
	assert.Contains(t, body, "phasm_persist_seconds_bucket")
	assert.Contains(t, body, "go_goroutines")
	code, _ = get("/v1/status", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = get("/v1/entities/account/alice", "bad")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body = get("/v1/entities/account/alice", "s3cret")
	require.Equal(t, http.StatusOK, code)
	var state struct {
		State account.State `json:"state"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &state))
	assert.Equal(t, int64(600), state.State.BalanceCents+state.State.HeldCents)
	code, body = get("/v1/entities/account/bob/journal", "s3cret")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"kind": "credit"`)
	code, _ = get("/v1/entities/nope/x", "s3cret")
	assert.Equal(t, http.StatusNotFound, code)

	// SIGTERM's path: a graceful stop, then the data is there for replay.
	require.Equal(t, cli.ExitOK, stop())
	r = run(t, nil, "", "replay", "account", "alice", "--data", dir)
	require.Equal(t, cli.ExitOK, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, `"kind":"deposit","amount_cents":1000`)
	assert.Contains(t, r.stdout, "rejected (bank.insufficient_funds)")
}

func TestNodeConfigValidation(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	require.NoError(t, os.WriteFile(cert, []byte("not a certificate"), 0o600))
	r := run(t, nil, "", "node", "--admin", "nohost", "--join", "bad", "--bootstrap", "--tls-cert", cert, "--shards", "0")
	assert.Equal(t, cli.ExitUsage, r.code)
	for _, want := range []string{"a store is required", "--admin", "--join", "exclusive", "--tls-cert, --tls-key and --tls-ca go together", "--shards is 0"} {
		assert.Contains(t, r.stderr, want)
	}
	r = run(t, nil, "", "node", "--data", dir, "--check-config")
	assert.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "configuration ok")
	r = run(t, nil, "", "node", "--postgres", "postgres://x@127.0.0.1:1/x", "--raft", "127.0.0.1:7001", "--join", "127.0.0.1:7002")
	assert.Equal(t, cli.ExitUsage, r.code)
	for _, want := range []string{"needs --listen", "needs --cluster-rpc", "needs --raft-dir"} {
		assert.Contains(t, r.stderr, want)
	}
	r = run(t, nil, "", "node", "--data", dir, "--raft", "127.0.0.1:7001", "--listen", "127.0.0.1:7002", "--cluster-rpc", "127.0.0.1:7003",
		"--node-id", "a", "--peers", "a@127.0.0.1:7001@127.0.0.1:7003,b@127.0.0.1:7011@127.0.0.1:7013", "--check-config")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "multi-node cluster needs a shared store")
}

// TestCertsIssuesLoadableFiles: `phasm certs` writes a CA and node files
// that load as the mutual TLS a node runs with, reuses the CA on a second
// call, and never overwrites a node's files.
func TestCertsIssuesLoadableFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	r := run(t, nil, "", "certs", "--dir", dir, "--node", "n1,n2")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "created the CA")
	r = run(t, nil, "", "certs", "--dir", dir, "--node", "n3", "--host", "node3.internal")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "using the CA")
	for _, n := range []string{"n1", "n2", "n3"} {
		_, err := cluster.LoadTLS(cluster.CertFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, n+".pem"), Key: filepath.Join(dir, n+"-key.pem")})
		assert.NoError(t, err, n)
	}
	before, err := os.ReadFile(filepath.Join(dir, "n1.pem"))
	require.NoError(t, err)
	r = run(t, nil, "", "certs", "--dir", dir, "--node", "n1")
	assert.Equal(t, cli.ExitFailure, r.code)
	after, err := os.ReadFile(filepath.Join(dir, "n1.pem"))
	require.NoError(t, err)
	assert.Equal(t, before, after, "n1's certificate was overwritten")
	r = run(t, nil, "", "certs", "--node", "../x")
	assert.Equal(t, cli.ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--dir is required")
	assert.Contains(t, r.stderr, "not usable as a file name")
}
