package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// clusterMember is `phasm node`'s cluster side: the cluster.Node whose
// views the host follows.
type clusterMember struct {
	cfg   NodeConfig
	log   *slog.Logger
	tls   *tls.Config
	local bool // the store is node-local (Pebble)
	peers []cluster.Peer
	// views carries the node's views to the host; created before the host
	// (which needs its Watch channel) and fed once the node has started
	// (which needs the host's remote address).
	views  chan cluster.View
	fatal  chan error
	node   *cluster.Node
	cancel context.CancelFunc
	done   chan struct{}
}

func newClusterMember(cfg NodeConfig, log *slog.Logger) (*clusterMember, error) {
	m := &clusterMember{cfg: cfg, log: log, local: cfg.DataDir != "",
		views: make(chan cluster.View, 1), fatal: make(chan error, 1), done: make(chan struct{})}
	m.peers, _ = cfg.peers() // validated
	if cfg.TLSCA != "" {
		t, err := cluster.LoadTLS(cluster.CertFiles{CA: cfg.TLSCA, Cert: cfg.TLSCert, Key: cfg.TLSKey})
		if err != nil {
			return nil, err
		}
		m.tls = t
	}
	return m, nil
}

// advertised returns the address other nodes dial for a listen address:
// with --advertise, that host and the listen port; else "" (the bound
// address).
func (m *clusterMember) advertised(listen string) string {
	if m.cfg.Advertise == "" {
		return ""
	}
	_, port, _ := net.SplitHostPort(listen) // validated
	return net.JoinHostPort(m.cfg.Advertise, port)
}

// actorConfig is the host's cluster configuration: it follows the views.
func (m *clusterMember) actorConfig() *actor.ClusterConfig {
	return &actor.ClusterConfig{Listen: m.cfg.Listen, Advertise: m.advertised(m.cfg.Listen), Watch: m.views, TLS: m.tls}
}

// start makes the node a cluster member, publishing remoteAddr (the host's
// node-to-node address) in the membership, and forwards its views to the
// host. A node-local store in a cluster of more than one member is fatal.
func (m *clusterMember) start(ctx context.Context, remoteAddr string) error {
	dir := m.cfg.RaftDir
	if dir == "" {
		dir = filepath.Join(m.cfg.DataDir, "raft")
	}
	c := cluster.Config{
		NodeID: shard.NodeID(m.cfg.NodeID), DataDir: dir,
		RaftBind: m.cfg.Raft, RaftAdvertise: m.advertised(m.cfg.Raft),
		AdminBind: m.cfg.ClusterRPC, AdminAdvertise: m.advertised(m.cfg.ClusterRPC),
		RemoteAddr: remoteAddr, Bootstrap: m.cfg.Bootstrap, Peers: m.peers, Join: m.cfg.Join,
		Shards: m.cfg.Shards, TLS: m.tls, Logger: m.log.With("component", "cluster"),
	}
	n, err := cluster.Start(ctx, c)
	if err != nil {
		return fmt.Errorf("joining the cluster: %w", err)
	}
	m.node = n
	wctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	watch := n.Watch(wctx)
	go func() {
		defer close(m.done)
		defer close(m.views)
		for v := range watch {
			if m.local {
				if err := cluster.CheckStore(true, len(v.Members)); err != nil {
					select {
					case m.fatal <- err:
					default:
					}
				}
			}
			select { // the host reads the newest view only
			case <-m.views:
			default:
			}
			m.views <- v
		}
	}()
	return nil
}

// status is the cluster part of the admin API's /v1/status.
func (m *clusterMember) status() any { return m.node.Status() }

// leave leaves the cluster gracefully within timeout: the node's shards
// move to the other members first. A last member, or a leave that does not
// finish in time, is logged; the node then stops as a crash would look.
func (m *clusterMember) leave(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := m.node.Leave(ctx)
	switch {
	case err == nil:
		m.log.Info("left the cluster", "took", time.Since(start).Round(time.Millisecond))
	case errors.Is(err, cluster.ErrLastMember):
		m.log.Info("not leaving the cluster: no other live member to take the shards", "err", err)
	default:
		m.log.Warn("leaving the cluster did not finish; stopping anyway", "err", err)
	}
}

// shutdown stops the cluster node and the view forwarding.
func (m *clusterMember) shutdown() {
	if err := m.node.Shutdown(); err != nil {
		m.log.Error("stopping the cluster node", "err", err)
	}
	m.cancel()
	<-m.done
}
