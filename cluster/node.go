package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/phasm-go/phasm/shard"
)

// Node is one cluster member: a Raft replica of the State, the cluster RPC
// server, the heartbeat sender, and, while it leads, the failure detector
// and the allocator. Start it with Start; stop it with Leave (graceful) or
// Shutdown (abrupt, as a crash looks to the others).
type Node struct {
	cfg   Config
	log   *slog.Logger
	clock func() time.Time

	raft     *raft.Raft
	fsm      *fsm
	wal      *wal.WAL
	meta     *metadb.BoltMetaDB
	stream   *streamLayer
	trans    *raft.NetworkTransport
	observer *raft.Observer

	adminLn net.Listener
	http    *http.Server
	client  *http.Client
	scheme  string

	raftAddr, adminAddr string

	changes     *notifier
	incarnation atomic.Uint64
	left        atomic.Bool
	leaving     atomic.Bool // Leave was called: never ask to be readmitted
	lead        leaderState
	cfgMu       sync.Mutex // serializes Raft configuration changes

	ctx      context.Context // canceled by Shutdown
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
	wg       sync.WaitGroup
}

// Start opens the node's Raft state in cfg.DataDir, starts Raft and the
// cluster RPC, bootstraps a new cluster if so configured, and makes the node
// a member: it asks the leader (directly when it knows it, else through the
// cfg.Join addresses) to admit it, retrying until it is admitted, the join
// is rejected (ErrJoinRejected), or cfg.JoinTimeout or ctx ends
// (ErrJoinFailed). A restarting node registers the same way, so its
// addresses and status are refreshed. On success the node heartbeats the
// leader until it stops.
//
// With static Peers, Start returns once a quorum of the peers has started
// and elected a leader.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	n := &Node{
		cfg: c, log: c.Logger.With("node", string(c.NodeID)), clock: c.Clock,
		changes: newNotifier(), done: make(chan struct{}), scheme: "http",
	}
	n.lead.wake = make(chan struct{}, 1)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.fsm = &fsm{log: n.log, changed: n.changes}
	ok := false
	defer func() {
		if !ok {
			n.Shutdown()
		}
	}()
	if err := n.startRaft(); err != nil {
		return nil, err
	}
	if err := n.startRPC(); err != nil {
		return nil, err
	}

	obs := make(chan raft.Observation, 16)
	n.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	n.wg.Add(3)
	go n.observe(obs)
	go n.leaderLoop()
	go n.persistPeers()

	jctx, cancel := context.WithTimeout(ctx, c.JoinTimeout)
	err := n.register(jctx)
	cancel()
	if err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go n.heartbeatLoop()
	ok = true
	n.log.Info("cluster: node started", "raft", n.raftAddr, "admin", n.adminAddr, "incarnation", n.incarnation.Load())
	return n, nil
}

func (n *Node) startRaft() error {
	c := n.cfg
	lw := logWriter{log: n.log}
	walDir := filepath.Join(c.DataDir, "raft-wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return fmt.Errorf("cluster: data dir: %w", err)
	}
	// The node holds the metadata database itself and closes it after the
	// WAL (a second Close is a no-op): raft-wal v0.4.0's Close left it, and
	// its file lock, open, so a restart in the same process blocked.
	n.meta = &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithMetaStore(n.meta))
	if err != nil {
		return fmt.Errorf("cluster: opening the raft log in %s: %w", walDir, err)
	}
	n.wal = w
	snaps, err := raft.NewFileSnapshotStore(c.DataDir, 2, lw)
	if err != nil {
		return fmt.Errorf("cluster: snapshot store in %s: %w", c.DataDir, err)
	}
	ln, err := net.Listen("tcp", c.RaftBind)
	if err != nil {
		return fmt.Errorf("cluster: raft listen: %w", err)
	}
	n.raftAddr = c.RaftAdvertise
	if n.raftAddr == "" {
		n.raftAddr = ln.Addr().String()
	}
	n.stream = newStreamLayer(ln, advertiseAddr(n.raftAddr), c.TLS, n.log)
	n.trans = raft.NewNetworkTransport(n.stream, 3, 10*time.Second, lw)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.RaftHeartbeatTimeout
	rc.ElectionTimeout = c.RaftElectionTimeout
	rc.LeaderLeaseTimeout = c.RaftLeaderLeaseTimeout
	rc.CommitTimeout = c.RaftCommitTimeout
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.ShutdownOnRemove = false // a removed node may rejoin
	rc.LogOutput = lw
	rc.LogLevel = "INFO"
	if n.log.Enabled(context.Background(), slog.LevelDebug) {
		rc.LogLevel = "DEBUG"
	}
	has, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		return fmt.Errorf("cluster: reading raft state: %w", err)
	}
	if !has && !c.Bootstrap && len(c.Peers) == 0 && len(c.Join) == 0 {
		return fmt.Errorf("%w: %s holds no raft state: a new node needs Bootstrap, Peers or Join", ErrInvalidConfig, c.DataDir)
	}
	r, err := raft.NewRaft(rc, n.fsm, w, w, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("cluster: starting raft: %w", err)
	}
	n.raft = r
	if has {
		return nil
	}
	var servers []raft.Server
	switch {
	case c.Bootstrap:
		servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(c.NodeID), Address: raft.ServerAddress(n.raftAddr)}}
	case len(c.Peers) > 0:
		voter := false
		for i, p := range c.Peers {
			s := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)}
			if i >= c.VoterLimit {
				s.Suffrage = raft.Nonvoter
			}
			voter = voter || (p.ID == c.NodeID && s.Suffrage == raft.Voter)
			servers = append(servers, s)
		}
		if !voter {
			// Raft bootstraps voters only; the leader replicates the
			// configuration to this non-voter.
			return nil
		}
	default:
		return nil
	}
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	n.log.Info("cluster: bootstrapped", "servers", len(servers))
	return nil
}

func (n *Node) startRPC() error {
	c := n.cfg
	ln, err := net.Listen("tcp", c.AdminBind)
	if err != nil {
		return fmt.Errorf("cluster: admin listen: %w", err)
	}
	n.adminAddr = c.AdminAdvertise
	if n.adminAddr == "" {
		n.adminAddr = ln.Addr().String()
	}
	if c.TLS != nil {
		ln = tls.NewListener(ln, serverTLS(c.TLS))
		n.scheme = "https"
	}
	n.adminLn = ln
	n.http = &http.Server{
		Handler:           n.mux(),
		ReadHeaderTimeout: c.RPCTimeout,
		ReadTimeout:       c.RPCTimeout,
		WriteTimeout:      c.RPCTimeout + 3*c.ApplyTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		// net/http logs refused TLS handshakes ("http: TLS handshake error
		// from ...: bad certificate") here.
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	n.client = &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: c.RPCTimeout}).DialContext,
		TLSClientConfig:     clientTLS(c.TLS),
		TLSHandshakeTimeout: c.RPCTimeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     time.Minute,
	}}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("cluster: admin server stopped", "err", err)
		}
	}()
	return nil
}

// observe turns Raft's leader and state observations into view changes and
// wakes the leader loop.
func (n *Node) observe(ch chan raft.Observation) {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-ch:
			n.changes.fire()
			n.poke()
		}
	}
}

func (n *Node) poke() {
	select {
	case n.lead.wake <- struct{}{}:
	default:
	}
}

// ID returns the node's ID.
func (n *Node) ID() shard.NodeID { return n.cfg.NodeID }

// RaftAddr returns the advertised Raft address.
func (n *Node) RaftAddr() string { return n.raftAddr }

// AdminAddr returns the advertised cluster RPC address: the address other
// nodes join through and `phasm status` asks.
func (n *Node) AdminAddr() string { return n.adminAddr }

// Incarnation returns the incarnation the cluster admitted this node with.
func (n *Node) Incarnation() uint64 { return n.incarnation.Load() }

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft != nil && n.raft.State() == raft.Leader }

func (n *Node) leaderID() shard.NodeID {
	if n.raft == nil {
		return ""
	}
	_, id := n.raft.LeaderWithID()
	return shard.NodeID(id)
}

// leaderAdmin returns the leader's admin address: from the membership, or
// from the static peers before the leader is a member; "" if unknown.
func (n *Node) leaderAdmin() string {
	id := n.leaderID()
	if id == "" {
		return ""
	}
	n.fsm.mu.RLock()
	m, ok := n.fsm.st.Member(id)
	n.fsm.mu.RUnlock()
	if ok {
		return m.Addrs.Admin
	}
	for _, p := range n.cfg.Peers {
		if p.ID == id {
			return p.AdminAddr
		}
	}
	return ""
}

// Shutdown stops the node at once, without leaving: to the others it looks
// like a crash, and the leader marks it Down after the failure timeout. The
// Raft state stays in DataDir, so Start with the same DataDir restarts it.
// It is safe to call more than once.
func (n *Node) Shutdown() error {
	n.stopOnce.Do(func() {
		close(n.done)
		n.cancel()
		var errs []error
		if n.http != nil {
			errs = append(errs, n.http.Close())
		}
		if n.raft != nil {
			if n.observer != nil {
				n.raft.DeregisterObserver(n.observer)
			}
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.trans != nil {
			errs = append(errs, n.trans.Close())
		} else if n.stream != nil {
			errs = append(errs, n.stream.Close())
		}
		if n.stream != nil {
			n.stream.wait()
		}
		n.wg.Wait()
		if n.client != nil {
			n.client.CloseIdleConnections()
		}
		if n.wal != nil {
			errs = append(errs, n.wal.Close())
		}
		if n.meta != nil {
			errs = append(errs, n.meta.Close())
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// Leave leaves the cluster gracefully: the leader marks this node Leaving,
// the allocator hands its shards to Alive members (a bounded number per
// round), and once it owns none the leader removes it from the membership
// and from Raft (transferring leadership first if this node leads). Then
// the node shuts down. ctx bounds the whole leave: when it ends first,
// Leave returns an error wrapping ErrLeaveTimeout and the node keeps
// running, Leaving. With no other Alive member to take its shards, Leave
// fails at once with ErrLastMember; so does it later, when every other
// member is leaving too or down (the whole cluster stopping at once): the
// node stays Leaving and keeps the shards it still owns.
func (n *Node) Leave(ctx context.Context) error {
	if n.left.Load() {
		return nil
	}
	// From here on the node must not ask to be readmitted (heartbeatLoop):
	// a leader change during the leave, or the removal itself, silences
	// the heartbeats, and a readmission would undo the leave.
	n.leaving.Store(true)
	id := n.cfg.NodeID
	lreq := leaveRequest{ID: id, Incarnation: n.incarnation.Load()}
	err := n.retry(ctx, func(ctx context.Context) error {
		var resp struct{}
		return n.toLeader(ctx, pathLeave, lreq, &resp, func() error { return n.leaderLeave(lreq) })
	})
	if err != nil {
		return n.leaveErr(ctx, "marking the node leaving", err)
	}
	n.log.Info("cluster: leaving, waiting for the shards to be handed off")
	for {
		wait := n.changes.wait()
		v := n.View()
		if len(v.Owned()) == 0 {
			break
		}
		if !anyoneToTakeOver(v) {
			// Every other member is leaving too (a whole cluster stopped
			// at once) or down: nobody can take the shards, so waiting
			// would only run out ctx. Stay Leaving; the shards stay ours.
			return fmt.Errorf("%w: every other member is leaving or down (%d shards still owned here)", ErrLastMember, len(v.Owned()))
		}
		select {
		case <-ctx.Done():
			return n.leaveErr(ctx, fmt.Sprintf("waiting for %d shards to be handed off", len(n.View().Owned())), ctx.Err())
		case <-n.done:
			return ErrShutdown
		case <-wait:
		}
	}
	rreq := removeRequest{ID: id}
	err = n.retry(ctx, func(ctx context.Context) error {
		var resp struct{}
		return n.toLeader(ctx, pathRemove, rreq, &resp, func() error { return n.leaderRemove(rreq) })
	})
	if err != nil {
		return n.leaveErr(ctx, "removing the node", err)
	}
	n.left.Store(true)
	n.log.Info("cluster: left the cluster")
	return n.Shutdown()
}

// anyoneToTakeOver reports whether v has a member other than itself that
// is, or may become, Alive (not Leaving, not Down).
func anyoneToTakeOver(v View) bool {
	for _, m := range v.Members {
		if m.ID != v.Self && m.Status != shard.Leaving && m.Status != shard.Down {
			return true
		}
	}
	return false
}

func (n *Node) leaveErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrLeaveTimeout, what, err)
	}
	return fmt.Errorf("cluster: leave: %s: %w", what, err)
}

// retryable reports whether an RPC error may succeed against another node
// or later.
func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrRPC)
}

// retry runs op until it succeeds, fails with a non-retryable error, or ctx
// or the node ends, with bounded exponential backoff.
func (n *Node) retry(ctx context.Context, op func(context.Context) error) error {
	backoff := 20 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-n.done:
			t.Stop()
			return ErrShutdown
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// toLeader runs local when this node leads, else sends the request to the
// leader's admin address.
func (n *Node) toLeader(ctx context.Context, path string, req, resp any, local func() error) error {
	if n.IsLeader() {
		return local()
	}
	addr := n.leaderAdmin()
	if addr == "" {
		return ErrNoLeader
	}
	return n.call(ctx, addr, path, req, resp, false)
}

// register makes this node a member with its current addresses (see Start).
func (n *Node) register(ctx context.Context) error {
	req := joinRequest{ID: n.cfg.NodeID, Raft: n.raftAddr, Remote: n.cfg.RemoteAddr, Admin: n.adminAddr, Shards: n.cfg.Shards}
	last := map[string]error{}
	backoff := 20 * time.Millisecond
	for {
		var resp joinResponse
		var err error
		joined := false
		if n.IsLeader() {
			resp, err = n.leaderJoin(req)
			joined = err == nil
			if err != nil {
				last["(local leader)"] = err
			}
		} else {
			targets := make([]string, 0, 1+len(n.cfg.Join))
			if a := n.leaderAdmin(); a != "" && a != n.adminAddr {
				targets = append(targets, a)
			}
			// Then the configured Join addresses, then every member this
			// node knows of: a restarted node that was removed from Raft
			// (marked Down) hears from no leader, but its state still lists
			// the members.
			cands := slices.Clone(n.cfg.Join)
			n.fsm.mu.RLock()
			for _, m := range n.fsm.st.Members {
				cands = append(cands, m.Addrs.Admin)
			}
			n.fsm.mu.RUnlock()
			for _, p := range n.cfg.Peers {
				cands = append(cands, p.AdminAddr)
			}
			cands = append(cands, n.readKnownPeers()...)
			for _, a := range cands {
				if a != n.adminAddr && !slices.Contains(targets, a) {
					targets = append(targets, a)
				}
			}
			for _, a := range targets {
				resp = joinResponse{}
				err = n.call(ctx, a, pathJoin, req, &resp, false)
				if err == nil {
					joined = true
					break
				}
				last[a] = err
				if !retryable(err) {
					n.log.Error("cluster: join refused", "addr", a, "err", err)
					return err
				}
			}
		}
		if joined {
			n.incarnation.Store(resp.Incarnation)
			n.log.Info("cluster: admitted", "incarnation", resp.Incarnation, "voter", resp.Voter, "leader", resp.Leader)
			return nil
		}
		if err != nil && !retryable(err) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			errs := []error{fmt.Errorf("%w: %w", ErrJoinFailed, ctx.Err())}
			for a, e := range last {
				errs = append(errs, fmt.Errorf("%s: %w", a, e))
			}
			if len(last) == 0 {
				errs = append(errs, errors.New("no leader was found and no Join address was reachable"))
			}
			n.log.Error("cluster: join failed", "err", errors.Join(errs...))
			return errors.Join(errs...)
		case <-n.done:
			t.Stop()
			return ErrShutdown
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// heartbeatLoop tells the leader this node is alive every
// HeartbeatInterval, and rejoins when the leader says its membership is
// gone (it was marked Down, or removed).
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	lastBeat := n.clock() // the last heartbeat a leader answered
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		if n.left.Load() {
			return
		}
		req := heartbeatRequest{ID: n.cfg.NodeID, Incarnation: n.incarnation.Load()}
		var resp heartbeatResponse
		var err error
		if n.IsLeader() {
			resp, err = n.leaderHeartbeat(req)
		} else if addr := n.leaderAdmin(); addr != "" {
			ctx, cancel := context.WithTimeout(n.ctx, min(n.cfg.RPCTimeout, 2*n.cfg.HeartbeatInterval))
			err = n.call(ctx, addr, pathHeartbeat, req, &resp, false)
			cancel()
		} else {
			err = ErrNoLeader
		}
		if err != nil {
			n.log.Debug("cluster: heartbeat failed", "err", err)
			if silent := n.clock().Sub(lastBeat); silent > 2*n.cfg.FailureTimeout && !n.leaving.Load() {
				// No leader has answered for long: this node may have been
				// marked Down and removed from Raft (then it hears from no
				// leader at all, and no heartbeat tells it to rejoin). Ask
				// the members to (re)admit it; for a node that is still a
				// member this changes nothing.
				n.log.Warn("cluster: no leader answered heartbeats; asking the members to readmit this node", "silent", silent.Round(time.Millisecond))
				ctx, cancel := context.WithTimeout(n.ctx, n.cfg.JoinTimeout)
				if err := n.register(ctx); err != nil {
					n.log.Error("cluster: readmission failed", "err", err)
				}
				cancel()
				lastBeat = n.clock()
			}
			continue
		}
		lastBeat = n.clock()
		if resp.Rejoin {
			n.log.Warn("cluster: the leader no longer counts this node as a live member; rejoining")
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.JoinTimeout)
			if err := n.register(ctx); err != nil {
				n.log.Error("cluster: rejoin failed", "err", err)
			}
			cancel()
		}
	}
}
