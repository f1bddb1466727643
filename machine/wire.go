package machine

import (
	"encoding/binary"
	"errors"
)

// Low-level helpers shared by the canonical codec, records and snapshots.

var (
	errShort    = errors.New("unexpected end of data")
	errTrailing = errors.New("trailing bytes after value")
	errVarint   = errors.New("malformed varint")
	errLength   = errors.New("length exceeds remaining data")
)

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// reader consumes encoded data front to back; every method checks bounds.
type reader struct {
	b []byte
}

func (r *reader) byte() (byte, error) {
	if len(r.b) == 0 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errVarint
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *reader) varint() (int64, error) {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errVarint
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *reader) fixed64() (uint64, error) {
	if len(r.b) < 8 {
		return 0, errShort
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v, nil
}

func (r *reader) fixed32() (uint32, error) {
	if len(r.b) < 4 {
		return 0, errShort
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

// bytes returns a length-prefixed byte string aliasing the input.
func (r *reader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, errLength
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p, nil
}

func (r *reader) string() (string, error) {
	p, err := r.bytes()
	return string(p), err
}

func (r *reader) error() (error, error) {
	flag, err := r.byte()
	if err != nil {
		return nil, err
	}
	switch flag {
	case 0:
		return nil, nil
	case 1:
		code, err := r.string()
		if err != nil {
			return nil, err
		}
		msg, err := r.string()
		if err != nil {
			return nil, err
		}
		return &Error{Code: code, Message: msg}, nil
	default:
		return nil, errors.New("bad error flag")
	}
}
