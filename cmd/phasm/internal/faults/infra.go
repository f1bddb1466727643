package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Sentinel errors of the harness's outside world, wrapped with the
// command and its output.
var (
	// ErrDocker: a docker command failed.
	ErrDocker = errors.New("faults: docker")
	// ErrPostgres: the PostgreSQL server could not be set up or driven.
	ErrPostgres = errors.New("faults: postgres")
	// ErrNotConverged: the cluster did not converge within the bound.
	ErrNotConverged = errors.New("faults: the cluster did not converge")
)

// runCmd runs a command with a bound and returns its combined output;
// a failure wraps base with the command line and the output's tail.
func runCmd(ctx context.Context, base error, timeout time.Duration, name string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(cctx, name, args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		if len(s) > 2000 {
			s = "..." + s[len(s)-2000:]
		}
		return s, fmt.Errorf("%w: %s %s: %w: %s", base, name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

func dockerCmd(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return runCmd(ctx, ErrDocker, timeout, "docker", args...)
}

// DockerUsable reports whether a docker daemon answers.
func DockerUsable(ctx context.Context) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("%w: %w", ErrDocker, err)
	}
	_, err := dockerCmd(ctx, 30*time.Second, "info", "--format", "{{.ServerVersion}}")
	return err
}

// buildImage builds the FROM scratch image tag from the repository's
// Dockerfile around a static binary built from repo (the same layout as
// cmd/phasm/docker/build-image.sh). It returns the binary's path, usable
// on the host too.
func buildImage(ctx context.Context, repo, work, tag string) (string, error) {
	bctx := filepath.Join(work, "image")
	for _, d := range []string{"certs", "data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(bctx, d), 0o755); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(bctx, "phasm")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/phasm")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("faults: static build of phasm: %w\n%s", err, out)
	}
	if _, err := dockerCmd(ctx, 5*time.Minute, "build", "-q", "-t", tag, "-f", filepath.Join(repo, "Dockerfile"), bctx); err != nil {
		return "", err
	}
	return bin, nil
}

// network is the run's Docker network: a /24 of its own.
type network struct {
	name    string
	subnet  string // a.b.c.0/24
	gateway string // a.b.c.1: the host's address on it (PostgreSQL, the load clients)
	prefix  string // "a.b.c."
}

// createNetwork creates a bridge network on a 10.x.y.0/24 drawn from
// pick, trying others while Docker reports an overlap.
func createNetwork(ctx context.Context, name string, pick func() (int, int)) (*network, error) {
	var last error
	for range 20 {
		x, y := pick()
		prefix := fmt.Sprintf("10.%d.%d.", x, y)
		n := &network{name: name, subnet: prefix + "0/24", gateway: prefix + "1", prefix: prefix}
		_, err := dockerCmd(ctx, time.Minute, "network", "create", "--driver", "bridge", "--subnet", n.subnet, "--gateway", n.gateway, name)
		if err == nil {
			return n, nil
		}
		last = err
		if !strings.Contains(err.Error(), "overlap") {
			return nil, err
		}
	}
	return nil, last
}

// postgres is a throwaway PostgreSQL server on the host, listening on the
// network's gateway address so that the containers reach it.
type postgres struct {
	bindir, dir, host string
	port              int
}

func pgBindir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("%w: no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH: "+
		"source scripts/services.d/postgres.sh once (it installs them) or apt-get install postgresql", ErrPostgres)
}

// asPostgres runs a server binary as the postgres OS user when root (the
// server refuses to run as root).
func (p *postgres) as(ctx context.Context, timeout time.Duration, bin string, args ...string) (string, error) {
	path := filepath.Join(p.bindir, bin)
	if os.Geteuid() == 0 {
		return runCmd(ctx, ErrPostgres, timeout, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return runCmd(ctx, ErrPostgres, timeout, path, args...)
}

// installPostgres installs Debian's PostgreSQL server with apt-get (as
// scripts/services.d/postgres.sh does), when root and apt-get is there.
func installPostgres(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root: cannot install postgresql", ErrPostgres)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: apt-get not found: install PostgreSQL (initdb, pg_ctl) by hand", ErrPostgres)
	}
	env := []string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get"}
	if _, err := runCmd(ctx, ErrPostgres, 10*time.Minute, env[0], append(env[1:], "update", "-q")...); err != nil {
		return err
	}
	_, err := runCmd(ctx, ErrPostgres, 10*time.Minute, env[0], append(env[1:], "install", "-y", "-q", "postgresql")...)
	return err
}

// startPostgres creates a cluster in dir and starts it on host,
// installing the server first when it is missing.
func startPostgres(ctx context.Context, dir, host string) (*postgres, error) {
	bindir, err := pgBindir()
	if err != nil {
		if ierr := installPostgres(ctx); ierr != nil {
			return nil, fmt.Errorf("%w (%w)", err, ierr)
		}
		if bindir, err = pgBindir(); err != nil {
			return nil, err
		}
	}
	p := &postgres{bindir: bindir, dir: dir, host: host}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if _, err := runCmd(ctx, ErrPostgres, time.Minute, "chown", "postgres", dir); err != nil {
			return nil, err
		}
	}
	if _, err := p.as(ctx, 2*time.Minute, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"); err != nil {
		return nil, err
	}
	// The server listens on the bridge only; every client on it is trusted
	// (a throwaway server for one run).
	hba := "local all all trust\nhost all all 0.0.0.0/0 trust\n"
	if err := os.WriteFile(filepath.Join(dir, "data", "pg_hba.conf"), []byte(hba), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("%w: no free port on %s: %w", ErrPostgres, host, err)
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	if _, err := p.as(ctx, time.Minute, "createdb", "-h", host, "-p", fmt.Sprint(p.port), "-U", "postgres", "phasm"); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *postgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@%s/phasm?sslmode=disable", net.JoinHostPort(p.host, fmt.Sprint(p.port)))
}

func (p *postgres) start(ctx context.Context) error {
	opts := fmt.Sprintf("-c listen_addresses=%s -p %d -k %s -c max_connections=300 -c fsync=on", p.host, p.port, p.dir)
	_, err := p.as(ctx, 90*time.Second, "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
	return err
}

// crash stops the server in immediate mode: no checkpoint, crash
// recovery at the next start (what a power cut leaves, with fsync on).
func (p *postgres) crash(ctx context.Context) error {
	_, err := p.as(ctx, time.Minute, "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "-w", "stop")
	return err
}

func (p *postgres) stop(ctx context.Context) error {
	_, err := p.as(ctx, time.Minute, "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop")
	return err
}
