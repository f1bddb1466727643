package faults

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
)

// bucket is the resolution of throughput and unavailability.
const bucket = 250 * time.Millisecond

// series is acknowledged operations (ok + rejected) per bucket, from t0.
type series struct {
	t0    time.Time
	acked []float64 // per bucket
}

// ackedAt interpolates a timeline's cumulative acknowledged count at t.
func ackedAt(pts []load.TimelinePoint, t int64) float64 {
	if len(pts) == 0 || t <= pts[0].UnixMS {
		return 0
	}
	i := sort.Search(len(pts), func(i int) bool { return pts[i].UnixMS >= t })
	if i == len(pts) {
		p := pts[len(pts)-1]
		return float64(p.OK + p.Rejected)
	}
	a, b := pts[i-1], pts[i]
	va, vb := float64(a.OK+a.Rejected), float64(b.OK+b.Rejected)
	if b.UnixMS == a.UnixMS {
		return vb
	}
	return va + (vb-va)*float64(t-a.UnixMS)/float64(b.UnixMS-a.UnixMS)
}

// toSeries buckets the sum of the timelines from their earliest point to
// their latest.
func toSeries(tls ...[]load.TimelinePoint) series {
	var lo, hi int64 = math.MaxInt64, 0
	for _, pts := range tls {
		if len(pts) > 0 {
			lo = min(lo, pts[0].UnixMS)
			hi = max(hi, pts[len(pts)-1].UnixMS)
		}
	}
	if hi <= lo {
		return series{}
	}
	s := series{t0: time.UnixMilli(lo)}
	step := bucket.Milliseconds()
	for t := lo; t+step <= hi; t += step {
		sum := 0.0
		for _, pts := range tls {
			sum += ackedAt(pts, t+step) - ackedAt(pts, t)
		}
		s.acked = append(s.acked, sum)
	}
	return s
}

func (s series) index(t time.Time) int { return int(t.Sub(s.t0) / bucket) }

// unavailable returns the longest run of buckets in [from, to) whose
// acknowledged count is below a tenth of the mean over the baseline
// before from; -1 when the baseline is empty or zero.
func (s series) unavailable(from, to time.Time, baseline time.Duration) time.Duration {
	i0, i1 := s.index(from), min(s.index(to), len(s.acked))
	b0 := max(0, s.index(from.Add(-baseline)))
	if i0 <= b0 || i0 > len(s.acked) {
		return -1
	}
	mean := 0.0
	for _, v := range s.acked[b0:i0] {
		mean += v
	}
	mean /= float64(i0 - b0)
	if mean <= 0 {
		return -1
	}
	longest, run := 0, 0
	for i := max(i0, 0); i < i1; i++ {
		if s.acked[i] < mean/10 {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return time.Duration(longest) * bucket
}

// computeUnavailability fills every fault's Unavailable from the
// timelines.
func computeUnavailability(res *Result) {
	var tls [][]load.TimelinePoint
	for _, name := range sortedKeys(res.Timelines) {
		tls = append(tls, res.Timelines[name])
	}
	s := toSeries(tls...)
	for i := range res.Faults {
		f := &res.Faults[i]
		end := res.End
		if i+1 < len(res.Faults) {
			end = res.Faults[i+1].Start
		}
		f.Unavailable = s.unavailable(f.Start, end, 5*time.Second)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// WriteReport writes report.md and throughput.svg into dir; command is
// the command line that reproduces the run.
func WriteReport(dir string, res *Result, command string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "throughput.svg"), []byte(throughputSVG(res)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(reportMarkdown(res, command)), 0o644)
}

func reportMarkdown(res *Result, command string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	verdict := "PASSED"
	if res.Lost != 0 || len(res.Violations) != 0 {
		verdict = "FAILED"
	}
	p("# Fault suite run, seed %d: %s\n\n", res.Seed, verdict)
	p("Reproduce: `%s`\n\n", command)
	dur := res.End.Sub(res.Start)
	p("| | |\n|---|---|\n")
	p("| seed | %d |\n", res.Seed)
	p("| started (UTC) | %s |\n", res.Start.UTC().Format(time.RFC3339))
	p("| duration | %s |\n", dur.Round(time.Second))
	p("| cluster | 3 `phasm node` containers (FROM scratch image), mutual TLS, %d shards, PostgreSQL on the host |\n", res.Shards)
	p("| faults injected | %d (%s) |\n", len(res.Faults), kindCounts(res.Faults))
	var acked, failed int64
	for _, name := range sortedKeys(res.Loads) {
		r := res.Loads[name]
		acked += r.OpsOK + r.OpsRejected
		failed += r.OpsFailed
	}
	p("| operations acknowledged | %d |\n", acked)
	p("| operations failed (timeout or error: outcome unknown, checked by bounds) | %d |\n", failed)
	p("| acknowledged operations lost | **%d** |\n", res.Lost)
	p("| violations | **%d** |\n", len(res.Violations))
	p("| journal records audited | %d |\n\n", res.JournalRows)

	p("## Workloads\n\n| workload | ok | rejected | failed | throughput (acked/s) | p50 ms | p99 ms | max ms | check |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range sortedKeys(res.Loads) {
		r := res.Loads[name]
		check := "passed"
		if !r.Check.Passed {
			check = fmt.Sprintf("FAILED (%d)", len(r.Check.Violations))
		}
		p("| %s | %d | %d | %d | %.0f | %.1f | %.1f | %.0f | %s |\n", name, r.OpsOK, r.OpsRejected, r.OpsFailed, r.Throughput,
			r.LatencyMS.P50, r.LatencyMS.P99, r.LatencyMS.Max, check)
	}
	p("\n## Throughput\n\n![acknowledged operations per second, faults shaded](throughput.svg)\n\n")

	p("## Faults\n\nUnavailable: the longest stretch, from the fault until the next one, in which acknowledged operations\n")
	p("(both workloads) fell below a tenth of their rate in the 5 s before the fault (%s resolution).\n", bucket)
	p("Converged: from the heal until every node reported the same view, every member alive and every shard owned by a live node.\n\n")
	p("| # | at (s) | fault | target | hold | unavailable | converged after heal | notes |\n|---|---|---|---|---|---|---|---|\n")
	for _, f := range res.Faults {
		un := "n/a"
		if f.Unavailable >= 0 {
			un = fmt.Sprintf("%.2f s", f.Unavailable.Seconds())
		}
		notes := ""
		if f.ConvergeErr != nil {
			notes = "did not converge: " + f.ConvergeErr.Error()
		}
		if f.Repaired != "" {
			notes += " the harness restarted " + f.Repaired + "."
		}
		if f.Err != nil {
			notes += " harness error: " + f.Err.Error()
		}
		hold := f.Healed.Sub(f.Start)
		p("| %d | %.1f | %s | %s | %.1f s | %s | %.1f s | %s |\n", f.N, f.Start.Sub(res.Start).Seconds(), f.Kind, f.Target, hold.Seconds(), un,
			f.Converged.Seconds(), mdEscape(notes))
	}
	p("\n## Unavailability by kind\n\n| fault | count | mean unavailable | max unavailable | mean converge |\n|---|---|---|---|---|\n")
	for _, k := range Kinds() {
		var n int
		var sum, mx, conv time.Duration
		for _, f := range res.Faults {
			if f.Kind != k {
				continue
			}
			n++
			conv += f.Converged
			if f.Unavailable > 0 {
				sum += f.Unavailable
				mx = max(mx, f.Unavailable)
			}
		}
		if n == 0 {
			continue
		}
		p("| %s | %d | %.2f s | %.2f s | %.1f s |\n", k, n, sum.Seconds()/float64(n), mx.Seconds(), conv.Seconds()/float64(n))
	}
	p("\n## Checks\n\n")
	p("- the load driver's checks (bank: money conserved, no negative balance, nothing held, each transfer applied exactly once on each side, every acknowledged operation within the ledger's bounds; dentist: no double booking, bookings inside the schedule, every confirmed booking paid, no request awaiting payment, requests within the ledger's bounds);\n")
	p("- no entity left in the store's pending index (every in-flight tracked action completed);\n")
	p("- the shard map converged: one view on every node, every member alive, every shard owned by a running node;\n")
	p("- the journals: one writer per shard epoch, epochs never going backwards along an entity's journal, every record written under an ownership epoch, no gap in sequence numbers, no tracked action completed twice.\n\n")
	if len(res.Violations) == 0 {
		p("No violation.\n")
	} else {
		p("### Violations\n\n")
		for _, v := range res.Violations {
			p("- %s\n", mdEscape(v))
		}
	}
	return b.String()
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func kindCounts(fs []Injected) string {
	n := map[Kind]int{}
	for _, f := range fs {
		n[f.Kind]++
	}
	var parts []string
	for _, k := range Kinds() {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// throughputSVG plots acknowledged operations per second (1 s buckets)
// per workload and in all, with each fault's interval shaded.
func throughputSVG(res *Result) string {
	const w, h, left, right, top, bottom = 1100.0, 360.0, 60.0, 20.0, 30.0, 40.0
	names := sortedKeys(res.Timelines)
	per := map[string]series{}
	var all [][]load.TimelinePoint
	for _, n := range names {
		per[n] = toSeries(res.Timelines[n])
		all = append(all, res.Timelines[n])
	}
	total := toSeries(all...)
	perSec := func(s series, ref time.Time) []float64 {
		// 1 s buckets aligned on ref.
		k := int(time.Second / bucket)
		off := s.index(ref)
		var out []float64
		for i := 0; ; i++ {
			sum := 0.0
			any := false
			for j := 0; j < k; j++ {
				idx := i*k + j - off
				if idx >= 0 && idx < len(s.acked) {
					sum += s.acked[idx]
					any = true
				}
			}
			if !any && i*k-off >= len(s.acked) {
				break
			}
			out = append(out, sum)
		}
		return out
	}
	ref := total.t0
	tot := perSec(total, ref)
	if len(tot) == 0 {
		return `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">no timeline</text></svg>`
	}
	ymax := 1.0
	for _, v := range tot {
		ymax = max(ymax, v)
	}
	ymax *= 1.1
	secs := float64(len(tot))
	x := func(s float64) float64 { return left + (w-left-right)*s/secs }
	y := func(v float64) float64 { return top + (h-top-bottom)*(1-v/ymax) }
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", w, h)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	colors := map[Kind]string{KillNode: "#f4a6a6", KillLeader: "#e07b7b", Partition: "#a6c8f4", Pause: "#f4e1a6", RollingRestart: "#c4a6f4", PostgresRestart: "#a6f4c0"}
	for _, f := range res.Faults {
		s0 := f.Start.Sub(ref).Seconds()
		s1 := f.Healed.Sub(ref).Seconds() + f.Converged.Seconds()
		if s1 <= s0 {
			s1 = s0 + 0.5
		}
		p(`<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s" opacity="0.6"><title>#%d %s %s</title></rect>`+"\n",
			x(s0), top, max(x(s1)-x(s0), 1), h-top-bottom, colors[f.Kind], f.N, f.Kind, f.Target)
		p(`<text x="%.1f" y="%.0f" font-size="9">%d</text>`+"\n", x(s0), top-4, f.N)
	}
	// Axes and grid.
	p(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	p(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, top, left, h-bottom)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		p(`<text x="%.0f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-4, y(v)+4, v)
		p(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), w-right, y(v))
	}
	stepS := math.Max(10, math.Ceil(secs/12/10)*10)
	for s := 0.0; s <= secs; s += stepS {
		p(`<text x="%.1f" y="%.0f" text-anchor="middle">%.0f s</text>`+"\n", x(s), h-bottom+15, s)
	}
	line := func(vals []float64, color string, width float64) {
		var pts []string
		for i, v := range vals {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(i)+0.5), y(v)))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`+"\n", color, width, strings.Join(pts, " "))
	}
	line(tot, "black", 1.5)
	lineColors := []string{"#1f77b4", "#d62728", "#2ca02c"}
	for i, n := range names {
		line(perSec(per[n], ref), lineColors[i%len(lineColors)], 1)
	}
	// Legend.
	lx := left + 10
	p(`<text x="%.0f" y="%.0f">acknowledged ops/s: </text>`+"\n", lx, h-8)
	lx += 120
	p(`<text x="%.0f" y="%.0f" fill="black">all</text>`+"\n", lx, h-8)
	lx += 30
	for i, n := range names {
		p(`<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", lx, h-8, lineColors[i%len(lineColors)], n)
		lx += 60
	}
	for _, k := range Kinds() {
		p(`<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", lx, h-17, colors[k], lx+13, h-8, k)
		lx += 20 + 7*float64(len(k))
	}
	p("</svg>\n")
	return b.String()
}
