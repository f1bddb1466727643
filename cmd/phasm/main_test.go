package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNodeStopsGracefullyOnSIGTERM runs the real binary: `phasm node`
// serves, gets SIGTERM, drains and exits 0.
func TestNodeStopsGracefullyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the binary build")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "phasm")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "node", "--data", t.TempDir(), "--admin", "127.0.0.1:0", "--log-format", "text")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	admin := regexp.MustCompile(`admin=(\S+)`)
	var addr string
	var log strings.Builder
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the node exited before serving:\n%s", log.String())
			}
			log.WriteString(l + "\n")
			if strings.Contains(l, "node started") {
				if m := admin.FindStringSubmatch(l); m != nil {
					addr = m[1]
				}
			}
		case <-ctx.Done():
			t.Fatalf("the node did not start:\n%s", log.String())
		}
	}
	out, err := exec.CommandContext(ctx, bin, "send", "--admin", addr, "counter", "c", `{"add":2}`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"accepted":true`) {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		log.WriteString(l + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log.String())
	}
	for _, want := range []string{"stopping: draining in-flight requests", "node stopped"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}
