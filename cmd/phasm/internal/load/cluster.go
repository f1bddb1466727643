package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/shard"
)

// Timings of the cluster client.
const (
	// clusterCallTimeout bounds one status or view call to a node.
	clusterCallTimeout = 5 * time.Second
	// viewRefreshEvery is how often the client re-reads the cluster view
	// (besides after a routing error).
	viewRefreshEvery = 500 * time.Millisecond
)

// openCluster connects a cluster client: it reads the membership from the
// first target that answers, matches every member with an admin API
// address, reads the shard map from the admin APIs and keeps it fresh, and
// registers the kinds on an actor.Client whose references route straight
// to the owners.
func openCluster(ctx context.Context, cfg Config, env Env) (_ *backend, err error) {
	b := &backend{what: "the cluster", ledgerDir: cfg.DataDir}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("load: --data: %w", err)
		}
	}
	var tc *tls.Config
	if cfg.TLSCA != "" {
		if tc, err = cluster.LoadTLS(cluster.CertFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}); err != nil {
			return nil, err
		}
	}
	st, asked, err := fetchStatus(ctx, cfg.Targets, tc)
	if err != nil {
		return nil, err
	}
	if st.Shards == 0 {
		return nil, fmt.Errorf("load: the cluster (asked %s) has no shard map yet: is it initialized?", asked)
	}
	b.shards = st.Shards

	nodes, err := adminNodes(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, m := range st.Members {
		if m.Status == shard.Down {
			continue
		}
		if _, ok := nodes[m.ID]; !ok {
			missing = append(missing, fmt.Sprintf("%s (cluster RPC %s)", m.ID, m.Addrs.Admin))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("load: no --admin-target answers as member %s: give every member's admin API address", strings.Join(missing, ", "))
	}

	vs := &viewSource{nodes: nodes, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if err := vs.refresh(ctx); err != nil {
		return nil, err
	}
	if v := vs.get(); len(v.Map.Shards) != st.Shards {
		return nil, fmt.Errorf("load: the cluster view has %d shards, the cluster status %d", len(v.Map.Shards), st.Shards)
	}
	rctx, stopRefresh := context.WithCancel(context.Background())
	go vs.run(rctx)
	b.onClose(func() error { stopRefresh(); <-vs.done; return nil })
	b.routeErr = func(error) { vs.poke() }

	client, err := actor.NewClient(actor.ClientConfig{
		ClusterConfig: actor.ClusterConfig{Listen: cfg.Listen, View: vs.get, TLS: tc},
		Logger:        env.Logger,
	})
	if err != nil {
		return nil, err
	}
	set, err := kinds.RegisterClient(client)
	if err != nil {
		return nil, err
	}
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	b.onClose(func() error {
		sctx, cancel := context.WithTimeout(context.Background(), actor.DefaultShutdownTimeout)
		defer cancel()
		return client.Stop(sctx)
	})
	b.set = set
	b.quiesce = func(ctx context.Context) error { return quiesceCluster(ctx, client, vs) }
	v := vs.get()
	fmt.Fprintf(env.Out, "cluster: %d members (asked %s, leader %s), %d shards, map epoch %d, view version %d; client replies at %s\n",
		len(st.Members), st.Node, st.Leader, len(v.Map.Shards), v.Map.Epoch, v.Version, client.RemoteAddr())
	return b, nil
}

// fetchStatus asks the targets in order and returns the first answer.
func fetchStatus(ctx context.Context, targets []string, tc *tls.Config) (cluster.Status, string, error) {
	var errs []error
	for _, t := range targets {
		st, err := cluster.FetchStatus(ctx, t, tc, clusterCallTimeout)
		if err == nil {
			return st, t, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t, err))
	}
	return cluster.Status{}, "", fmt.Errorf("load: cluster status: no --target answered: %w", errors.Join(errs...))
}

// adminNodes asks every admin target for its status and returns the
// clients by the node IDs they report.
func adminNodes(ctx context.Context, cfg Config) (map[shard.NodeID]*admin.Client, error) {
	nodes := map[shard.NodeID]*admin.Client{}
	var errs []error
	for _, a := range cfg.AdminTargets {
		c := &admin.Client{Addr: a, Token: cfg.AdminToken, HTTP: &http.Client{Timeout: clusterCallTimeout}}
		st, err := c.Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("--admin-target %s: %w", a, err))
			continue
		}
		if st.Cluster == nil {
			errs = append(errs, fmt.Errorf("--admin-target %s: node %s is not a cluster member", a, st.NodeID))
			continue
		}
		nodes[shard.NodeID(st.NodeID)] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return nodes, nil
}

// viewSource keeps the newest cluster view read from the members' admin
// APIs: refreshed every viewRefreshEvery and soon after a routing error.
type viewSource struct {
	nodes map[shard.NodeID]*admin.Client
	cur   atomic.Pointer[cluster.View]
	kick  chan struct{}
	done  chan struct{}
	next  int // round robin over nodes (run's goroutine only, after the first refresh)
}

// get returns the current view (the client's ClusterConfig.View).
func (s *viewSource) get() cluster.View {
	if v := s.cur.Load(); v != nil {
		return *v
	}
	return cluster.View{}
}

// poke asks for a refresh soon.
func (s *viewSource) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *viewSource) ids() []shard.NodeID {
	ids := make([]shard.NodeID, 0, len(s.nodes))
	for id := range s.nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// refresh reads a view with a shard map from the first node that answers,
// starting at the next in turn, and keeps it unless it is older than the
// current one (versions rise on every replica).
func (s *viewSource) refresh(ctx context.Context) error {
	ids := s.ids()
	var errs []error
	for i := range ids {
		id := ids[(s.next+i)%len(ids)]
		cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
		v, err := s.nodes[id].View(cctx)
		cancel()
		if err == nil && len(v.Map.Shards) == 0 {
			err = errors.New("the view has no shard map")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		s.next = (s.next + i + 1) % len(ids)
		if cur := s.cur.Load(); cur == nil || v.Version >= cur.Version {
			s.cur.Store(&v)
		}
		return nil
	}
	return fmt.Errorf("load: cluster view: no member answered: %w", errors.Join(errs...))
}

func (s *viewSource) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(viewRefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		_ = s.refresh(ctx) // the last good view stays; the next tick retries
	}
}

// quiesceCluster waits, within ctx, until the client has no request in
// flight and every member of the current view reports, twice in a row, no
// pending request and no queued action on its admin API.
func quiesceCluster(ctx context.Context, c *actor.Client, vs *viewSource) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	quietRounds := 0
	var busy []string
	for {
		busy = busy[:0]
		if n := c.InFlight(); n > 0 {
			busy = append(busy, fmt.Sprintf("the client: %d requests in flight", n))
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, m := range vs.get().Members {
			if m.Status == shard.Down {
				continue
			}
			nc, ok := vs.nodes[m.ID]
			if !ok {
				mu.Lock()
				busy = append(busy, fmt.Sprintf("%s: no admin API address", m.ID))
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
				defer cancel()
				st, err := nc.Status(cctx)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					busy = append(busy, fmt.Sprintf("%s: %v", m.ID, err))
				case st.Stats.Pending != 0 || st.Stats.ActionsQueued != 0:
					busy = append(busy, fmt.Sprintf("%s: %d requests pending, %d actions queued", m.ID, st.Stats.Pending, st.Stats.ActionsQueued))
				}
			}()
		}
		wg.Wait()
		if len(busy) == 0 {
			quietRounds++
			if quietRounds >= 2 {
				return nil
			}
		} else {
			quietRounds = 0
		}
		select {
		case <-ctx.Done():
			sort.Strings(busy)
			return fmt.Errorf("%s: %w", strings.Join(busy, "; "), ctx.Err())
		case <-t.C:
		}
	}
}
