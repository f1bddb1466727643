package faults

import (
	"fmt"
	"sort"
	"strings"
)

// JournalRow is one journal record's provenance, as the audit reads it
// from PostgreSQL.
type JournalRow struct {
	Kind, ID string
	Seq      uint64
	Shard    uint32 // the entity's shard (from the entities table)
	Writer   string // the node that wrote it
	Epoch    uint64 // the shard epoch it wrote under
	// Completion is set for the completion of a tracked action, ActionID
	// naming the action.
	Completion bool
	ActionID   uint64
}

// AuditJournal checks the journals' provenance. rows must be sorted by
// (Kind, ID, Seq). It returns a violation per problem (at most max, then a
// count of the rest):
//   - a record without a writer or without an ownership epoch (a node
//     applied an input to an entity of a shard it did not own);
//   - two nodes writing under one shard epoch: two owners applied inputs
//     at once (split brain), whether to one entity or to two entities of
//     the shard;
//   - an entity's epochs going backwards along its journal: a stale owner
//     applied an input after the new owner had;
//   - a gap or a repeat in an entity's sequence numbers (the journals are
//     kept whole: a gap is a lost record);
//   - a tracked action completed twice in an entity's journal (the runtime
//     must drop a second result: effectively once).
func AuditJournal(rows []JournalRow, max int) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	type shardEpoch struct {
		shard uint32
		epoch uint64
	}
	writers := map[shardEpoch]map[string]string{} // writer -> an entity it wrote
	completed := map[uint64]uint64{}              // the current entity's action ID -> seq of its completion
	for i, r := range rows {
		ent := r.Kind + "/" + r.ID
		first := i == 0 || rows[i-1].Kind != r.Kind || rows[i-1].ID != r.ID
		if first {
			clear(completed)
		}
		if r.Completion {
			if prev, ok := completed[r.ActionID]; ok {
				add("%s: action %d completed at seq %d and again at seq %d: a result applied twice", ent, r.ActionID, prev, r.Seq)
			} else {
				completed[r.ActionID] = r.Seq
			}
		}
		switch {
		case first && r.Seq != 1:
			add("%s: journal starts at seq %d, not 1: records lost", ent, r.Seq)
		case !first && r.Seq != rows[i-1].Seq+1:
			add("%s: seq %d follows seq %d: records lost or repeated", ent, r.Seq, rows[i-1].Seq)
		}
		if r.Writer == "" || r.Epoch == 0 {
			add("%s seq %d: written by %q under epoch %d: applied without an ownership epoch", ent, r.Seq, r.Writer, r.Epoch)
			continue
		}
		if !first && r.Epoch < rows[i-1].Epoch && rows[i-1].Epoch != 0 {
			add("%s seq %d: written by %s under shard epoch %d after seq %d by %s under epoch %d: a stale owner applied an input after the new owner",
				ent, r.Seq, r.Writer, r.Epoch, rows[i-1].Seq, rows[i-1].Writer, rows[i-1].Epoch)
		}
		k := shardEpoch{r.Shard, r.Epoch}
		if writers[k] == nil {
			writers[k] = map[string]string{}
		}
		if _, ok := writers[k][r.Writer]; !ok {
			writers[k][r.Writer] = fmt.Sprintf("%s seq %d", ent, r.Seq)
		}
	}
	keys := make([]shardEpoch, 0, len(writers))
	for k := range writers {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].shard != keys[j].shard {
			return keys[i].shard < keys[j].shard
		}
		return keys[i].epoch < keys[j].epoch
	})
	for _, k := range keys {
		w := writers[k]
		if len(w) < 2 {
			continue
		}
		var who []string
		for node, where := range w {
			who = append(who, node+" ("+where+")")
		}
		sort.Strings(who)
		add("shard %d epoch %d: applied by %d nodes: %s", k.shard, k.epoch, len(w), strings.Join(who, ", "))
	}
	if max > 0 && len(v) > max {
		n := len(v) - max
		v = append(v[:max:max], fmt.Sprintf("... and %d more journal violations", n))
	}
	return v
}
