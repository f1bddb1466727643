package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/phasm-go/phasm/shard"
)

// Member is one cluster member in the replicated State.
type Member struct {
	// ID names the node; it is also its Raft server ID.
	ID shard.NodeID
	// Addrs are where the member is reached.
	Addrs Addresses
	// Status is the member's status as the planner sees it. The cluster
	// uses Joining, Alive, Suspect, Leaving and Down.
	Status shard.Status
	// Incarnation counts the member's admissions: 1 on its first join,
	// +1 on every rejoin (after being Down or Leaving, or with new
	// addresses). Status commands name the incarnation they concern, so a
	// verdict about an old incarnation cannot hit a new one.
	Incarnation uint64
	// StatusSinceUnixNano is the leader's clock when Status last changed.
	StatusSinceUnixNano int64
	// LastHeartbeatUnixNano and LastHeartbeatTerm are the leader's clock
	// and term when it last recorded hearing from the member (MarkAlive,
	// Heartbeat, or the join). The leader records heartbeats coarsely (see
	// Config.HeartbeatRecordInterval), not every one it receives.
	LastHeartbeatUnixNano int64
	LastHeartbeatTerm     uint64
}

// State is the replicated state of the cluster: the members, the shard map
// and a version. It is a value that only Apply changes, deterministically:
// replicas that apply the same commands hold equal states (and equal
// encodings).
//
// Invariants (State.Validate): members sorted by ID, unique, each valid;
// once initialized, the map is valid and every shard owner is a member.
type State struct {
	// Version rises by one with every command that changes the state;
	// commands that are rejected or change nothing leave it.
	Version uint64
	// Members, sorted by ID.
	Members []Member
	// Map is the shard map; it has no shards (len(Map.Shards) == 0) until
	// the Init command.
	Map shard.Map
}

// Initialized reports whether the Init command has been applied.
func (s *State) Initialized() bool { return len(s.Map.Shards) > 0 }

// Member returns the member with id.
func (s *State) Member(id shard.NodeID) (Member, bool) {
	if i, ok := s.find(id); ok {
		return s.Members[i], true
	}
	return Member{}, false
}

func (s *State) find(id shard.NodeID) (int, bool) {
	return slices.BinarySearchFunc(s.Members, id, func(m Member, id shard.NodeID) int { return strings.Compare(string(m.ID), string(id)) })
}

// Clone returns a deep copy of s.
func (s *State) Clone() State {
	return State{Version: s.Version, Members: slices.Clone(s.Members), Map: s.Map.Clone()}
}

// Equal reports whether s and o are the same state.
func (s *State) Equal(o *State) bool {
	return s.Version == o.Version && slices.Equal(s.Members, o.Members) && s.Map.Equal(o.Map) &&
		len(s.Map.Shards) == len(o.Map.Shards)
}

// PlanMembers returns the members as the planner sees them.
func (s *State) PlanMembers() []shard.Member {
	out := make([]shard.Member, len(s.Members))
	for i, m := range s.Members {
		out[i] = shard.Member{ID: m.ID, Status: m.Status}
	}
	return out
}

func validStatus(st shard.Status) bool {
	switch st {
	case shard.Joining, shard.Alive, shard.Suspect, shard.Leaving, shard.Down:
		return true
	}
	return false
}

// Validate reports every broken invariant of s, each wrapping
// ErrInvalidState.
func (s *State) Validate() error {
	var p []string
	if len(s.Members) > MaxMembers {
		p = append(p, fmt.Sprintf("%d members, limit %d", len(s.Members), MaxMembers))
	}
	ids := make([]shard.NodeID, 0, len(s.Members))
	for i, m := range s.Members {
		if why := checkNodeID(m.ID); why != "" {
			p = append(p, fmt.Sprintf("member %d: ID %s", i, why))
		}
		if i > 0 && s.Members[i-1].ID >= m.ID {
			p = append(p, fmt.Sprintf("member %d: %q not in strictly ascending order", i, m.ID))
		}
		var ap []string
		m.Addrs.check(&ap)
		for _, a := range ap {
			p = append(p, fmt.Sprintf("member %q: %s", m.ID, a))
		}
		if !validStatus(m.Status) {
			p = append(p, fmt.Sprintf("member %q: status %s", m.ID, m.Status))
		}
		if m.Incarnation == 0 {
			p = append(p, fmt.Sprintf("member %q: incarnation 0", m.ID))
		}
		ids = append(ids, m.ID)
	}
	if s.Initialized() {
		if err := s.Map.Validate(len(s.Map.Shards), ids); err != nil {
			p = append(p, err.Error())
		}
	} else if s.Map.Epoch != 0 {
		p = append(p, fmt.Sprintf("map epoch %d without shards", s.Map.Epoch))
	}
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidState, strings.Join(p, "; "))
}

// Apply applies c to s. Either the command applies entirely (changed
// reports whether anything changed; if so Version rose by one) or it is
// rejected with an error and s is unchanged. Apply is deterministic: it
// reads time only from c and never panics on any command.
//
// Rejections wrap ErrInvalidCommand, ErrNotInitialized,
// ErrAlreadyInitialized, ErrUnknownMember, ErrStaleIncarnation,
// ErrInvalidTransition, ErrMemberOwnsShards, ErrTooManyMembers,
// ErrStaleRound (with shard.ErrStalePlan) or ErrInvalidRound.
func (s *State) Apply(c Command) (changed bool, err error) {
	if err := c.Validate(); err != nil {
		return false, err
	}
	changed, err = s.apply(c)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", c.Type, c.Node, err)
	}
	if changed {
		s.Version++
	}
	return changed, nil
}

func (s *State) apply(c Command) (bool, error) {
	switch c.Type {
	case CmdInit:
		if s.Initialized() {
			if len(s.Map.Shards) == c.Shards {
				return false, nil
			}
			return false, fmt.Errorf("%w with %d shards, not %d", ErrAlreadyInitialized, len(s.Map.Shards), c.Shards)
		}
		m, err := shard.Initial(c.Shards, nil)
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
		}
		s.Map = m
		return true, nil

	case CmdAddMember:
		i, ok := s.find(c.Node)
		if !ok {
			if len(s.Members) >= MaxMembers {
				return false, fmt.Errorf("%w: limit %d", ErrTooManyMembers, MaxMembers)
			}
			s.Members = slices.Insert(s.Members, i, Member{
				ID: c.Node, Addrs: c.Addrs, Status: shard.Joining, Incarnation: 1,
				StatusSinceUnixNano: c.AtUnixNano, LastHeartbeatUnixNano: c.AtUnixNano, LastHeartbeatTerm: c.Term,
			})
			return true, nil
		}
		m := &s.Members[i]
		if m.Addrs == c.Addrs && m.Status != shard.Down && m.Status != shard.Leaving {
			return false, nil // a retried join
		}
		m.Addrs = c.Addrs
		m.Incarnation++
		m.Status = shard.Joining
		m.StatusSinceUnixNano = c.AtUnixNano
		m.LastHeartbeatUnixNano, m.LastHeartbeatTerm = c.AtUnixNano, c.Term
		return true, nil

	case CmdRemove:
		i, ok := s.find(c.Node)
		if !ok {
			return false, nil // already removed
		}
		if n := len(s.Map.ShardsOf(c.Node)); n > 0 {
			return false, fmt.Errorf("%w: %d shards", ErrMemberOwnsShards, n)
		}
		s.Members = slices.Delete(s.Members, i, i+1)
		return true, nil

	case CmdApplyRound:
		if !s.Initialized() {
			return false, ErrNotInitialized
		}
		for _, mv := range c.Round.Moves {
			m, ok := s.Member(mv.To)
			if !ok || m.Status != shard.Alive {
				return false, fmt.Errorf("%w: shard %d to %q, which is not an Alive member", ErrInvalidRound, mv.Shard, mv.To)
			}
		}
		next, err := s.Map.Apply(c.Round)
		switch {
		case err == nil:
		case errors.Is(err, shard.ErrStalePlan):
			return false, fmt.Errorf("%w: %w", ErrStaleRound, err)
		default:
			return false, fmt.Errorf("%w: %w", ErrInvalidRound, err)
		}
		if next.Equal(s.Map) {
			return false, nil
		}
		s.Map = next
		return true, nil
	}

	// The status commands and Heartbeat name a member and an incarnation.
	i, ok := s.find(c.Node)
	if !ok {
		return false, ErrUnknownMember
	}
	m := &s.Members[i]
	if c.Incarnation != 0 && c.Incarnation != m.Incarnation {
		return false, fmt.Errorf("%w: command for incarnation %d, member is at %d", ErrStaleIncarnation, c.Incarnation, m.Incarnation)
	}
	var to shard.Status
	var from []shard.Status // allowed sources; to itself is a no-op
	switch c.Type {
	case CmdHeartbeat:
		if m.LastHeartbeatUnixNano == c.AtUnixNano && m.LastHeartbeatTerm == c.Term {
			return false, nil
		}
		m.LastHeartbeatUnixNano, m.LastHeartbeatTerm = c.AtUnixNano, c.Term
		return true, nil
	case CmdMarkAlive:
		to, from = shard.Alive, []shard.Status{shard.Joining, shard.Suspect, shard.Down}
	case CmdMarkSuspect:
		to, from = shard.Suspect, []shard.Status{shard.Alive, shard.Joining}
	case CmdMarkDown:
		to, from = shard.Down, []shard.Status{shard.Alive, shard.Joining, shard.Suspect, shard.Leaving}
	case CmdLeave:
		to, from = shard.Leaving, []shard.Status{shard.Alive, shard.Joining, shard.Suspect}
	}
	if m.Status == to {
		return false, nil
	}
	if !slices.Contains(from, m.Status) {
		return false, fmt.Errorf("%w: %s to %s", ErrInvalidTransition, m.Status, to)
	}
	m.Status = to
	m.StatusSinceUnixNano = c.AtUnixNano
	if to == shard.Alive {
		m.LastHeartbeatUnixNano, m.LastHeartbeatTerm = c.AtUnixNano, c.Term
	}
	return true, nil
}
