package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the browser for the dashboard test: the one `make
// test` provides (scripts/services.d/chromium.sh exports
// PHASM_TEST_CHROMIUM), or chromium on PATH. Without one the test skips,
// or fails when PHASM_REQUIRE_SERVICES=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PHASM_TEST_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("PHASM_REQUIRE_SERVICES") == "1" {
		t.Fatal("no chromium (PHASM_TEST_CHROMIUM is not set and chromium is not on PATH) but PHASM_REQUIRE_SERVICES=1: run `make test`, which installs Debian's chromium")
	}
	t.Skip("no chromium: run `make test`, which installs Debian's chromium and runs the dashboard test in it")
	return ""
}

// scrapeMetrics reads a node's /metrics (Prometheus text format, no
// token needed) into "name{labels}" -> value.
func scrapeMetrics(ctx context.Context, t *testing.T, addr string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: HTTP %d", addr, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s: bad sample line %q", addr, line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitScrape scrapes every proc's /metrics until ok holds for the
// scrapes (bounded): each node reports the replicated state as it has
// applied it, and followers apply a moment after the leader.
func waitScrape(ctx context.Context, t *testing.T, what string, procs []*clusterProc, ok func([]map[string]float64) bool) []map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ms := make([]map[string]float64, len(procs))
		for i, p := range procs {
			ms[i] = scrapeMetrics(ctx, t, p.admin.Addr)
		}
		if ok(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the metrics to show %s; last scrapes: %v", what, ms)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageWait evaluates the JavaScript expression ok (a boolean) in the page
// until it holds, bounded; on timeout it fails with the page's text.
func pageWait(ctx context.Context, t *testing.T, what, ok string, tick func()) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](ok))
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("timed out waiting for the page to show %s (last error %v); the page reads:\n%s", what, err, text)
		}
		if tick != nil {
			tick()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pageString(ctx context.Context, t *testing.T, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

// The page's members and the shard grid's owners, as the dashboard shows them.
const (
	jsMembers = `Array.from(document.querySelectorAll('#members tr')).map(r => r.dataset.member).join(',')`
	jsOwners  = `Array.from(document.querySelectorAll('#grid .cell')).map(c => c.dataset.owner || '-').join(',')`
)

// TestDashboardInHeadlessChromium runs three `phasm node` processes on
// PostgreSQL with an admin token and opens n1's dashboard in headless
// Chromium: the page asks for the token, then shows the three members and
// a shard grid that matches the cluster's shard map, and its throughput
// chart moves with traffic. n3 then leaves the cluster: the grid follows
// the shards to n1 and n2. The nodes' Raft and membership metrics are
// scraped before and after and must move the same way.
func TestDashboardInHeadlessChromium(t *testing.T) {
	const shards = 16
	const token = "dashboard-test-token"
	chrome := chromiumPath(t)
	ctx, bin, dsn := clusterTestSetup(t)
	procs := startClusterNodes(ctx, t, bin, dsn, 3, shards, "--admin-token", token)
	for _, p := range procs {
		p.admin.Token = token
	}
	waitOwned(ctx, t, procs[0], 3, shards)

	// The metrics: one leader with a term, three alive members, every
	// shard owned, as every node sees it.
	ms := waitScrape(ctx, t, "one leader, three alive members and every shard owned", procs, func(ms []map[string]float64) bool {
		leaders, owned := 0.0, 0.0
		for _, m := range ms {
			leaders += m["phasm_raft_is_leader"]
			owned += m["phasm_cluster_shards_owned"]
			if m["phasm_raft_term"] < 1 || m[`phasm_cluster_members{status="alive"}`] != 3 || m["phasm_cluster_shards"] != shards ||
				m["phasm_raft_commit_index"] < 1 || m["phasm_cluster_map_epoch"] < 1 {
				return false
			}
		}
		return leaders == 1 && owned == shards
	})
	before := ms[0]

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.WindowSize(1200, 1000), chromedp.Flag("no-proxy-server", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	dashboard := "http://" + procs[0].admin.Addr + "/dashboard/"

	// Without the token the page asks for it; entering it in the form
	// brings the data.
	if err := chromedp.Do(browser, chromedp.Navigate(dashboard)); err != nil {
		t.Fatalf("opening %s: %v", dashboard, err)
	}
	pageWait(browser, t, "the token prompt", `document.body.dataset.auth === 'required' && !document.getElementById('auth').hidden`, nil)
	if err := chromedp.Do(browser, chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS("#auth-form button"))); err != nil {
		t.Fatal(err)
	}
	pageWait(browser, t, "the three members after the token was entered",
		`document.body.dataset.auth === 'ok' && document.body.dataset.members === '3'`, nil)

	// A second tab given the token in the address: it keeps it in
	// sessionStorage and takes it out of the address bar.
	tab, cancelTab := chromedp.NewContext(browser)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate(dashboard+"#token="+token)); err != nil {
		t.Fatal(err)
	}
	pageWait(tab, t, "the three members n1, n2, n3", jsMembers+` === 'n1,n2,n3'`, nil)
	if h := pageString(tab, t, `location.hash`); h != "" {
		t.Errorf("the token stays in the address bar: hash %q", h)
	}

	// The grid is the cluster's shard map.
	gridOf := func() string {
		v, err := procs[0].admin.View(ctx)
		if err != nil {
			t.Fatal(err)
		}
		owners := make([]string, len(v.Map.Shards))
		for i, a := range v.Map.Shards {
			owners[i] = string(a.Owner)
		}
		return strings.Join(owners, ",")
	}
	want := gridOf()
	pageWait(tab, t, "the shard map "+want, jsOwners+` === `+strconv.Quote(want), nil)
	for _, id := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(","+want+",", ","+id+",") {
			t.Fatalf("shard map %s: %s owns nothing", want, id)
		}
	}
	gridBefore := pageString(tab, t, jsOwners)
	t.Logf("the dashboard shows members n1, n2, n3 and the grid %s", gridBefore)

	// Throughput: inputs sent through n1 to many entities; the ones n1
	// owns show on its chart.
	sent := 0
	pageWait(tab, t, "throughput above zero", `Number(document.body.dataset.throughput) > 0`, func() {
		for i := 0; i < 8; i++ {
			sent++
			if _, err := procs[0].admin.Send(ctx, "counter", fmt.Sprint("dash-", sent%64), []byte(`{"add":1}`), ""); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
	})

	// n3 leaves gracefully: its shards move to n1 and n2, and the grid
	// follows.
	n3 := procs[2]
	if err := n3.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-n3.exited
	if err := n3.cmd.Wait(); err != nil {
		t.Fatalf("n3 exit after SIGTERM: %v", err)
	}
	waitOwned(ctx, t, procs[0], 2, shards)
	want = gridOf()
	pageWait(tab, t, "the shard map without n3: "+want, jsOwners+` === `+strconv.Quote(want)+` && !`+jsOwners+`.split(',').includes('n3')`, nil)
	gridAfter := pageString(tab, t, jsOwners)
	if gridAfter == gridBefore {
		t.Fatalf("the grid did not change after n3 left: %s", gridAfter)
	}
	t.Logf("after n3 left, the dashboard's grid is %s", gridAfter)

	ms = waitScrape(ctx, t, "n3 gone: two alive members owning every shard", procs[:2], func(ms []map[string]float64) bool {
		owned := 0.0
		for _, m := range ms {
			owned += m["phasm_cluster_shards_owned"]
			if m[`phasm_cluster_members{status="alive"}`] != 2 || m[`phasm_cluster_member_shards{member_id="n3"}`] != 0 {
				return false
			}
		}
		return owned == shards
	})
	after := ms[0]
	if after["phasm_raft_commit_index"] <= before["phasm_raft_commit_index"] ||
		after["phasm_cluster_map_epoch"] <= before["phasm_cluster_map_epoch"] ||
		after["phasm_cluster_shards_owned"] <= before["phasm_cluster_shards_owned"] {
		t.Errorf("n1's metrics after n3 left: commit index %g (was %g), map epoch %g (was %g), shards owned %g (was %g): each should grow",
			after["phasm_raft_commit_index"], before["phasm_raft_commit_index"], after["phasm_cluster_map_epoch"], before["phasm_cluster_map_epoch"],
			after["phasm_cluster_shards_owned"], before["phasm_cluster_shards_owned"])
	}
	if after[`phasm_inputs_total{kind="counter",outcome="accepted"}`] <= before[`phasm_inputs_total{kind="counter",outcome="accepted"}`] {
		t.Errorf("n1's accepted counter inputs did not grow: %g -> %g", before[`phasm_inputs_total{kind="counter",outcome="accepted"}`],
			after[`phasm_inputs_total{kind="counter",outcome="accepted"}`])
	}
}
