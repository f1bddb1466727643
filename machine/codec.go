package machine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"
)

// Codec encodes and decodes values of type T. Codecs used for state and
// actions must be canonical: equal values encode to equal bytes, so digests
// and the simulator's byte comparisons mean something.
//
// Decode replaces *v entirely with the decoded value and returns an error
// wrapping [ErrCorrupt] for malformed input; it never panics on bad input.
type Codec[T any] interface {
	Append(dst []byte, v *T) ([]byte, error)
	Decode(src []byte, v *T) error
}

// CanonicalMarshaler lets a type encode itself inside the default codec. The
// encoding must be canonical (equal values give equal bytes).
type CanonicalMarshaler interface {
	AppendCanonical(dst []byte) ([]byte, error)
}

// CanonicalUnmarshaler decodes what AppendCanonical wrote. It must replace
// the receiver's whole value.
type CanonicalUnmarshaler interface {
	UnmarshalCanonical(src []byte) error
}

// maxCodecDepth bounds nesting (and so stack use) for recursive types and
// cyclic pointers.
const maxCodecDepth = 256

// maxZeroSizeElems bounds the element count of a decoded slice or map whose
// elements encode to zero bytes, where the data length bounds nothing.
const maxZeroSizeElems = 1 << 20

// DefaultCodec returns the canonical binary codec for T, built by
// reflection once per call (keep the result).
//
// It supports booleans, integers, floats (-0 and NaN normalised), complex
// numbers, strings, byte slices, arrays, slices, maps (entries sorted by
// encoded key, so equal maps give equal bytes), pointers (aliasing is not
// preserved), structs of exported fields, time.Time (as an instant: the
// location is not kept), and any type whose pointer implements both
// [CanonicalMarshaler] and [CanonicalUnmarshaler].
//
// Struct fields are encoded by position, not name. An unexported field is
// an error ([ErrUnsupportedType]) unless tagged `phasm:"-"`; tagged fields
// are not state: they are not encoded and are zero after a decode (that is,
// after a rollback or a reload). Interfaces, channels and functions are not
// supported. Decoded maps are never nil; decoded empty slices are nil.
func DefaultCodec[T any]() (Codec[T], error) {
	t := reflect.TypeFor[T]()
	c, err := compileType(t, map[reflect.Type]*typeCodec{}, t.String())
	if err != nil {
		return nil, err
	}
	return defaultCodec[T]{c: c}, nil
}

type defaultCodec[T any] struct{ c *typeCodec }

func (d defaultCodec[T]) Append(dst []byte, v *T) ([]byte, error) {
	return d.c.enc(dst, reflect.ValueOf(v).Elem(), 0)
}

func (d defaultCodec[T]) Decode(src []byte, v *T) error {
	rv := reflect.ValueOf(v).Elem()
	rv.SetZero()
	r := reader{b: src}
	err := d.c.dec(&r, rv, 0)
	if err == nil && len(r.b) != 0 {
		err = errTrailing
	}
	if err != nil {
		rv.SetZero()
		return &CorruptError{Where: "value of type " + rv.Type().String(), Reason: err.Error()}
	}
	return nil
}

type typeCodec struct {
	enc func(b []byte, v reflect.Value, depth int) ([]byte, error)
	dec func(r *reader, v reflect.Value, depth int) error
	// minSize is the fewest bytes any value of the type encodes to; it bounds
	// element counts read from untrusted data.
	minSize int
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	marshalerType   = reflect.TypeFor[CanonicalMarshaler]()
	unmarshalerType = reflect.TypeFor[CanonicalUnmarshaler]()
	errTooDeep      = errors.New("nesting deeper than the codec's limit")
)

func unsupported(path, why string) error {
	return fmt.Errorf("%w: %s: %s", ErrUnsupportedType, path, why)
}

func compileType(t reflect.Type, seen map[reflect.Type]*typeCodec, path string) (*typeCodec, error) {
	if c, ok := seen[t]; ok {
		return c, nil // recursive type: filled in below before first use
	}
	c := &typeCodec{}
	seen[t] = c
	if err := fillCodec(c, t, seen, path); err != nil {
		return nil, err
	}
	return c, nil
}

func fillCodec(c *typeCodec, t reflect.Type, seen map[reflect.Type]*typeCodec, path string) error {
	pt := reflect.PointerTo(t)
	if t.Kind() != reflect.Pointer && pt.Implements(marshalerType) && pt.Implements(unmarshalerType) {
		fillSelfCodec(c, t)
		return nil
	}
	if t == timeType {
		fillTimeCodec(c)
		return nil
	}
	switch t.Kind() {
	case reflect.Bool:
		c.minSize = 1
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			if v.Bool() {
				return append(b, 1), nil
			}
			return append(b, 0), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			x, err := r.byte()
			if err != nil {
				return err
			}
			if x > 1 {
				return errors.New("bad bool")
			}
			v.SetBool(x == 1)
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		c.minSize = 1
		bits := t.Bits()
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return appendVarint(b, v.Int()), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			x, err := r.varint()
			if err != nil {
				return err
			}
			if bits < 64 && (x < -(1<<(bits-1)) || x >= 1<<(bits-1)) {
				return fmt.Errorf("integer %d overflows %s", x, v.Type())
			}
			v.SetInt(x)
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		c.minSize = 1
		bits := t.Bits()
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return appendUvarint(b, v.Uint()), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			x, err := r.uvarint()
			if err != nil {
				return err
			}
			if bits < 64 && x >= 1<<bits {
				return fmt.Errorf("integer %d overflows %s", x, v.Type())
			}
			v.SetUint(x)
			return nil
		}
	case reflect.Float32, reflect.Float64:
		fillFloatCodec(c, t.Bits())
	case reflect.Complex64, reflect.Complex128:
		fillComplexCodec(c, t.Bits()/2)
	case reflect.String:
		c.minSize = 1
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return appendString(b, v.String()), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			s, err := r.string()
			if err != nil {
				return err
			}
			v.SetString(s)
			return nil
		}
	case reflect.Slice:
		return fillSliceCodec(c, t, seen, path)
	case reflect.Array:
		return fillArrayCodec(c, t, seen, path)
	case reflect.Map:
		return fillMapCodec(c, t, seen, path)
	case reflect.Pointer:
		return fillPointerCodec(c, t, seen, path)
	case reflect.Struct:
		return fillStructCodec(c, t, seen, path)
	default:
		return unsupported(path, "kind "+t.Kind().String()+" cannot be encoded canonically")
	}
	return nil
}

func fillSelfCodec(c *typeCodec, t reflect.Type) {
	c.minSize = 1
	c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
		var p reflect.Value
		if v.CanAddr() {
			p = v.Addr()
		} else {
			p = reflect.New(t)
			p.Elem().Set(v)
		}
		body, err := p.Interface().(CanonicalMarshaler).AppendCanonical(nil)
		if err != nil {
			return b, err
		}
		out := appendUvarint(b, uint64(len(body)))
		return append(out, body...), nil
	}
	c.dec = func(r *reader, v reflect.Value, _ int) error {
		p, err := r.bytes()
		if err != nil {
			return err
		}
		return v.Addr().Interface().(CanonicalUnmarshaler).UnmarshalCanonical(p)
	}
}

func fillTimeCodec(c *typeCodec) {
	c.minSize = 1
	c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
		tm := v.Interface().(time.Time)
		if tm.IsZero() {
			return append(b, 0), nil
		}
		b = append(b, 1)
		b = appendVarint(b, tm.Unix())
		return appendUvarint(b, uint64(tm.Nanosecond())), nil
	}
	c.dec = func(r *reader, v reflect.Value, _ int) error {
		flag, err := r.byte()
		if err != nil {
			return err
		}
		switch flag {
		case 0:
			v.Set(reflect.ValueOf(time.Time{}))
			return nil
		case 1:
		default:
			return errors.New("bad time flag")
		}
		sec, err := r.varint()
		if err != nil {
			return err
		}
		nsec, err := r.uvarint()
		if err != nil {
			return err
		}
		if nsec >= 1e9 {
			return errors.New("bad nanoseconds")
		}
		v.Set(reflect.ValueOf(time.Unix(sec, int64(nsec)).UTC()))
		return nil
	}
}

func canonicalFloat64(f float64) uint64 {
	switch {
	case f == 0:
		return 0 // folds -0 into +0
	case f != f:
		return 0x7FF8000000000001
	}
	return math.Float64bits(f)
}

func canonicalFloat32(f float32) uint32 {
	switch {
	case f == 0:
		return 0
	case f != f:
		return 0x7FC00000
	}
	return math.Float32bits(f)
}

func fillFloatCodec(c *typeCodec, bits int) {
	if bits == 32 {
		c.minSize = 4
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return binary.LittleEndian.AppendUint32(b, canonicalFloat32(float32(v.Float()))), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			x, err := r.fixed32()
			if err != nil {
				return err
			}
			v.SetFloat(float64(math.Float32frombits(x)))
			return nil
		}
		return
	}
	c.minSize = 8
	c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
		return binary.LittleEndian.AppendUint64(b, canonicalFloat64(v.Float())), nil
	}
	c.dec = func(r *reader, v reflect.Value, _ int) error {
		x, err := r.fixed64()
		if err != nil {
			return err
		}
		v.SetFloat(math.Float64frombits(x))
		return nil
	}
}

func fillComplexCodec(c *typeCodec, bits int) {
	if bits == 32 {
		c.minSize = 8
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			x := v.Complex()
			b = binary.LittleEndian.AppendUint32(b, canonicalFloat32(float32(real(x))))
			return binary.LittleEndian.AppendUint32(b, canonicalFloat32(float32(imag(x)))), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			re, err := r.fixed32()
			if err != nil {
				return err
			}
			im, err := r.fixed32()
			if err != nil {
				return err
			}
			v.SetComplex(complex(float64(math.Float32frombits(re)), float64(math.Float32frombits(im))))
			return nil
		}
		return
	}
	c.minSize = 16
	c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
		x := v.Complex()
		b = binary.LittleEndian.AppendUint64(b, canonicalFloat64(real(x)))
		return binary.LittleEndian.AppendUint64(b, canonicalFloat64(imag(x))), nil
	}
	c.dec = func(r *reader, v reflect.Value, _ int) error {
		re, err := r.fixed64()
		if err != nil {
			return err
		}
		im, err := r.fixed64()
		if err != nil {
			return err
		}
		v.SetComplex(complex(math.Float64frombits(re), math.Float64frombits(im)))
		return nil
	}
}

// checkCount verifies that n elements of at least minSize bytes each can
// fit in what remains, so hostile lengths cannot force huge allocations.
func checkCount(n uint64, minSize int, r *reader) error {
	if minSize == 0 {
		if n > maxZeroSizeElems {
			return errLength
		}
		return nil
	}
	if n > uint64(len(r.b))/uint64(minSize) {
		return errLength
	}
	return nil
}

func fillSliceCodec(c *typeCodec, t reflect.Type, seen map[reflect.Type]*typeCodec, path string) error {
	c.minSize = 1
	if t.Elem().Kind() == reflect.Uint8 && !reflect.PointerTo(t.Elem()).Implements(marshalerType) {
		c.enc = func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return appendBytes(b, v.Bytes()), nil
		}
		c.dec = func(r *reader, v reflect.Value, _ int) error {
			p, err := r.bytes()
			if err != nil {
				return err
			}
			if len(p) > 0 {
				s := reflect.MakeSlice(t, len(p), len(p))
				copy(s.Bytes(), p)
				v.Set(s)
			}
			return nil
		}
		return nil
	}
	ec, err := compileType(t.Elem(), seen, path+"[]")
	if err != nil {
		return err
	}
	c.enc = func(b []byte, v reflect.Value, depth int) ([]byte, error) {
		if depth >= maxCodecDepth {
			return b, errTooDeep
		}
		n := v.Len()
		b = appendUvarint(b, uint64(n))
		var err error
		for i := 0; i < n; i++ {
			if b, err = ec.enc(b, v.Index(i), depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	c.dec = func(r *reader, v reflect.Value, depth int) error {
		if depth >= maxCodecDepth {
			return errTooDeep
		}
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if err := checkCount(n, ec.minSize, r); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		s := reflect.MakeSlice(t, int(n), int(n))
		for i := 0; i < int(n); i++ {
			if err := ec.dec(r, s.Index(i), depth+1); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	return nil
}

func fillArrayCodec(c *typeCodec, t reflect.Type, seen map[reflect.Type]*typeCodec, path string) error {
	ec, err := compileType(t.Elem(), seen, path+"[]")
	if err != nil {
		return err
	}
	n := t.Len()
	c.minSize = n * ec.minSize
	c.enc = func(b []byte, v reflect.Value, depth int) ([]byte, error) {
		var err error
		for i := 0; i < n; i++ {
			if b, err = ec.enc(b, v.Index(i), depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	c.dec = func(r *reader, v reflect.Value, depth int) error {
		for i := 0; i < n; i++ {
			if err := ec.dec(r, v.Index(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

type encodedEntry struct {
	key []byte
	val reflect.Value
}

func fillMapCodec(c *typeCodec, t reflect.Type, seen map[reflect.Type]*typeCodec, path string) error {
	kc, err := compileType(t.Key(), seen, path+"[key]")
	if err != nil {
		return err
	}
	vc, err := compileType(t.Elem(), seen, path+"[value]")
	if err != nil {
		return err
	}
	c.minSize = 1
	c.enc = func(b []byte, v reflect.Value, depth int) ([]byte, error) {
		if depth >= maxCodecDepth {
			return b, errTooDeep
		}
		n := v.Len()
		b = appendUvarint(b, uint64(n))
		if n == 0 {
			return b, nil
		}
		entries := make([]encodedEntry, 0, n)
		var keys []byte
		var err error
		it := v.MapRange()
		for it.Next() {
			start := len(keys)
			if keys, err = kc.enc(keys, it.Key(), depth+1); err != nil {
				return b, err
			}
			entries = append(entries, encodedEntry{key: keys[start:len(keys):len(keys)], val: it.Value()})
		}
		slices.SortFunc(entries, func(x, y encodedEntry) int { return bytes.Compare(x.key, y.key) })
		for i := range entries {
			if i > 0 && bytes.Equal(entries[i-1].key, entries[i].key) {
				return b, fmt.Errorf("%w: %s: two map keys encode alike (NaN or -0 keys?)", ErrUnsupportedType, path)
			}
			b = append(b, entries[i].key...)
			if b, err = vc.enc(b, entries[i].val, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	c.dec = func(r *reader, v reflect.Value, depth int) error {
		if depth >= maxCodecDepth {
			return errTooDeep
		}
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if err := checkCount(n, kc.minSize+vc.minSize, r); err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, int(n))
		for i := 0; i < int(n); i++ {
			k := reflect.New(t.Key()).Elem()
			if err := kc.dec(r, k, depth+1); err != nil {
				return err
			}
			if m.MapIndex(k).IsValid() {
				return errors.New("duplicate map key")
			}
			e := reflect.New(t.Elem()).Elem()
			if err := vc.dec(r, e, depth+1); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	}
	return nil
}

func fillPointerCodec(c *typeCodec, t reflect.Type, seen map[reflect.Type]*typeCodec, path string) error {
	ec, err := compileType(t.Elem(), seen, "*"+path)
	if err != nil {
		return err
	}
	c.minSize = 1
	c.enc = func(b []byte, v reflect.Value, depth int) ([]byte, error) {
		if v.IsNil() {
			return append(b, 0), nil
		}
		if depth >= maxCodecDepth {
			return b, errTooDeep
		}
		return ec.enc(append(b, 1), v.Elem(), depth+1)
	}
	c.dec = func(r *reader, v reflect.Value, depth int) error {
		if depth >= maxCodecDepth {
			return errTooDeep
		}
		flag, err := r.byte()
		if err != nil {
			return err
		}
		switch flag {
		case 0:
			return nil
		case 1:
			p := reflect.New(t.Elem())
			if err := ec.dec(r, p.Elem(), depth+1); err != nil {
				return err
			}
			v.Set(p)
			return nil
		default:
			return errors.New("bad pointer flag")
		}
	}
	return nil
}

func fillStructCodec(c *typeCodec, t reflect.Type, seen map[reflect.Type]*typeCodec, path string) error {
	type field struct {
		index int
		c     *typeCodec
	}
	var fields []field
	var problems []error
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("phasm") == "-" || f.Name == "_" {
			continue
		}
		fpath := path + "." + f.Name
		if !f.IsExported() {
			problems = append(problems, unsupported(fpath, "unexported field (export it or tag it `phasm:\"-\"`)"))
			continue
		}
		fc, err := compileType(f.Type, seen, fpath)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		fields = append(fields, field{index: i, c: fc})
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	for _, f := range fields {
		c.minSize += f.c.minSize
	}
	c.enc = func(b []byte, v reflect.Value, depth int) ([]byte, error) {
		var err error
		for _, f := range fields {
			if b, err = f.c.enc(b, v.Field(f.index), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	c.dec = func(r *reader, v reflect.Value, depth int) error {
		for _, f := range fields {
			if err := f.c.dec(r, v.Field(f.index), depth); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}
