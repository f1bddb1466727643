package cluster

import (
	"context"
	"slices"
	"strings"

	"github.com/phasm-go/phasm/shard"
)

// View is one consistent picture of the replicated state as this node has
// applied it, plus who it believes leads. The actor host routes and hands
// shards off by it. A View is a value: the caller owns its slices.
type View struct {
	// Version is State.Version: it rises with every applied change. Two
	// views with the same Version have the same Map and Members (the
	// Leader may differ).
	Version uint64
	// Self is this node's ID.
	Self shard.NodeID
	// Leader is the Raft leader this node knows of, or "" during an
	// election.
	Leader shard.NodeID
	// Map is the shard map (no shards before the cluster is initialized).
	Map shard.Map
	// Members, sorted by ID, with addresses, status and incarnation.
	Members []Member
}

// Member returns the member with id.
func (v View) Member(id shard.NodeID) (Member, bool) {
	i, ok := slices.BinarySearchFunc(v.Members, id, func(m Member, id shard.NodeID) int { return strings.Compare(string(m.ID), string(id)) })
	if !ok {
		return Member{}, false
	}
	return v.Members[i], true
}

// Owner returns the member that owns shard s and the shard's epoch; ok is
// false when s is out of range or unowned.
func (v View) Owner(s shard.ID) (m Member, epoch uint64, ok bool) {
	a, ok := v.Map.Assignment(s)
	if !ok || a.Owner == "" {
		return Member{}, 0, false
	}
	m, ok = v.Member(a.Owner)
	return m, a.Epoch, ok
}

// Owned returns the shards this node owns, ascending.
func (v View) Owned() []shard.ID { return v.Map.ShardsOf(v.Self) }

// View returns the current view.
func (n *Node) View() View {
	st := n.fsm.state()
	return View{Version: st.Version, Self: n.cfg.NodeID, Leader: n.leaderID(), Map: st.Map, Members: st.Members}
}

// Watch returns a channel that delivers the current View at once and then
// a View after every change of the replicated state or of the leader, until
// ctx ends or the node shuts down; then the channel is closed.
//
// The channel holds the latest view only: a slow reader skips intermediate
// views and always reads the newest, so Watch never blocks the node and
// uses bounded memory. Versions (and Map.Epoch) never decrease along the
// channel.
func (n *Node) Watch(ctx context.Context) <-chan View {
	ch := make(chan View, 1)
	go func() {
		defer close(ch)
		var last View
		first := true
		for {
			wait := n.changes.wait()
			v := n.View()
			if first || v.Version != last.Version || v.Leader != last.Leader {
				// Only this goroutine sends: after the drain the buffer is
				// empty, so the send cannot block.
				select {
				case <-ch:
				default:
				}
				ch <- v
				last, first = v, false
			}
			select {
			case <-ctx.Done():
				return
			case <-n.done:
				return
			case <-wait:
			}
		}
	}()
	return ch
}
