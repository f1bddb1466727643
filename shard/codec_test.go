package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/phasm-go/phasm/machine"
	"github.com/stretchr/testify/require"
)

func sampleMaps(t testing.TB) []Map {
	t.Helper()
	a, err := Initial(DefaultShards, []NodeID{"node-a", "node-b", "node-c"})
	require.NoError(t, err)
	unowned, err := Initial(3, nil)
	require.NoError(t, err)
	return []Map{
		a,
		unowned,
		{Epoch: 1, Shards: []Assignment{{"x", 1}}},
		{Epoch: 300, Shards: []Assignment{{"ü", 300}, {"", 7}, {"b", 1}, {"ü", 2}, {"a", 299}}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMaps(t) {
		b, err := m.MarshalBinary()
		require.NoError(t, err)
		var got Map
		require.NoError(t, got.UnmarshalBinary(b))
		require.True(t, got.Equal(m))
		again, err := got.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, b, again, "canonical: equal maps give equal bytes")

		prefixed, err := m.AppendBinary([]byte("xyz"))
		require.NoError(t, err)
		require.Equal(t, append([]byte("xyz"), b...), prefixed)
	}
}

func TestCodecGolden(t *testing.T) {
	// The encoding is persisted (Raft snapshots); pin version 1's bytes.
	m := Map{Epoch: 3, Shards: []Assignment{{"b", 2}, {"", 0}, {"a", 3}}}
	b, err := m.MarshalBinary()
	require.NoError(t, err)
	body := []byte{1, 3, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0, 1, 3}
	require.Equal(t, binary.LittleEndian.AppendUint32(body, machine.Checksum(body)), b)
}

func TestMarshalRefusesInvalidMap(t *testing.T) {
	_, err := Map{Epoch: 0, Shards: []Assignment{{"a", 1}}}.MarshalBinary()
	require.ErrorIs(t, err, ErrInvalidMap)
	_, err = Map{Epoch: 1}.MarshalBinary()
	require.ErrorIs(t, err, ErrInvalidMap)
}

// seal appends a valid checksum, so a test reaches the checks behind it.
func seal(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(body), machine.Checksum(body))
}

func TestUnmarshalRejects(t *testing.T) {
	good, err := Map{Epoch: 3, Shards: []Assignment{{"b", 2}, {"", 0}, {"a", 3}}}.MarshalBinary()
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"empty":             nil,
		"short":             {1, 2, 3},
		"bad checksum":      append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1),
		"version 2":         seal([]byte{2, 3, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0, 1, 3}),
		"non-minimal epoch": seal([]byte{1, 0x83, 0x00, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0, 1, 3}),
		"zero shards":       seal([]byte{1, 3, 0, 0}),
		"huge shard count":  seal([]byte{1, 3, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}),
		"too many owners":   seal([]byte{1, 3, 1, 2, 1, 'a', 1, 'b', 1, 3}),
		"unsorted owners":   seal([]byte{1, 3, 3, 2, 1, 'b', 1, 'a', 2, 2, 0, 0, 1, 3}),
		"duplicate owners":  seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'a', 2, 2, 0, 0, 1, 3}),
		"empty owner":       seal([]byte{1, 3, 3, 2, 0, 1, 'b', 2, 2, 0, 0, 1, 3}),
		"unused owner":      seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0, 2, 3}),
		"owner index":       seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'b', 3, 2, 0, 0, 1, 3}),
		"trailing":          seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0, 1, 3, 0}),
		"truncated shards":  seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0}),
		"epoch above map":   seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'b', 2, 2, 0, 0, 1, 4}),
		"owned at epoch 0":  seal([]byte{1, 3, 3, 2, 1, 'a', 1, 'b', 2, 0, 0, 0, 1, 3}),
		"map epoch 0":       seal([]byte{1, 0, 1, 0, 0, 0}),
	} {
		t.Run(name, func(t *testing.T) {
			m := Map{Epoch: 42}
			err := m.UnmarshalBinary(data)
			require.ErrorIs(t, err, ErrCorrupt)
			require.Equal(t, Map{Epoch: 42}, m, "a failed decode leaves the map alone")
		})
	}
}

func TestUnmarshalEveryTruncationAndBitFlip(t *testing.T) {
	for _, m := range sampleMaps(t) {
		b, err := m.MarshalBinary()
		require.NoError(t, err)
		for n := range len(b) {
			var got Map
			require.ErrorIs(t, got.UnmarshalBinary(b[:n]), ErrCorrupt, "truncated to %d", n)
		}
		for i := range len(b) * 8 {
			c := bytes.Clone(b)
			c[i/8] ^= 1 << (i % 8)
			var got Map
			require.ErrorIs(t, got.UnmarshalBinary(c), ErrCorrupt, "bit %d flipped", i)
		}
	}
}

func TestUnmarshalDoesNotAlias(t *testing.T) {
	b, err := Map{Epoch: 1, Shards: []Assignment{{"abc", 1}}}.MarshalBinary()
	require.NoError(t, err)
	var m Map
	require.NoError(t, m.UnmarshalBinary(b))
	for i := range b {
		b[i] = 0
	}
	require.Equal(t, NodeID("abc"), m.Owner(0))
}

// FuzzUnmarshalBinary: decoding never panics; what decodes is a valid map
// whose canonical encoding is exactly the input.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, m := range sampleMaps(f) {
		b, err := m.MarshalBinary()
		require.NoError(f, err)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add(seal([]byte{1, 3, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}))
	f.Add(seal([]byte{1, 1, 1, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Map
		err := m.UnmarshalBinary(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if err := m.Validate(len(m.Shards), nil); err != nil {
			t.Fatalf("decoded an invalid map: %v", err)
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decode is not canonical: %x re-encodes to %x (%v)", data, again, err)
		}
	})
}
