package shard

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/phasm-go/phasm/machine"
	"github.com/stretchr/testify/require"
)

// updateGolden rewrites testdata/golden.txt. Never use it to make a failing
// golden test pass: the entity-to-shard hash is a persisted format, and a
// changed shard re-homes every entity of every deployed cluster.
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden.txt (only for a new, empty file)")

const goldenPath = "testdata/golden.txt"

// goldenCases is the set of (shards, entity) pairs the golden file pins.
func goldenCases() (cases []struct {
	shards int
	e      machine.Entity
}) {
	kinds := []string{"", "account", "order", "clinic-calendar", "ÄÖÜ", "日本語", "a\x00b", "kind with spaces"}
	ids := []string{"", "0", "1", "42", "alice", "bob", "ünïcödé", "😀", "a/b", "\xff\xfe", strings.Repeat("x", 300)}
	counts := []int{1, 2, 3, 7, 16, 255, 256, 1000, 4096, 65535, 65536}
	for _, n := range counts {
		for _, k := range kinds {
			for _, id := range ids {
				cases = append(cases, struct {
					shards int
					e      machine.Entity
				}{n, machine.Entity{Kind: k, ID: id}})
			}
		}
	}
	for i := range 200 {
		cases = append(cases, struct {
			shards int
			e      machine.Entity
		}{DefaultShards, machine.Entity{Kind: "user", ID: "user-" + strconv.Itoa(i)}})
	}
	return cases
}

// TestGolden pins Of (and its 64-bit key) for every pair in the golden
// file. If it fails, the hash changed: revert the change. See Of.
func TestGolden(t *testing.T) {
	if *updateGolden {
		var b strings.Builder
		b.WriteString("# shards<TAB>kind<TAB>id<TAB>shard<TAB>key: the persisted entity-to-shard hash. DO NOT EDIT.\n")
		for _, c := range goldenCases() {
			fmt.Fprintf(&b, "%d\t%s\t%s\t%d\t%016x\n", c.shards, strconv.Quote(c.e.Kind), strconv.Quote(c.e.ID), Of(c.e, c.shards), key(c.e))
		}
		require.NoError(t, os.WriteFile(goldenPath, []byte(b.String()), 0o644))
	}
	f, err := os.Open(goldenPath)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		lines++
		fields := strings.Split(line, "\t")
		require.Len(t, fields, 5, "line %q", line)
		shards, err := strconv.Atoi(fields[0])
		require.NoError(t, err)
		kind, err := strconv.Unquote(fields[1])
		require.NoError(t, err)
		id, err := strconv.Unquote(fields[2])
		require.NoError(t, err)
		want, err := strconv.ParseUint(fields[3], 10, 32)
		require.NoError(t, err)
		wantKey, err := strconv.ParseUint(fields[4], 16, 64)
		require.NoError(t, err)
		e := machine.Entity{Kind: kind, ID: id}
		if got := key(e); got != wantKey {
			t.Errorf("key(%q, %q) = %016x, golden %016x: the persisted hash changed", kind, id, got, wantKey)
		}
		if got := Of(e, shards); got != ID(want) {
			t.Errorf("Of(%q, %q, %d) = %d, golden %d: the persisted hash changed", kind, id, shards, got, want)
		}
	}
	require.NoError(t, sc.Err())
	require.Equal(t, len(goldenCases()), lines, "the golden file lost lines")
}

// TestOfPinned repeats a few golden values in code, so that regenerating
// the golden file cannot hide a change of the hash.
func TestOfPinned(t *testing.T) {
	for _, c := range []struct {
		kind, id string
		shards   int
		want     ID
		key      uint64
	}{
		{"", "", 1, 0, 0xa5e0dba6c385580a},
		{"order", "42", 3, 0, 0xaee91440d4085e3b},
		{"account", "", 256, 225, 0x61cc7df51a3f159b},
		{"account", "alice", 256, 32, 0x05493ebf11ed9f2e},
		{"a\x00b", "ünïcödé", 1000, 194, 0xaed711114417ce4e},
		{"日本語", "😀", 65536, 49363, 0xd4ff410a89faa978},
	} {
		e := machine.Entity{Kind: c.kind, ID: c.id}
		require.Equal(t, c.key, key(e), "key(%q, %q)", c.kind, c.id)
		require.Equal(t, c.want, Of(e, c.shards), "Of(%q, %q, %d)", c.kind, c.id, c.shards)
		require.Equal(t, c.key, Key(e), "Key(%q, %q)", c.kind, c.id)
		require.Equal(t, c.want, OfKey(Key(e), c.shards), "OfKey(Key(%q, %q), %d)", c.kind, c.id, c.shards)
	}
	require.Equal(t, ID(0), OfKey(1, 0), "an invalid count gives shard 0, as Of does")
}

func TestOfFraming(t *testing.T) {
	// Length-prefixed framing: moving bytes between kind and ID changes
	// the key.
	pairs := [][2]machine.Entity{
		{{Kind: "ab", ID: "c"}, {Kind: "a", ID: "bc"}},
		{{Kind: "", ID: "abc"}, {Kind: "abc", ID: ""}},
		{{Kind: "a", ID: ""}, {Kind: "", ID: "a"}},
		{{Kind: "", ID: ""}, {Kind: "\x00", ID: ""}},
	}
	for _, p := range pairs {
		require.NotEqual(t, key(p[0]), key(p[1]), "%q vs %q", p[0], p[1])
	}
}

func TestOfRange(t *testing.T) {
	e := machine.Entity{Kind: "k", ID: "i"}
	require.Equal(t, ID(0), Of(e, 0), "invalid count gives 0, not a panic")
	require.Equal(t, ID(0), Of(e, -5))
	require.Equal(t, ID(0), Of(e, MaxShards+1))
	require.Equal(t, ID(0), Of(e, 1))
	for i := range 10000 {
		e := machine.Entity{Kind: "k", ID: strconv.Itoa(i)}
		for _, n := range []int{2, 3, 256, 1000, MaxShards} {
			require.Less(t, int(Of(e, n)), n)
		}
	}
	require.NoError(t, CheckShards(1))
	require.NoError(t, CheckShards(MaxShards))
	require.ErrorIs(t, CheckShards(0), ErrInvalidShards)
	require.ErrorIs(t, CheckShards(MaxShards+1), ErrInvalidShards)
}

// TestOfUniform checks the spread on fixed inputs: every shard within five
// standard deviations of the mean (a deterministic test, not a flaky one).
func TestOfUniform(t *testing.T) {
	for _, n := range []int{3, 10, 256, 1000} {
		const per = 1000
		counts := make([]int, n)
		for i := range n * per {
			counts[Of(machine.Entity{Kind: "account", ID: "acct-" + strconv.Itoa(i)}, n)]++
		}
		for s, c := range counts {
			require.InDelta(t, per, c, 5*31.7, "shards=%d shard %d", n, s)
		}
	}
}

// TestOfConsistent checks the jump hash property: growing the count from n
// to n+1 moves an entity only to the new shard, and moves about 1/(n+1).
func TestOfConsistent(t *testing.T) {
	for _, n := range []int{1, 7, 255, 256} {
		moved := 0
		const total = 20000
		for i := range total {
			e := machine.Entity{Kind: "order", ID: strconv.Itoa(i)}
			a, b := Of(e, n), Of(e, n+1)
			if a != b {
				require.Equal(t, ID(n), b, "entity %d moved from %d to an old shard", i, a)
				moved++
			}
		}
		require.InDelta(t, float64(total)/float64(n+1), moved, 0.2*float64(total)/float64(n+1)+50)
	}
}

func BenchmarkOf(b *testing.B) {
	e := machine.Entity{Kind: "account", ID: "alice-0123456789"}
	for b.Loop() {
		_ = Of(e, DefaultShards)
	}
}
