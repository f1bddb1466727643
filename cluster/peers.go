package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"

	"github.com/phasm-go/phasm/shard"
)

// knownPeersFile, in DataDir, lists the admin addresses of the members this
// node last knew. A restarted node reads it to find the cluster: Raft
// applies its log only once a leader tells it the commit index, and a node
// that was marked Down was removed from Raft, so no leader will; the file
// is how it finds one to rejoin through without a Join list.
const knownPeersFile = "known-peers.json"

type knownPeer struct {
	ID    shard.NodeID `json:"id"`
	Admin string       `json:"admin"`
}

func (n *Node) readKnownPeers() []string {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, knownPeersFile))
	if err != nil || len(b) > MaxMembers*(shard.MaxNodeIDLen+MaxAddrLen+32) {
		return nil
	}
	var ps []knownPeer
	if json.Unmarshal(b, &ps) != nil {
		return nil
	}
	var out []string
	for _, p := range ps {
		if p.ID != n.cfg.NodeID && p.Admin != "" {
			out = append(out, p.Admin)
		}
	}
	return out
}

// persistPeers rewrites the known-peers file whenever the members' admin
// addresses change.
func (n *Node) persistPeers() {
	defer n.wg.Done()
	var last []knownPeer
	for {
		wait := n.changes.wait()
		st := n.fsm.state()
		ps := make([]knownPeer, 0, len(st.Members))
		for _, m := range st.Members {
			ps = append(ps, knownPeer{ID: m.ID, Admin: m.Addrs.Admin})
		}
		if len(ps) > 0 && !slices.Equal(ps, last) {
			if err := writeFileAtomic(filepath.Join(n.cfg.DataDir, knownPeersFile), ps); err != nil {
				n.log.Warn("cluster: writing the known peers", "err", err)
			} else {
				last = ps
			}
		}
		select {
		case <-n.done:
			return
		case <-wait:
		}
	}
}

func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
