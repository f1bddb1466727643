package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerImage builds the image from the repository's Dockerfile (as
// `make docker` does: a host-built static binary, FROM scratch) and runs
// `phasm --help` and a short `phasm load` in it. Without a usable docker
// it is skipped, unless PHASM_REQUIRE_SERVICES=1 (as under `make test`),
// where it fails.
func TestDockerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the docker image build")
	}
	docker, err := exec.LookPath("docker")
	if err == nil {
		err = exec.Command(docker, "info").Run()
	}
	if err != nil {
		if os.Getenv("PHASM_REQUIRE_SERVICES") == "1" {
			t.Fatalf("docker is required (PHASM_REQUIRE_SERVICES=1) but not usable: %v", err)
		}
		t.Skipf("docker is not usable (%v); `make test` requires it", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bctx := t.TempDir()
	for _, d := range []string{"certs", "data", "tmp"} {
		if err := os.Mkdir(filepath.Join(bctx, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bctx, "phasm"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	tag := "phasm:test"
	if out, err := exec.CommandContext(ctx, docker, "build", "-q", "-t", tag, "-f", "../../Dockerfile", bctx).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(docker, "rmi", "-f", tag).Run() })
	out, err := exec.CommandContext(ctx, docker, "run", "--rm", tag, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("phasm --help in the image: %v\n%s", err, out)
	}
	for _, cmd := range []string{"load", "node", "status", "send", "replay"} {
		if !strings.Contains(string(out), cmd) {
			t.Errorf("--help in the image does not list %q:\n%s", cmd, out)
		}
	}
	out, err = exec.CommandContext(ctx, docker, "run", "--rm", tag, "load", "--workload", "counter", "--ops", "500", "--seed", "1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASSED") {
		t.Fatalf("phasm load in the image: %v\n%s", err, out)
	}
}
