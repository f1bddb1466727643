//go:build faults

package faults

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFaults runs the fault suite (see the package documentation). It is
// configured by the environment, as `make faults-short` and `make
// faults-long` set it:
//
//	PHASM_FAULTS_SEED      the seed (default: drawn from the clock, printed)
//	PHASM_FAULTS_MIN       faults planned (default 10)
//	PHASM_FAULTS_DURATION  keep injecting until this long after the first fault (default none)
//	PHASM_FAULTS_REPORT    the report's directory (default: phasm-faults-report-SEED in the temporary directory)
//	PHASM_FAULTS_COMMAND   the command line the report names to reproduce the run
//	PHASM_FAULTS_KEEP=1    keep the work directory (node logs, load outputs) after a pass too
//
// It fails on any acknowledged operation lost, any violation, fewer than
// 10 faults or 4 kinds, or a harness failure; a missing docker fails it
// too (it is never skipped: the build tag is the opt-in).
func TestFaults(t *testing.T) {
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	if s := os.Getenv("PHASM_FAULTS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PHASM_FAULTS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	minFaults := 10
	if s := os.Getenv("PHASM_FAULTS_MIN"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("PHASM_FAULTS_MIN=%q: %v", s, err)
		}
		minFaults = v
	}
	var minDur time.Duration
	if s := os.Getenv("PHASM_FAULTS_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PHASM_FAULTS_DURATION=%q: %v", s, err)
		}
		minDur = v
	}
	work, err := os.MkdirTemp("", "phasm-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PHASM_FAULTS_KEEP") == "1" {
			t.Logf("kept the run's data, node logs and load outputs in %s", work)
			return
		}
		os.RemoveAll(work)
	})
	reportDir := os.Getenv("PHASM_FAULTS_REPORT")
	if reportDir == "" {
		// Kept whatever the outcome (the work directory is removed on
		// success).
		reportDir = filepath.Join(os.TempDir(), fmt.Sprintf("phasm-faults-report-%d", seed))
	}
	repo, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (PHASM_FAULTS_SEED=%d reproduces the schedule)", seed, seed)
	// SIGINT or SIGTERM ends the run with its teardown (containers,
	// network, image, PostgreSQL).
	sctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sctx, 3*time.Hour)
	defer cancel()
	if err := os.MkdirAll(reportDir, 0o755); err != nil {
		t.Fatal(err)
	}
	runLog, err := os.Create(filepath.Join(reportDir, "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer runLog.Close()
	res, err := Run(ctx, Config{Seed: seed, MinFaults: minFaults, MinDuration: minDur, Repo: repo, WorkDir: work, ReportDir: reportDir,
		Log: io.MultiWriter(os.Stderr, runLog)})
	if res != nil && !res.End.IsZero() {
		cmd := fmt.Sprintf("PHASM_FAULTS_SEED=%d PHASM_FAULTS_MIN=%d PHASM_FAULTS_DURATION=%s go test -tags faults -run TestFaults ./cmd/phasm/internal/faults/",
			seed, minFaults, minDur)
		if c := os.Getenv("PHASM_FAULTS_COMMAND"); c != "" {
			cmd = strings.ReplaceAll(c, "{seed}", fmt.Sprint(seed))
		}
		if werr := WriteReport(reportDir, res, cmd); werr != nil {
			t.Errorf("writing the report: %v", werr)
		} else {
			t.Logf("report: %s", filepath.Join(reportDir, "report.md"))
		}
	}
	if err != nil {
		t.Fatalf("seed %d: the harness failed: %v", seed, err)
	}
	kinds := map[Kind]bool{}
	for _, f := range res.Faults {
		kinds[f.Kind] = true
	}
	if len(res.Faults) < 10 || len(kinds) < 4 {
		t.Errorf("seed %d: %d faults of %d kinds, want at least 10 of 4", seed, len(res.Faults), len(kinds))
	}
	if res.Lost != 0 {
		t.Errorf("seed %d: %d acknowledged quantities lost", seed, res.Lost)
	}
	for _, v := range res.Violations {
		t.Errorf("seed %d: violation: %s", seed, v)
	}
}
