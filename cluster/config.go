package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/phasm-go/phasm/shard"
)

// Defaults of Config's zero fields.
const (
	DefaultVoterLimit              = 5
	DefaultHeartbeatInterval       = 500 * time.Millisecond
	DefaultFailureTimeout          = 3 * time.Second
	DefaultHeartbeatRecordInterval = 30 * time.Second
	DefaultRaftHeartbeatTimeout    = time.Second
	DefaultRaftElectionTimeout     = time.Second
	DefaultRaftLeaderLeaseTimeout  = 500 * time.Millisecond
	DefaultRaftCommitTimeout       = 50 * time.Millisecond
	DefaultSnapshotThreshold       = 1024
	DefaultSnapshotInterval        = 2 * time.Minute
	DefaultRoundInterval           = 100 * time.Millisecond
	DefaultRebalanceInterval       = time.Second
	DefaultJoinTimeout             = 30 * time.Second
	DefaultRPCTimeout              = 2 * time.Second
	DefaultApplyTimeout            = 5 * time.Second
	DefaultLeaveTimeout            = time.Minute
)

// Peer is one member of a static bootstrap configuration.
type Peer struct {
	// ID is the node's ID.
	ID shard.NodeID
	// RaftAddr is its advertised Raft address.
	RaftAddr string
	// AdminAddr is its advertised cluster RPC address; a node uses it to
	// reach the leader before the membership lists it.
	AdminAddr string
}

// Config configures a Node. Zero fields take the documented defaults;
// Validate reports every problem at once. Durations are wall-clock.
type Config struct {
	// NodeID names this node; it is its Raft server ID and its member ID.
	// Required; 1 to 255 bytes; stable across restarts.
	NodeID shard.NodeID
	// DataDir holds the Raft log (DataDir/raft-wal) and snapshots
	// (DataDir/snapshots). Required. Created if missing.
	DataDir string

	// RaftBind is the host:port the Raft transport listens on (port 0
	// picks a free port). Required.
	RaftBind string
	// RaftAdvertise is the address other nodes dial for Raft (default: the
	// bound address; required when RaftBind's host is unspecified, like
	// 0.0.0.0).
	RaftAdvertise string
	// AdminBind is the host:port of the cluster RPC (join, heartbeat,
	// leave, status). Required.
	AdminBind string
	// AdminAdvertise is the RPC address other nodes dial (default: the
	// bound address, with the same rule as RaftAdvertise).
	AdminAdvertise string
	// RemoteAddr is the actor host's protoactor remote address, published
	// in the membership for routing. May be empty.
	RemoteAddr string

	// Bootstrap starts a new one-node cluster if DataDir holds no Raft
	// state. Exclusive with Peers.
	Bootstrap bool
	// Peers is a static bootstrap configuration: every node of the initial
	// cluster gets the same list (including itself) and the first
	// VoterLimit of them (in list order) are voters. Used only when
	// DataDir holds no Raft state. Exclusive with Bootstrap.
	Peers []Peer
	// Join lists admin addresses of existing members; a new node asks them,
	// in order, to admit it. Required for a new node that neither
	// bootstraps nor is in Peers.
	Join []string

	// Shards is the cluster's shard count (default shard.DefaultShards).
	// Every node must agree: a node with another count cannot join.
	Shards int
	// VoterLimit bounds the Raft voters (default DefaultVoterLimit): the
	// first VoterLimit members are voters, the rest non-voters, and a
	// non-voter is promoted when a voter is removed.
	VoterLimit int
	// Plan configures the shard planner (moves per round).
	Plan shard.PlanOptions

	// HeartbeatInterval is how often a member tells the leader it is alive
	// (default DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// SuspectTimeout: a member silent this long becomes Suspect (default
	// FailureTimeout/2). Must be below FailureTimeout.
	SuspectTimeout time.Duration
	// FailureTimeout: a member silent this long becomes Down and its
	// shards move (default DefaultFailureTimeout). Must be at least twice
	// HeartbeatInterval.
	FailureTimeout time.Duration
	// HeartbeatRecordInterval is how often the leader records a member's
	// last heartbeat in the replicated state (default
	// DefaultHeartbeatRecordInterval; negative: never).
	HeartbeatRecordInterval time.Duration

	// Raft timeouts; see hashicorp/raft's Config. Set them explicitly: the
	// election takes about 1.6 times RaftElectionTimeout.
	// RaftLeaderLeaseTimeout <= RaftHeartbeatTimeout <= RaftElectionTimeout.
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	RaftCommitTimeout      time.Duration
	// SnapshotThreshold is the log entries between Raft snapshots (default
	// DefaultSnapshotThreshold); SnapshotInterval how often Raft checks it
	// (default DefaultSnapshotInterval).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration

	// RoundInterval is the least time between two applied rounds of shard
	// moves (default DefaultRoundInterval), so the actor hosts can start
	// one round's handoffs before the next lands.
	RoundInterval time.Duration
	// RebalanceInterval is how often the leader plans even without a
	// membership change (default DefaultRebalanceInterval).
	RebalanceInterval time.Duration

	// JoinTimeout bounds Start's wait to become a member (default
	// DefaultJoinTimeout).
	JoinTimeout time.Duration
	// RPCTimeout bounds one cluster RPC (default DefaultRPCTimeout).
	RPCTimeout time.Duration
	// ApplyTimeout bounds one Raft apply or configuration change (default
	// DefaultApplyTimeout).
	ApplyTimeout time.Duration

	// TLS, when set, runs Raft and the cluster RPC over mutual TLS: it must
	// hold this node's certificate (Certificates or GetCertificate), and
	// the cluster CA in both RootCAs (to verify servers) and ClientCAs (to
	// verify clients). Client certificates are always required. With an
	// empty ServerName, peers are verified against the CA only, not by
	// host name: a certificate from the cluster CA is the membership
	// credential. See LoadTLS, WriteDevCA and DevCA.WriteNode. Nil means plain TCP.
	TLS *tls.Config

	// Logger receives structured logs, Raft's included (default: discard).
	Logger *slog.Logger
	// Clock stamps commands and drives failure detection (default
	// time.Now).
	Clock func() time.Time
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Shards == 0 {
		c.Shards = shard.DefaultShards
	}
	if c.VoterLimit == 0 {
		c.VoterLimit = DefaultVoterLimit
	}
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.FailureTimeout, DefaultFailureTimeout)
	def(&c.SuspectTimeout, c.FailureTimeout/2)
	def(&c.HeartbeatRecordInterval, DefaultHeartbeatRecordInterval)
	def(&c.RaftHeartbeatTimeout, DefaultRaftHeartbeatTimeout)
	def(&c.RaftElectionTimeout, DefaultRaftElectionTimeout)
	def(&c.RaftLeaderLeaseTimeout, min(DefaultRaftLeaderLeaseTimeout, c.RaftHeartbeatTimeout))
	def(&c.RaftCommitTimeout, DefaultRaftCommitTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.RoundInterval, DefaultRoundInterval)
	def(&c.RebalanceInterval, DefaultRebalanceInterval)
	def(&c.JoinTimeout, DefaultJoinTimeout)
	def(&c.RPCTimeout, DefaultRPCTimeout)
	def(&c.ApplyTimeout, DefaultApplyTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// Validate reports every problem in c at once, each wrapping
// ErrInvalidConfig. It checks the configuration as given, after applying
// the defaults of zero fields; it does no I/O.
func (c *Config) Validate() error {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	d := c.withDefaults()
	if why := checkNodeID(c.NodeID); why != "" {
		bad("NodeID %s", why)
	}
	if c.DataDir == "" {
		bad("DataDir is required")
	}
	checkBind := func(name, bind, adv string) {
		if bind == "" {
			bad("%s is required", name)
			return
		}
		host, port, err := net.SplitHostPort(bind)
		if err != nil {
			bad("%s %q: %v", name, bind, err)
			return
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			bad("%s %q: bad port", name, bind)
		}
		if adv != "" {
			if err := checkHostPort(adv); err != nil {
				bad("%s advertise address %q: %v", name, adv, err)
			}
		} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			bad("%s %q binds every interface: set its advertise address", name, bind)
		}
		if len(bind) > MaxAddrLen || len(adv) > MaxAddrLen {
			bad("%s: addresses are limited to %d bytes", name, MaxAddrLen)
		}
	}
	checkBind("RaftBind", c.RaftBind, c.RaftAdvertise)
	checkBind("AdminBind", c.AdminBind, c.AdminAdvertise)
	if len(c.RemoteAddr) > MaxAddrLen {
		bad("RemoteAddr is longer than %d bytes", MaxAddrLen)
	}
	if c.Bootstrap && len(c.Peers) > 0 {
		bad("Bootstrap and Peers are exclusive")
	}
	if len(c.Peers) > 0 {
		seen := map[shard.NodeID]bool{}
		self := false
		for i, p := range c.Peers {
			if why := checkNodeID(p.ID); why != "" {
				bad("Peers[%d]: ID %s", i, why)
			}
			if seen[p.ID] {
				bad("Peers[%d]: ID %q appears twice", i, p.ID)
			}
			seen[p.ID] = true
			self = self || p.ID == c.NodeID
			if err := checkHostPort(p.RaftAddr); err != nil {
				bad("Peers[%d] (%q): RaftAddr %q: %v", i, p.ID, p.RaftAddr, err)
			}
			if err := checkHostPort(p.AdminAddr); err != nil {
				bad("Peers[%d] (%q): AdminAddr %q: %v", i, p.ID, p.AdminAddr, err)
			}
		}
		if !self {
			bad("Peers does not list this node (%q)", c.NodeID)
		}
		if len(c.Peers) > MaxMembers {
			bad("Peers has %d entries, limit %d", len(c.Peers), MaxMembers)
		}
	}
	for i, a := range c.Join {
		if err := checkHostPort(a); err != nil {
			bad("Join[%d] %q: %v", i, a, err)
		}
	}
	if err := shard.CheckShards(d.Shards); err != nil {
		bad("Shards: %v", err)
	}
	if c.VoterLimit < 0 || c.VoterLimit > MaxMembers {
		bad("VoterLimit is %d, must be within [1, %d]", c.VoterLimit, MaxMembers)
	}
	if err := c.Plan.Validate(); err != nil {
		bad("Plan: %v", err)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatInterval", c.HeartbeatInterval}, {"SuspectTimeout", c.SuspectTimeout},
		{"FailureTimeout", c.FailureTimeout},
		{"RaftHeartbeatTimeout", c.RaftHeartbeatTimeout}, {"RaftElectionTimeout", c.RaftElectionTimeout},
		{"RaftLeaderLeaseTimeout", c.RaftLeaderLeaseTimeout}, {"RaftCommitTimeout", c.RaftCommitTimeout},
		{"SnapshotInterval", c.SnapshotInterval}, {"RoundInterval", c.RoundInterval},
		{"RebalanceInterval", c.RebalanceInterval}, {"JoinTimeout", c.JoinTimeout},
		{"RPCTimeout", c.RPCTimeout}, {"ApplyTimeout", c.ApplyTimeout},
	} {
		if f.v < 0 {
			bad("%s is %s, must not be negative", f.name, f.v)
		}
	}
	if d.FailureTimeout < 2*d.HeartbeatInterval {
		bad("FailureTimeout %s must be at least twice HeartbeatInterval %s", d.FailureTimeout, d.HeartbeatInterval)
	}
	if d.SuspectTimeout >= d.FailureTimeout {
		bad("SuspectTimeout %s must be below FailureTimeout %s", d.SuspectTimeout, d.FailureTimeout)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"RaftHeartbeatTimeout", d.RaftHeartbeatTimeout}, {"RaftElectionTimeout", d.RaftElectionTimeout},
		{"RaftLeaderLeaseTimeout", d.RaftLeaderLeaseTimeout}, {"SnapshotInterval", d.SnapshotInterval},
	} {
		if f.v < 5*time.Millisecond {
			bad("%s %s is below Raft's minimum of 5ms", f.name, f.v)
		}
	}
	if d.RaftCommitTimeout < time.Millisecond {
		bad("RaftCommitTimeout %s is below Raft's minimum of 1ms", d.RaftCommitTimeout)
	}
	if d.RaftLeaderLeaseTimeout > d.RaftHeartbeatTimeout {
		bad("RaftLeaderLeaseTimeout %s exceeds RaftHeartbeatTimeout %s", d.RaftLeaderLeaseTimeout, d.RaftHeartbeatTimeout)
	}
	if d.RaftHeartbeatTimeout > d.RaftElectionTimeout {
		bad("RaftHeartbeatTimeout %s exceeds RaftElectionTimeout %s", d.RaftHeartbeatTimeout, d.RaftElectionTimeout)
	}
	if t := c.TLS; t != nil {
		if len(t.Certificates) == 0 && t.GetCertificate == nil {
			bad("TLS has no certificate for this node")
		}
		if t.RootCAs == nil {
			bad("TLS.RootCAs must hold the cluster CA")
		}
		if t.ClientCAs == nil {
			bad("TLS.ClientCAs must hold the cluster CA")
		}
	}
	return errors.Join(problems...)
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("bad port")
	}
	return nil
}
