package machine_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/machine"
)

type inner struct {
	Name  string
	Tags  []string
	Score float64
}

type everything struct {
	B     bool
	I8    int8
	I     int
	U16   uint16
	U     uint64
	F32   float32
	F     float64
	C     complex128
	S     string
	Raw   []byte
	Arr   [3]int32
	Slice []inner
	Map   map[string]int
	Nest  map[int]map[string]bool
	Ptr   *inner
	Nil   *inner
	When  time.Time
	Dur   time.Duration
	Cache int `phasm:"-"`
	Self  Celsius
}

// Celsius encodes itself.
type Celsius struct{ Tenths int }

func (c *Celsius) AppendCanonical(dst []byte) ([]byte, error) {
	return append(dst, byte(c.Tenths), byte(c.Tenths>>8)), nil
}

func (c *Celsius) UnmarshalCanonical(src []byte) error {
	if len(src) != 2 {
		return errors.New("celsius: want 2 bytes")
	}
	c.Tenths = int(int16(uint16(src[0]) | uint16(src[1])<<8))
	return nil
}

func sample() everything {
	return everything{
		B: true, I8: -7, I: -1 << 40, U16: 65535, U: math.MaxUint64, F32: 1.5, F: -2.25, C: complex(1, -1),
		S: "héllo", Raw: []byte{0, 1, 2}, Arr: [3]int32{-1, 0, 1},
		Slice: []inner{{Name: "a", Tags: []string{"x", "y"}, Score: 0.5}, {Name: "b"}},
		Map:   map[string]int{"one": 1, "two": 2, "three": 3, "four": 4, "five": 5},
		Nest:  map[int]map[string]bool{3: {"t": true}, -1: {}},
		Ptr:   &inner{Name: "p"},
		When:  time.Date(2026, 11, 27, 10, 30, 0, 123, time.FixedZone("X", 3600)),
		Dur:   90 * time.Second,
		Cache: 42,
		Self:  Celsius{Tenths: -215},
	}
}

func TestDefaultCodecRoundTrip(t *testing.T) {
	c, err := machine.DefaultCodec[everything]()
	require.NoError(t, err)
	v := sample()
	b, err := c.Append(nil, &v)
	require.NoError(t, err)
	var got everything
	require.NoError(t, c.Decode(b, &got))
	want := sample()
	want.Cache = 0              // not state: zero after decoding
	want.When = want.When.UTC() // an instant; the location is not kept
	assert.True(t, got.When.Equal(want.When))
	got.When, want.When = time.Time{}, time.Time{}
	assert.Equal(t, want, got)
}

func TestDefaultCodecIsCanonical(t *testing.T) {
	c, err := machine.DefaultCodec[everything]()
	require.NoError(t, err)
	// Maps built in different orders, -0 and +0, NaNs: equal values, equal bytes.
	a, b := sample(), sample()
	b.Map = map[string]int{}
	for _, k := range []string{"five", "four", "three", "two", "one"} {
		b.Map[k] = a.Map[k]
	}
	a.F, b.F = 0, math.Copysign(0, -1)
	a.F32, b.F32 = float32(math.NaN()), float32(math.Float32frombits(0x7fc00001))
	first, err := c.Append(nil, &a)
	require.NoError(t, err)
	for i := 0; i < 50; i++ { // map iteration order varies between calls
		again, err := c.Append(nil, &b)
		require.NoError(t, err)
		require.Equal(t, first, again)
	}
}

func TestDefaultCodecRejectsUnsupportedTypesListingEveryProblem(t *testing.T) {
	type bad struct {
		Fn     func()
		hidden int
		Any    any
		Ch     chan int
		Fine   int
		Ignore func() `phasm:"-"`
	}
	_, err := machine.DefaultCodec[bad]()
	require.Error(t, err)
	assert.ErrorIs(t, err, machine.ErrUnsupportedType)
	for _, field := range []string{".Fn", ".hidden", ".Any", ".Ch"} {
		assert.Contains(t, err.Error(), field)
	}
	assert.NotContains(t, err.Error(), ".Ignore")
}

func TestDefaultCodecRecursiveTypes(t *testing.T) {
	type node struct {
		Value int
		Next  *node
		Kids  []node
	}
	c, err := machine.DefaultCodec[node]()
	require.NoError(t, err)
	v := node{Value: 1, Next: &node{Value: 2}, Kids: []node{{Value: 3, Next: &node{Value: 4}}}}
	b, err := c.Append(nil, &v)
	require.NoError(t, err)
	var got node
	require.NoError(t, c.Decode(b, &got))
	assert.Equal(t, v, got)

	// A cycle is an error, not a stack overflow.
	cyc := &node{Value: 1}
	cyc.Next = cyc
	_, err = c.Append(nil, cyc)
	require.Error(t, err)
}

func TestDefaultCodecNeverPanicsOnGarbage(t *testing.T) {
	c, err := machine.DefaultCodec[everything]()
	require.NoError(t, err)
	v := sample()
	good, err := c.Append(nil, &v)
	require.NoError(t, err)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), good...)
		switch r.IntN(3) {
		case 0: // flip bytes
			for j := 0; j < 1+r.IntN(4); j++ {
				b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
			}
		case 1: // truncate
			b = b[:r.IntN(len(b))]
		default: // random bytes
			b = make([]byte, r.IntN(64))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
		}
		var got everything
		if err := c.Decode(b, &got); err != nil {
			require.ErrorIs(t, err, machine.ErrCorrupt)
		}
	}
}

func TestDefaultCodecBoundsHostileLengths(t *testing.T) {
	c, err := machine.DefaultCodec[[]int]()
	require.NoError(t, err)
	// A slice claiming 2^40 elements in 6 bytes must not allocate them.
	var got []int
	err = c.Decode([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x20}, &got)
	require.ErrorIs(t, err, machine.ErrCorrupt)
	cz, err := machine.DefaultCodec[[]struct{}]()
	require.NoError(t, err)
	var zs []struct{}
	require.ErrorIs(t, cz.Decode([]byte{0x80, 0x80, 0x80, 0x80, 0x10}, &zs), machine.ErrCorrupt)
}

func TestDecodedMapsAreNeverNil(t *testing.T) {
	type s struct{ M map[string]int }
	c, err := machine.DefaultCodec[s]()
	require.NoError(t, err)
	b, err := c.Append(nil, &s{})
	require.NoError(t, err)
	var got s
	require.NoError(t, c.Decode(b, &got))
	require.NotNil(t, got.M)
	got.M["x"] = 1 // a rolled-back state stays writable
}

func TestIntegerOverflowIsCorruption(t *testing.T) {
	c64, err := machine.DefaultCodec[int64]()
	require.NoError(t, err)
	c8, err := machine.DefaultCodec[int8]()
	require.NoError(t, err)
	v := int64(1000)
	b, err := c64.Append(nil, &v)
	require.NoError(t, err)
	var small int8
	require.ErrorIs(t, c8.Decode(b, &small), machine.ErrCorrupt)
}

func TestErrorEncodingKeepsCodes(t *testing.T) {
	errLow := machine.NewError("bank.low", "insufficient funds")
	b := machine.AppendError(nil, errLow)
	got, err := machine.DecodeError(b)
	require.NoError(t, err)
	assert.ErrorIs(t, got, errLow, "a decoded error still matches its sentinel")
	assert.Equal(t, "insufficient funds", got.Error())
	none, err := machine.DecodeError(machine.AppendError(nil, nil))
	require.NoError(t, err)
	assert.NoError(t, none)
	plain, err := machine.DecodeError(machine.AppendError(nil, errors.New("plain")))
	require.NoError(t, err)
	assert.Equal(t, "plain", plain.Error())
	_, err = machine.DecodeError([]byte{1, 5})
	assert.ErrorIs(t, err, machine.ErrCorrupt)
	assert.True(t, machine.SameError(errLow, got))
	assert.False(t, machine.SameError(errLow, nil))
}
