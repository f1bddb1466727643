package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/cmd/phasm/internal/remote"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/pebblestore"
	"github.com/phasm-go/phasm/persistence/pgstore"
	"github.com/phasm-go/phasm/shard"
)

// DefaultAdminAddr is the default admin API address of a node, and the
// address `phasm status` and `phasm send` call by default.
const DefaultAdminAddr = "127.0.0.1:7480"

// NodeConfig configures `phasm node`.
type NodeConfig struct {
	// NodeID names the node (default: the host name).
	NodeID string
	// DataDir is the Pebble store's directory (exclusive with Postgres).
	DataDir string
	// Postgres is the PostgreSQL store's DSN (exclusive with DataDir).
	Postgres string
	// PostgresSchema is the schema of the PostgreSQL tables (default
	// pgstore's).
	PostgresSchema string
	// PostgresRetainJournal keeps journal records that a snapshot covers
	// (pgstore.Options.RetainJournal): the whole history stays auditable,
	// as the fault suite's journal check needs.
	PostgresRetainJournal bool
	// Admin is the admin API's listen address.
	Admin string
	// AdminToken, when set, is required as a bearer token on /v1 routes.
	AdminToken string
	// Listen is the node-to-node (actor remote) address; required in
	// cluster mode.
	Listen string
	// Raft is the Raft listen address. Giving it (or Join, Bootstrap or
	// Peers) runs the node in cluster mode.
	Raft string
	// ClusterRPC is the cluster RPC listen address (join, heartbeat,
	// leave, status): the address other nodes --join and `phasm status
	// --target` ask. Required in cluster mode.
	ClusterRPC string
	// Advertise, when set, is the host other nodes reach this one at (for
	// Raft, the cluster RPC and node-to-node traffic), with each listen
	// address's port; required when those bind every interface.
	Advertise string
	// RaftDir holds the Raft log and snapshots (default: DataDir/raft with
	// Pebble; required with PostgreSQL).
	RaftDir string
	// Join lists cluster RPC addresses of members to join.
	Join []string
	// Bootstrap starts a new cluster with this node as its only member.
	Bootstrap bool
	// Peers is a static bootstrap configuration, "ID@RAFT@RPC" per node
	// (every initial node gets the same list, itself included).
	Peers []string
	// TLSCert, TLSKey and TLSCA are PEM files for node-to-node mutual TLS
	// (Raft, the cluster RPC and node-to-node traffic).
	TLSCert, TLSKey, TLSCA string
	// Shards is the host's shard count (every process reading the same data
	// must agree).
	Shards int
	// Payment configures the clinic's simulated payment gateway.
	PaymentDeclineRatio float64
	PaymentMaxLatency   time.Duration
	PaymentSeed         uint64
	// ShutdownTimeout bounds the drain on SIGTERM/SIGINT.
	ShutdownTimeout time.Duration
	// CheckConfig validates the configuration and exits.
	CheckConfig bool
}

// Validate lists every problem, named by flag.
func (c *NodeConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.DataDir == "" && c.Postgres == "":
		bad("a store is required: --data DIR (Pebble) or --postgres DSN")
	case c.DataDir != "" && c.Postgres != "":
		bad("--data and --postgres are exclusive: give one store")
	}
	if c.DataDir != "" {
		if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
			bad("--data %s: not a directory", c.DataDir)
		}
	}
	if err := remote.CheckAddress(c.Admin); err != nil {
		bad("--admin: %v", err)
	}
	for _, a := range []struct{ flag, v string }{{"--listen", c.Listen}, {"--raft", c.Raft}, {"--cluster-rpc", c.ClusterRPC}} {
		if a.v != "" {
			if err := remote.CheckAddress(a.v); err != nil {
				bad("%s: %v", a.flag, err)
			}
		}
	}
	for _, j := range c.Join {
		if err := remote.CheckAddress(j); err != nil {
			bad("--join: %v", err)
		}
	}
	if len(c.Join) > 0 && c.Bootstrap {
		bad("--join and --bootstrap are exclusive")
	}
	if len(c.Join) > 0 && c.DataDir != "" {
		bad("--join needs --postgres: a cluster of more than one node cannot run on a local Pebble store")
	}
	peers, perrs := c.peers()
	errs = append(errs, perrs...)
	if len(peers) > 0 && c.Bootstrap {
		bad("--peers and --bootstrap are exclusive")
	}
	if c.DataDir != "" && len(peers) > 1 {
		if err := cluster.CheckStore(true, len(peers)); err != nil {
			bad("--peers with --data: %v", err)
		}
	}
	if c.ClusterMode() {
		for _, a := range []struct{ flag, v string }{{"--raft", c.Raft}, {"--listen", c.Listen}, {"--cluster-rpc", c.ClusterRPC}} {
			if a.v == "" {
				bad("cluster mode (--raft, --join, --bootstrap or --peers) needs %s", a.flag)
			}
		}
		if c.RaftDir == "" && c.DataDir == "" {
			bad("cluster mode with --postgres needs --raft-dir (where the Raft log is kept)")
		}
		if len(peers) > 0 && !slices.ContainsFunc(peers, func(p cluster.Peer) bool { return string(p.ID) == c.NodeID }) {
			bad("--peers does not list this node (--node-id %q)", c.NodeID)
		}
	}
	n := 0
	for _, f := range []string{c.TLSCert, c.TLSKey, c.TLSCA} {
		if f != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		bad("--tls-cert, --tls-key and --tls-ca go together: give all three or none")
	}
	if n == 3 {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			bad("--tls-cert/--tls-key: %v", err)
		}
		if pem, err := os.ReadFile(c.TLSCA); err != nil {
			bad("--tls-ca: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			bad("--tls-ca %s: no PEM certificate found", c.TLSCA)
		}
	}
	if c.Shards < 1 || c.Shards > 1<<16 {
		bad("--shards is %d, must be within [1, 65536]", c.Shards)
	}
	if err := (kinds.GatewayOptions{DeclineRatio: c.PaymentDeclineRatio}).Validate(); err != nil {
		bad("--payment-decline-ratio is %g, must be within [0, 1]", c.PaymentDeclineRatio)
	}
	if c.ShutdownTimeout < 0 {
		bad("--shutdown-timeout must not be negative")
	}
	return errors.Join(errs...)
}

// ClusterMode reports whether the node runs as a cluster member: any of
// --raft, --join, --bootstrap or --peers is given.
func (c *NodeConfig) ClusterMode() bool {
	return c.Raft != "" || len(c.Join) > 0 || c.Bootstrap || len(c.Peers) > 0
}

// peers parses --peers ("ID@RAFT@RPC" each).
func (c *NodeConfig) peers() ([]cluster.Peer, []error) {
	var out []cluster.Peer
	var errs []error
	for _, p := range c.Peers {
		f := strings.Split(p, "@")
		if len(f) != 3 || f[0] == "" {
			errs = append(errs, fmt.Errorf("--peers %q: want ID@RAFT_ADDR@RPC_ADDR", p))
			continue
		}
		for _, a := range f[1:] {
			if err := remote.CheckAddress(a); err != nil {
				errs = append(errs, fmt.Errorf("--peers %q: %v", p, err))
			}
		}
		out = append(out, cluster.Peer{ID: shard.NodeID(f[0]), RaftAddr: f[1], AdminAddr: f[2]})
	}
	return out, errs
}

func (a *App) nodeCmd() *cobra.Command {
	host, _ := os.Hostname()
	if host == "" {
		host = "node-1"
	}
	cfg := NodeConfig{NodeID: host, Admin: DefaultAdminAddr, Shards: actor.DefaultShards,
		PaymentDeclineRatio: kinds.DefaultDeclineRatio, PaymentMaxLatency: kinds.DefaultMaxLatency, PaymentSeed: 1,
		ShutdownTimeout: actor.DefaultShutdownTimeout}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node hosting the bank, dentist and counter kinds",
		Long: `Run a single node hosting the account (bank), clinic (dentist) and counter
kinds on a Pebble store (--data DIR) or PostgreSQL (--postgres DSN), with the
admin HTTP API on --admin:

  GET  /healthz, /readyz, /metrics
  GET  /dashboard/                       the dashboard (a web page; / redirects to it)
  GET  /v1/status, /v1/series, /v1/cluster/view
  POST /v1/entities/{kind}/{id}          body: the input as JSON (+ optional "request_id")
  GET  /v1/entities/{kind}/{id}          the state
  GET  /v1/entities/{kind}/{id}/journal  the decoded journal

SIGTERM or SIGINT stops it gracefully: the admin API stops, the host drains
in-flight requests, then the store closes.

Cluster mode (--raft with --bootstrap, --peers or --join; --listen and
--cluster-rpc are required too) makes the node a member of a Raft-replicated
cluster: it serves the shards the shard map gives it, forwards requests for
the others to their owners, and hands shards off as the map changes. A
cluster of more than one node needs a shared store (--postgres). A new
cluster starts from one --bootstrap node or from a static --peers list
(ID@RAFT@RPC per node, the same on every initial node); later nodes --join
any member's cluster RPC address. On SIGTERM a member leaves the cluster
first (its shards move to the others, bounded by --shutdown-timeout), then
drains and stops.`,
		Example: `  phasm node --data ./phasm-data
  phasm node --postgres 'postgres://phasm@db:5432/phasm' --admin 0.0.0.0:7480 --admin-token s3cret --log-format json
  phasm node --node-id n1 --postgres "$DSN" --raft-dir /var/lib/phasm/raft --raft 10.0.0.1:7400 --cluster-rpc 10.0.0.1:7401 \
    --listen 10.0.0.1:7402 --peers n1@10.0.0.1:7400@10.0.0.1:7401,n2@10.0.0.2:7400@10.0.0.2:7401,n3@10.0.0.3:7400@10.0.0.3:7401`,
		Args: cobra.NoArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			if err := a.validate(cfg.Validate()); err != nil {
				return err
			}
			log, err := a.logger(slog.LevelInfo)
			if err != nil {
				return usage(err)
			}
			if cfg.CheckConfig {
				fmt.Fprintln(a.io.Out, "configuration ok")
				return nil
			}
			return a.runNode(cmd.Context(), cfg, log)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "this node's ID")
	f.StringVar(&cfg.DataDir, "data", "", "Pebble data directory (created if missing)")
	f.StringVar(&cfg.Postgres, "postgres", "", "PostgreSQL DSN (instead of --data)")
	f.StringVar(&cfg.PostgresSchema, "postgres-schema", "", "PostgreSQL schema of phasm's tables (default: pgstore's)")
	f.BoolVar(&cfg.PostgresRetainJournal, "postgres-retain-journal", false, "keep journal records covered by snapshots (an auditable history)")
	f.StringVar(&cfg.Admin, "admin", cfg.Admin, "admin HTTP API listen address")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token required on /v1 routes (env PHASM_ADMIN_TOKEN)")
	f.StringVar(&cfg.Listen, "listen", "", "node-to-node listen address host:port (cluster mode)")
	f.StringVar(&cfg.Raft, "raft", "", "Raft listen address host:port (turns on cluster mode)")
	f.StringVar(&cfg.ClusterRPC, "cluster-rpc", "", "cluster RPC listen address host:port: what other nodes --join (cluster mode)")
	f.StringVar(&cfg.Advertise, "advertise", "", "host other nodes reach this one at, when the listen addresses bind every interface")
	f.StringVar(&cfg.RaftDir, "raft-dir", "", "Raft log directory (default: DATA/raft with --data; required with --postgres)")
	f.StringSliceVar(&cfg.Join, "join", nil, "cluster RPC addresses of members to join, host:port,...")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", false, "bootstrap a new cluster with this node as its only member")
	f.StringSliceVar(&cfg.Peers, "peers", nil, "static bootstrap: ID@RAFT@RPC per initial node, comma-separated")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "node certificate (PEM) for mutual TLS between nodes")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "node private key (PEM)")
	f.StringVar(&cfg.TLSCA, "tls-ca", "", "cluster CA certificate (PEM)")
	f.IntVar(&cfg.Shards, "shards", cfg.Shards, "shard count (all processes on the same data must agree)")
	f.Float64Var(&cfg.PaymentDeclineRatio, "payment-decline-ratio", cfg.PaymentDeclineRatio, "share of payments the simulated gateway declines")
	f.DurationVar(&cfg.PaymentMaxLatency, "payment-max-latency", cfg.PaymentMaxLatency, "simulated gateway latency bound")
	f.Uint64Var(&cfg.PaymentSeed, "payment-seed", cfg.PaymentSeed, "seed of the simulated gateway's decisions")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "bound of the graceful drain")
	f.BoolVar(&cfg.CheckConfig, "check-config", false, "validate the configuration and exit")
	return cmd
}

// openStore opens the Pebble store in dataDir or the PostgreSQL store at
// dsn; pg sets the PostgreSQL options beyond the DSN (Schema, Writer,
// RetainJournal).
func openStore(ctx context.Context, dataDir, dsn string, pg pgstore.Options) (persistence.Store, string, error) {
	if dataDir != "" {
		s, err := pebblestore.Open(dataDir, pebblestore.Options{})
		return s, "pebble " + dataDir, err
	}
	s, err := pgstore.Open(ctx, dsn, pg)
	if err != nil {
		return nil, "", err
	}
	return s, "postgres", nil
}

func (a *App) runNode(ctx context.Context, cfg NodeConfig, log *slog.Logger) error {
	store, storeName, err := openStore(ctx, cfg.DataDir, cfg.Postgres,
		pgstore.Options{Schema: cfg.PostgresSchema, Writer: cfg.NodeID, RetainJournal: cfg.PostgresRetainJournal})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hcfg := actor.Config{Store: store, Shards: cfg.Shards, Logger: log.With("component", "actor"), ShutdownTimeout: cfg.ShutdownTimeout, Metrics: reg}
	var member *clusterMember
	if cfg.ClusterMode() {
		if member, err = newClusterMember(cfg, log); err != nil {
			return err
		}
		hcfg.Cluster = member.actorConfig()
	}
	h, err := actor.New(hcfg)
	if err != nil {
		return err
	}
	set, err := kinds.Register(h, kinds.Options{Payment: kinds.GatewayOptions{Seed: cfg.PaymentSeed,
		DeclineRatio: cfg.PaymentDeclineRatio, MaxLatency: cfg.PaymentMaxLatency, NoDefaults: true}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	// The dashboard's throughput and latency: one point a second from the
	// host's metrics, ten minutes kept.
	series := admin.NewSeries(reg, admin.DefaultSeriesPoints)
	seriesCtx, stopSeries := context.WithCancel(context.Background())
	defer stopSeries()
	go series.Run(seriesCtx, time.Second, func(err error) { log.Warn("sampling the dashboard series", "err", err) })
	acfg := admin.Config{NodeID: cfg.NodeID, Kinds: set, Store: store, StoreName: storeName,
		Shards: cfg.Shards, Token: cfg.AdminToken, Started: time.Now(), Logger: log, Metrics: reg, Series: series}
	var fatal <-chan error
	if member != nil {
		if err := member.start(ctx, h.RemoteAddr()); err != nil {
			ln.Close()
			_ = h.Stop(context.Background())
			return err
		}
		acfg.Cluster = member.status
		acfg.View = member.node.View
		if err := reg.Register(admin.NewClusterCollector(member.node.Status)); err != nil {
			member.leave(cfg.ShutdownTimeout)
			member.shutdown()
			ln.Close()
			_ = h.Stop(context.Background())
			return fmt.Errorf("cluster metrics: %w", err)
		}
		fatal = member.fatal
	}
	var ready atomic.Bool
	ready.Store(true)
	acfg.Ready = ready.Load
	srv := &http.Server{Handler: admin.NewHandler(acfg), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	attrs := []any{"node_id", cfg.NodeID, "store", storeName, "admin", ln.Addr().String(), "shards", cfg.Shards,
		"kinds", kinds.Names(), "admin_token", cfg.AdminToken != ""}
	if member != nil {
		attrs = append(attrs, "raft", member.node.RaftAddr(), "cluster_rpc", member.node.AdminAddr(), "remote", h.RemoteAddr())
	}
	log.Info("node started", attrs...)
	if a.NodeReady != nil {
		a.NodeReady(ln.Addr().String())
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: draining in-flight requests")
	case runErr = <-served:
		log.Error("admin API stopped", "err", runErr)
	case runErr = <-fatal:
		log.Error("stopping: the cluster refuses this node", "err", runErr)
	}
	ready.Store(false)
	if member != nil {
		member.leave(cfg.ShutdownTimeout)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopErr := h.Stop(sctx)
	if stopErr != nil {
		log.Error("drain incomplete", "err", stopErr)
	}
	if member != nil {
		member.shutdown()
	}
	log.Info("node stopped", "stats", fmt.Sprintf("%+v", h.Stats()))
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return stopErr
}
