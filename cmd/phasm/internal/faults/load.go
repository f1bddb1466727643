package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
)

// loadProc is one `phasm load` process against the cluster.
type loadProc struct {
	workload string
	cmd      *exec.Cmd
	out      *os.File
	jsonPath string
	timeline string
	done     chan struct{}
	err      error
}

// startLoad starts `phasm load` for workload against c, running until
// stopLoad interrupts it.
func startLoad(ctx context.Context, bin, dir string, c *testCluster, workload string, seed uint64, entities, concurrency int) (*loadProc, error) {
	var rpcs, admins []string
	for _, n := range c.nodes {
		rpcs = append(rpcs, n.rpc())
		admins = append(admins, n.admin())
	}
	p := &loadProc{workload: workload, jsonPath: filepath.Join(dir, "load-"+workload+".json"),
		timeline: filepath.Join(dir, "timeline-"+workload+".jsonl"), done: make(chan struct{})}
	args := []string{"load", "--workload", workload, "--seed", fmt.Sprint(seed), "--entities", fmt.Sprint(entities),
		"--concurrency", fmt.Sprint(concurrency), "--duration", "1000h",
		"--target", strings.Join(rpcs, ","), "--admin-target", strings.Join(admins, ","), "--listen", c.net.gateway + ":0",
		"--tls-cert", c.client.Cert, "--tls-key", c.client.Key, "--tls-ca", c.client.CA,
		"--json", p.jsonPath, "--timeline", p.timeline, "--data", filepath.Join(dir, "ledger-"+workload)}
	f, err := os.Create(filepath.Join(dir, "load-"+workload+".out"))
	if err != nil {
		return nil, err
	}
	p.out = f
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("faults: starting phasm load: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the load stopped on its own (a failure: it runs
// until interrupted).
func (p *loadProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// interrupt sends SIGINT: the load stops issuing, waits for the cluster
// to be quiet and runs its check.
func (p *loadProc) interrupt() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
	}
}

// stop interrupts the load (if not yet) and reads its report.
func (p *loadProc) stop(bound time.Duration) (load.Report, error) {
	p.interrupt()
	select {
	case <-p.done:
	case <-time.After(bound):
		_ = p.cmd.Process.Kill()
		<-p.done
		return load.Report{}, fmt.Errorf("faults: phasm load %s did not finish its check within %s of SIGINT", p.workload, bound)
	}
	b, err := os.ReadFile(p.jsonPath)
	if err != nil {
		return load.Report{}, fmt.Errorf("faults: phasm load %s wrote no report (exit: %v): %w; its output:\n%s", p.workload, p.err, err, p.tail())
	}
	var rep load.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return load.Report{}, fmt.Errorf("faults: phasm load %s report: %w", p.workload, err)
	}
	return rep, nil
}

func (p *loadProc) tail() string {
	b, _ := os.ReadFile(p.out.Name())
	s := string(b)
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// readTimeline reads a --timeline file.
func readTimeline(path string) ([]load.TimelinePoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pts []load.TimelinePoint
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p load.TimelinePoint
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return pts, fmt.Errorf("faults: %s: %w", path, err)
		}
		pts = append(pts, p)
	}
	return pts, sc.Err()
}
