package faults

import (
	"strings"
	"testing"
)

func TestAuditJournal(t *testing.T) {
	good := []JournalRow{
		{Kind: "account", ID: "a", Seq: 1, Shard: 3, Writer: "n1", Epoch: 1},
		{Kind: "account", ID: "a", Seq: 2, Shard: 3, Writer: "n1", Epoch: 1},
		{Kind: "account", ID: "a", Seq: 3, Shard: 3, Writer: "n2", Epoch: 2},
		{Kind: "account", ID: "b", Seq: 1, Shard: 3, Writer: "n2", Epoch: 2},
		{Kind: "account", ID: "c", Seq: 1, Shard: 4, Writer: "n3", Epoch: 1},
	}
	if v := AuditJournal(good, 10); len(v) != 0 {
		t.Fatalf("a clean history reported: %v", v)
	}
	cases := map[string]struct {
		rows []JournalRow
		want string
	}{
		"two writers in one epoch, one entity": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 1, Shard: 1, Writer: "n1", Epoch: 5},
			{Kind: "k", ID: "a", Seq: 2, Shard: 1, Writer: "n2", Epoch: 5},
		}, "shard 1 epoch 5: applied by 2 nodes: n1 (k/a seq 1), n2 (k/a seq 2)"},
		"two writers in one epoch, two entities": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 1, Shard: 1, Writer: "n1", Epoch: 5},
			{Kind: "k", ID: "b", Seq: 1, Shard: 1, Writer: "n3", Epoch: 5},
		}, "shard 1 epoch 5: applied by 2 nodes"},
		"epoch backwards": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 1, Shard: 1, Writer: "n2", Epoch: 6},
			{Kind: "k", ID: "a", Seq: 2, Shard: 1, Writer: "n1", Epoch: 5},
		}, "a stale owner applied an input after the new owner"},
		"no epoch": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 1, Shard: 1, Writer: "n2", Epoch: 0},
		}, "applied without an ownership epoch"},
		"gap": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 1, Shard: 1, Writer: "n2", Epoch: 1},
			{Kind: "k", ID: "a", Seq: 3, Shard: 1, Writer: "n2", Epoch: 1},
		}, "seq 3 follows seq 1"},
		"completed twice": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 1, Shard: 1, Writer: "n2", Epoch: 1, Completion: true, ActionID: 7},
			{Kind: "k", ID: "a", Seq: 2, Shard: 1, Writer: "n2", Epoch: 1, Completion: true, ActionID: 8},
			{Kind: "k", ID: "a", Seq: 3, Shard: 1, Writer: "n2", Epoch: 1, Completion: true, ActionID: 7},
			{Kind: "k", ID: "b", Seq: 1, Shard: 1, Writer: "n2", Epoch: 1, Completion: true, ActionID: 8},
		}, "k/a: action 7 completed at seq 1 and again at seq 3"},
		"late start": {[]JournalRow{
			{Kind: "k", ID: "a", Seq: 2, Shard: 1, Writer: "n2", Epoch: 1},
		}, "journal starts at seq 2"},
	}
	for name, c := range cases {
		v := AuditJournal(c.rows, 10)
		if len(v) != 1 || !strings.Contains(v[0], c.want) {
			t.Errorf("%s: %q, want one violation containing %q", name, v, c.want)
		}
	}
	var many []JournalRow
	for i := range 20 {
		many = append(many, JournalRow{Kind: "k", ID: string(rune('a' + i)), Seq: 1, Shard: 1, Writer: "n1"})
	}
	if v := AuditJournal(many, 5); len(v) != 6 || v[5] != "... and 15 more journal violations" {
		t.Errorf("bounded: %q", v)
	}
}
