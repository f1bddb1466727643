package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
)

func TestValidateListsEveryProblem(t *testing.T) {
	c := load.Config{Workload: "x", Entities: -1, Concurrency: 5000, Duration: time.Second, Ops: 5, Targets: []string{"nope"}, Verify: true, PaymentDeclineRatio: 3,
		IDPrefix: "a b/"}
	err := c.Validate()
	require.ErrorIs(t, err, load.ErrInvalidConfig)
	for _, want := range []string{"--workload", "--entities", "--concurrency", "exclusive", "--target", "--verify runs no operations", "--payment-decline-ratio", "--id-prefix"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestProgressOnATerminalRedrawsOneLine(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		var out bytes.Buffer
		rep, err := load.Run(context.Background(), load.Config{Workload: load.Counter, Ops: 300, Entities: 10, Concurrency: 4, Seed: 9},
			load.Env{Out: &out, Terminal: terminal, ProgressEvery: time.Millisecond})
		require.NoError(t, err)
		assert.True(t, rep.Check.Passed)
		assert.Equal(t, terminal, strings.Contains(out.String(), "\r"), out.String())
		assert.True(t, strings.HasPrefix(out.String(), "seed=9 "), out.String())
	}
}

func TestTargetsNeedAdminTargetsAndAnAnsweringCluster(t *testing.T) {
	var out bytes.Buffer
	_, err := load.Run(context.Background(), load.Config{Workload: load.Bank, Targets: []string{"127.0.0.1:1"}}, load.Env{Out: &out})
	require.ErrorIs(t, err, load.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "--admin-target")
	_, err = load.Run(context.Background(), load.Config{Workload: load.Bank, Ops: 10, Targets: []string{"127.0.0.1:1"}, AdminTargets: []string{"127.0.0.1:1"}},
		load.Env{Out: &out})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no --target answered")
}

func TestClusterOnlyFlagsDoNotDisturbTheEmbeddedNode(t *testing.T) {
	// --listen, --admin-token and --tls-* may come from a shared
	// environment or config file; without --target they are ignored.
	var out bytes.Buffer
	rep, err := load.Run(context.Background(), load.Config{Workload: load.Counter, Ops: 100, Entities: 5, Concurrency: 2, Seed: 1,
		Listen: "bad", AdminToken: "x", TLSCA: "ca.pem"}, load.Env{Out: &out})
	require.NoError(t, err)
	assert.True(t, rep.Check.Passed)
	assert.Contains(t, out.String(), "target=embedded node")
}

func TestTimelineCountsEveryOperation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timeline.jsonl")
	var out bytes.Buffer
	rep, err := load.Run(context.Background(), load.Config{Workload: load.Counter, Duration: 600 * time.Millisecond, Entities: 10, Concurrency: 4, Seed: 3,
		TimelinePath: path}, load.Env{Out: &out})
	require.NoError(t, err)
	require.True(t, rep.Check.Passed)
	assert.Zero(t, rep.Check.Lost)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.GreaterOrEqual(t, len(lines), 3, "a point at the start, every 250ms and at the end: %s", b)
	var prev load.TimelinePoint
	for i, l := range lines {
		var p load.TimelinePoint
		require.NoError(t, json.Unmarshal([]byte(l), &p), l)
		if i > 0 {
			assert.GreaterOrEqual(t, p.UnixMS, prev.UnixMS)
			assert.GreaterOrEqual(t, p.OK, prev.OK)
		}
		prev = p
	}
	assert.Equal(t, rep.OpsOK, prev.OK, "the last point counts every operation")
	assert.Equal(t, rep.OpsRejected, prev.Rejected)
	assert.Equal(t, rep.OpsFailed, prev.Failed)
}

// The ID prefix of a run with --data is kept in its ledger: later runs and
// --verify use the same entities, and a different --id-prefix is refused.
func TestIDPrefixIsKeptInTheLedger(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	cfg := load.Config{Workload: load.Bank, Ops: 200, Entities: 20, Concurrency: 4, Seed: 5, DataDir: dir, IDPrefix: "t1-"}
	rep, err := load.Run(context.Background(), cfg, load.Env{Out: &out})
	require.NoError(t, err)
	require.True(t, rep.Check.Passed)
	assert.Contains(t, out.String(), "id-prefix=t1-")

	cfg.IDPrefix = ""
	out.Reset()
	rep, err = load.Run(context.Background(), cfg, load.Env{Out: &out})
	require.NoError(t, err, out.String())
	require.True(t, rep.Check.Passed)
	assert.Contains(t, out.String(), "id-prefix=t1-", "taken from the ledger")

	cfg.IDPrefix = "t2-"
	_, err = load.Run(context.Background(), cfg, load.Env{Out: &out})
	require.ErrorIs(t, err, load.ErrInvalidConfig)
	assert.Contains(t, err.Error(), `prefix "t1-"`)
}
