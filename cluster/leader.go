package cluster

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/phasm-go/phasm/shard"
)

// leaderState is the failure detector's memory. It lives only while this
// node leads and is rebuilt, with fresh timers, whenever it becomes
// leader: a new leader never marks members down for silence it did not
// witness (except the previous leader, whose last contact it knows).
type leaderState struct {
	mu     sync.Mutex
	active bool
	term   uint64
	// base is where each member's silence timer starts: when this node
	// became leader, or when the member (re)joined.
	base map[shard.NodeID]time.Time
	// heard is the last heartbeat from each member, with the incarnation
	// it named.
	heard map[shard.NodeID]heard
	// recorded is when each member's heartbeat was last written to the
	// replicated state (Config.HeartbeatRecordInterval).
	recorded map[shard.NodeID]time.Time
	// prevLeader and prevLeaderSeen: the last leader this node followed,
	// and its last contact with it.
	prevLeader     shard.NodeID
	prevLeaderSeen time.Time

	wake chan struct{}
}

type heard struct {
	at  time.Time
	inc uint64
}

// leaderLoop runs the leader's duties every tick and whenever poked: the
// failure detector, the voter reconciliation and the allocator. Everything
// it proposes goes through Raft one command at a time, so at most one round
// is in flight and each round is applied before the next is planned.
func (n *Node) leaderLoop() {
	defer n.wg.Done()
	tick := max(min(n.cfg.HeartbeatInterval, n.cfg.SuspectTimeout)/4, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		planned            bool
		lastVersion        uint64
		lastPlan, lastMove time.Time
	)
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		case <-n.lead.wake:
		}
		now := n.clock()
		if n.raft.State() != raft.Leader {
			n.followerTick()
			planned = false
			continue
		}
		n.lead.mu.Lock()
		active := n.lead.active
		n.lead.mu.Unlock()
		if !active {
			n.activate(now)
		}
		if err := n.ensureInit(); err != nil {
			n.log.Warn("cluster: initializing the shard map", "err", err)
			continue
		}
		n.detect(now)
		st := n.fsm.state()
		if !planned || st.Version != lastVersion || now.Sub(lastPlan) >= n.cfg.RebalanceInterval {
			n.reconcileVoters()
			if now.Sub(lastMove) >= n.cfg.RoundInterval {
				if n.allocate(st) {
					lastMove = now
				}
				planned, lastVersion, lastPlan = true, st.Version, now
			}
		}
		n.recordHeartbeats(now)
	}
}

// followerTick forgets the leader's memory and remembers when this node
// last heard from the leader it follows.
func (n *Node) followerTick() {
	n.lead.mu.Lock()
	defer n.lead.mu.Unlock()
	if n.lead.active {
		n.lead.active = false
		n.log.Info("cluster: no longer the leader")
	}
	if id := n.leaderID(); id != "" && id != n.cfg.NodeID {
		n.lead.prevLeader = id
		n.lead.prevLeaderSeen = n.raft.LastContact()
	}
}

// activate starts the leader's failure detector with fresh timers.
func (n *Node) activate(now time.Time) {
	st := n.fsm.state()
	n.lead.mu.Lock()
	defer n.lead.mu.Unlock()
	n.lead.active = true
	n.lead.term = n.raft.CurrentTerm()
	n.lead.base = make(map[shard.NodeID]time.Time, len(st.Members))
	n.lead.heard = make(map[shard.NodeID]heard, len(st.Members))
	n.lead.recorded = make(map[shard.NodeID]time.Time, len(st.Members))
	for _, m := range st.Members {
		n.lead.base[m.ID] = now
		n.lead.recorded[m.ID] = now
	}
	// The previous leader went silent when this node last heard from it:
	// start its timer there, so a dead leader is not given a second full
	// failure timeout after the election. Raft's last-contact time comes
	// from the wall clock; use it only when it is plausible on ours.
	if p, seen := n.lead.prevLeader, n.lead.prevLeaderSeen; p != "" && p != n.cfg.NodeID &&
		!seen.After(now) && now.Sub(seen) < n.cfg.FailureTimeout {
		n.lead.base[p] = seen
	}
	n.log.Info("cluster: became the leader", "term", n.lead.term, "members", len(st.Members))
}

// ensureInit applies Init once per cluster.
func (n *Node) ensureInit() error {
	n.fsm.mu.RLock()
	ok := n.fsm.st.Initialized()
	n.fsm.mu.RUnlock()
	if ok {
		return nil
	}
	_, err := n.propose(Command{Type: CmdInit, Shards: n.cfg.Shards})
	return err
}

// detect is the failure detector: it marks members Suspect, Down or Alive
// by how long the leader has not heard from them, proposing a command only
// when a status changes.
func (n *Node) detect(now time.Time) {
	st := n.fsm.state()
	for _, m := range st.Members {
		var c Command
		if m.ID == n.cfg.NodeID {
			if m.Status == shard.Joining || m.Status == shard.Suspect || m.Status == shard.Down {
				c = Command{Type: CmdMarkAlive, Node: m.ID, Incarnation: m.Incarnation}
			}
		} else if m.Status != shard.Down {
			n.lead.mu.Lock()
			last, ok := n.lead.base[m.ID]
			if !ok {
				last = now
				n.lead.base[m.ID] = now
			}
			h, ok := n.lead.heard[m.ID]
			n.lead.mu.Unlock()
			fresh := ok && h.inc == m.Incarnation
			if fresh && h.at.After(last) {
				last = h.at
			}
			silent := now.Sub(last)
			switch {
			case silent >= n.cfg.FailureTimeout:
				c = Command{Type: CmdMarkDown, Node: m.ID, Incarnation: m.Incarnation}
			case fresh && now.Sub(h.at) < n.cfg.SuspectTimeout && (m.Status == shard.Joining || m.Status == shard.Suspect):
				c = Command{Type: CmdMarkAlive, Node: m.ID, Incarnation: m.Incarnation}
			case silent >= n.cfg.SuspectTimeout && m.Status == shard.Alive:
				c = Command{Type: CmdMarkSuspect, Node: m.ID, Incarnation: m.Incarnation}
			}
		}
		if c.Type == 0 {
			continue
		}
		if _, err := n.propose(c); err != nil {
			n.log.Warn("cluster: status change failed", "member", m.ID, "command", c.Type, "err", err)
			return
		}
		n.log.Info("cluster: member status", "member", m.ID, "from", m.Status, "command", c.Type, "incarnation", m.Incarnation)
	}
}

// allocate plans one round from st and applies it; it reports whether
// shards moved.
func (n *Node) allocate(st State) bool {
	if !st.Initialized() {
		return false
	}
	r, err := shard.Plan(st.Map, st.PlanMembers(), n.cfg.Plan)
	if err != nil {
		n.log.Error("cluster: planning failed", "err", err)
		return false
	}
	if len(r.Moves) == 0 {
		return false
	}
	if _, err := n.propose(Command{Type: CmdApplyRound, Round: shard.Round{MapEpoch: r.MapEpoch, Moves: r.Moves}}); err != nil {
		n.log.Warn("cluster: round not applied", "map_epoch", r.MapEpoch, "moves", len(r.Moves), "err", err)
		return false
	}
	n.log.Info("cluster: round applied", "map_epoch", r.MapEpoch+1, "moves", len(r.Moves), "pending", r.Pending)
	return true
}

// reconcileVoters carries out the Raft membership policy:
//
//   - a member marked Down is removed from the Raft configuration (voter or
//     not), so a dead voter stops counting toward the quorum; it rejoins
//     through the join RPC when it comes back;
//   - while there are fewer voters than VoterLimit, Alive non-voters are
//     promoted, in ID order.
//
// Servers that are not (yet) members are left alone: they are joining.
func (n *Node) reconcileVoters() {
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	// The state as of now, under cfgMu: a join admits its member while
	// holding it, so a server in the configuration whose member reads Down
	// here is really down.
	st := n.fsm.state()
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := 0
	nonvoters := map[shard.NodeID]raft.Server{}
	for _, s := range f.Configuration().Servers {
		id := shard.NodeID(s.ID)
		if m, ok := st.Member(id); ok && m.Status == shard.Down && id != n.cfg.NodeID {
			if err := n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn("cluster: removing a down member from raft", "member", id, "err", err)
			} else {
				n.log.Info("cluster: removed a down member from raft", "member", id, "suffrage", s.Suffrage.String())
			}
			continue
		}
		if s.Suffrage == raft.Voter {
			voters++
		} else {
			nonvoters[id] = s
		}
	}
	for _, m := range st.Members {
		if voters >= n.cfg.VoterLimit {
			break
		}
		s, ok := nonvoters[m.ID]
		if !ok || m.Status != shard.Alive {
			continue
		}
		if err := n.raft.AddVoter(s.ID, s.Address, 0, n.cfg.ApplyTimeout).Error(); err != nil {
			n.log.Warn("cluster: promoting a non-voter", "member", m.ID, "err", err)
			return
		}
		voters++
		n.log.Info("cluster: promoted to voter", "member", m.ID)
	}
}

// recordHeartbeats writes members' last heartbeats to the replicated state,
// at most once per HeartbeatRecordInterval each.
func (n *Node) recordHeartbeats(now time.Time) {
	if n.cfg.HeartbeatRecordInterval < 0 {
		return
	}
	type rec struct {
		id shard.NodeID
		h  heard
	}
	var due []rec
	n.lead.mu.Lock()
	for id, h := range n.lead.heard {
		if now.Sub(n.lead.recorded[id]) >= n.cfg.HeartbeatRecordInterval {
			due = append(due, rec{id, h})
			n.lead.recorded[id] = now
		}
	}
	n.lead.mu.Unlock()
	for _, r := range due {
		_, err := n.propose(Command{Type: CmdHeartbeat, Node: r.id, Incarnation: r.h.inc, AtUnixNano: r.h.at.UnixNano()})
		if err != nil && !errors.Is(err, ErrStaleIncarnation) && !errors.Is(err, ErrUnknownMember) {
			n.log.Debug("cluster: recording a heartbeat", "member", r.id, "err", err)
		}
	}
}

// propose stamps c with the leader's clock (unless set) and term, applies
// it through Raft and returns the FSM's answer. Raft's leadership errors
// wrap ErrNotLeader; a shut-down Raft is ErrShutdown.
func (n *Node) propose(c Command) (applyResult, error) {
	if c.AtUnixNano == 0 {
		c.AtUnixNano = n.clock().UnixNano()
	}
	c.Term = n.raft.CurrentTerm()
	b, err := c.MarshalBinary()
	if err != nil {
		return applyResult{}, err
	}
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return applyResult{}, raftErr(err)
	}
	res, _ := f.Response().(applyResult)
	return res, res.err
}

func raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrShutdown, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	}
	return fmt.Errorf("cluster: raft: %w", err)
}

func (n *Node) checkLeader() error {
	select {
	case <-n.done:
		return ErrShutdown
	default:
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	return nil
}

// leaderJoin admits a node: it adds its Raft server (a voter while there
// are fewer than VoterLimit, else a non-voter; an existing server with
// another address is replaced) and then applies AddMember.
func (n *Node) leaderJoin(req joinRequest) (joinResponse, error) {
	if err := n.checkLeader(); err != nil {
		return joinResponse{}, err
	}
	if req.Shards != n.cfg.Shards {
		return joinResponse{}, fmt.Errorf("%w: node %q has %d shards, the cluster %d", ErrJoinRejected, req.ID, req.Shards, n.cfg.Shards)
	}
	cmd := Command{Type: CmdAddMember, Node: req.ID, Addrs: Addresses{Raft: req.Raft, Remote: req.Remote, Admin: req.Admin}}
	if err := cmd.Validate(); err != nil {
		return joinResponse{}, fmt.Errorf("%w: %w", ErrJoinRejected, err)
	}
	if err := n.ensureInit(); err != nil {
		return joinResponse{}, err
	}
	st := n.fsm.state()
	if _, ok := st.Member(req.ID); !ok && len(st.Members) >= MaxMembers {
		return joinResponse{}, fmt.Errorf("%w: %w", ErrJoinRejected, ErrTooManyMembers)
	}
	// The Raft server is added and the member admitted under cfgMu, as one
	// step: reconcileVoters (which removes Down members from Raft) must not
	// see the new server while the membership still says Down, or it
	// removes the server just added and the node, admitted but outside
	// the Raft configuration, never hears from a leader.
	n.cfgMu.Lock()
	voter, err := n.addRaftServerLocked(req.ID, req.Raft)
	if err == nil && testHookJoinAdded != nil {
		testHookJoinAdded(n)
	}
	if err == nil {
		if _, err = n.propose(cmd); err != nil && (errors.Is(err, ErrTooManyMembers) || errors.Is(err, ErrInvalidCommand)) {
			err = fmt.Errorf("%w: %w", ErrJoinRejected, err)
		}
	}
	n.cfgMu.Unlock()
	if err != nil {
		return joinResponse{}, err
	}
	after := n.fsm.state()
	m, _ := after.Member(req.ID)
	n.lead.mu.Lock()
	if n.lead.base != nil {
		n.lead.base[req.ID] = n.clock()
		if h, ok := n.lead.heard[req.ID]; ok && h.inc != m.Incarnation {
			delete(n.lead.heard, req.ID)
		}
	}
	n.lead.mu.Unlock()
	n.poke()
	n.log.Info("cluster: member admitted", "member", req.ID, "incarnation", m.Incarnation, "voter", voter, "raft", req.Raft)
	return joinResponse{Leader: n.cfg.NodeID, Incarnation: m.Incarnation, Voter: voter}, nil
}

// testHookJoinAdded, set by tests only, runs in leaderJoin between adding
// the Raft server and admitting the member.
var testHookJoinAdded func(n *Node)

// addRaftServerLocked adds (or re-adds, at a new address) id to the Raft
// configuration, as a voter while there are fewer than VoterLimit. The
// caller holds cfgMu.
func (n *Node) addRaftServerLocked(id shard.NodeID, addr string) (voter bool, err error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, raftErr(err)
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			if s.Address == raft.ServerAddress(addr) {
				return s.Suffrage == raft.Voter, nil
			}
			if err := n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout).Error(); err != nil {
				return false, raftErr(err)
			}
			continue
		}
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	var fut raft.IndexFuture
	if voters < n.cfg.VoterLimit {
		voter = true
		fut = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout)
	} else {
		fut = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout)
	}
	if err := fut.Error(); err != nil {
		return false, raftErr(err)
	}
	return voter, nil
}

// leaderHeartbeat records a heartbeat. A heartbeat from a member that is
// Down, unknown, or of another incarnation is answered Rejoin.
func (n *Node) leaderHeartbeat(req heartbeatRequest) (heartbeatResponse, error) {
	if err := n.checkLeader(); err != nil {
		return heartbeatResponse{}, err
	}
	n.fsm.mu.RLock()
	m, ok := n.fsm.st.Member(req.ID)
	n.fsm.mu.RUnlock()
	resp := heartbeatResponse{Leader: n.cfg.NodeID}
	if !ok || m.Status == shard.Down || m.Incarnation != req.Incarnation {
		resp.Rejoin = true
		return resp, nil
	}
	n.lead.mu.Lock()
	if n.lead.heard != nil {
		n.lead.heard[req.ID] = heard{at: n.clock(), inc: req.Incarnation}
	}
	n.lead.mu.Unlock()
	if m.Status == shard.Joining || m.Status == shard.Suspect {
		n.poke()
	}
	return resp, nil
}

// leaderLeave marks a member Leaving, unless no other member is Alive to
// take its shards.
func (n *Node) leaderLeave(req leaveRequest) error {
	if err := n.checkLeader(); err != nil {
		return err
	}
	st := n.fsm.state()
	m, ok := st.Member(req.ID)
	if !ok {
		return ErrUnknownMember
	}
	if len(st.Map.ShardsOf(req.ID)) > 0 {
		other := false
		for _, o := range st.Members {
			other = other || (o.ID != req.ID && o.Status == shard.Alive)
		}
		if !other {
			return ErrLastMember
		}
	}
	_, err := n.propose(Command{Type: CmdLeave, Node: req.ID, Incarnation: m.Incarnation})
	n.poke()
	return err
}

// leaderRemove removes a member that owns no shards from the membership and
// from Raft. A leader asked to remove itself hands leadership over first
// and answers ErrNotLeader, so the caller retries with the new leader.
func (n *Node) leaderRemove(req removeRequest) error {
	if err := n.checkLeader(); err != nil {
		return err
	}
	if req.ID == n.cfg.NodeID {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("%w: transferring leadership: %w", ErrNoLeader, err)
		}
		return fmt.Errorf("%w: leadership transferred before removing this node", ErrNotLeader)
	}
	if _, err := n.propose(Command{Type: CmdRemove, Node: req.ID}); err != nil {
		return err
	}
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	if err := n.raft.RemoveServer(raft.ServerID(req.ID), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return raftErr(err)
	}
	n.poke()
	n.log.Info("cluster: member removed", "member", req.ID)
	return nil
}
