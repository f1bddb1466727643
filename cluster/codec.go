package cluster

import (
	"encoding/binary"
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// Helpers of the canonical binary encodings (commands and snapshots):
// minimal uvarints and zig-zag varints as encoding/binary writes them,
// strings as a uvarint length and the bytes, and a trailing little-endian
// CRC-32C (machine.Checksum) of everything before it.

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendChecksum(b []byte, start int) []byte {
	return binary.LittleEndian.AppendUint32(b, machine.Checksum(b[start:]))
}

// reader decodes; the first failure sticks, and every read after it returns
// zero values, so decoders read straight through and check err once.
type reader struct {
	b    []byte
	off  int
	err  string // first failure
	at   int    // offset of the first failure
	full int    // len of the whole input, for offsets
}

// newReader verifies the checksum of data and returns a reader over the
// body. ok is false when data is too short or the checksum fails.
func newReader(data []byte) (r *reader, ok bool) {
	if len(data) < 1+4 {
		return &reader{err: fmt.Sprintf("truncated: %d bytes", len(data)), at: len(data)}, false
	}
	body := data[:len(data)-4]
	if machine.Checksum(body) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return &reader{err: "checksum mismatch", at: len(data)}, false
	}
	return &reader{b: body, full: len(data)}, true
}

func (r *reader) fail(format string, args ...any) {
	if r.err == "" {
		r.err = fmt.Sprintf(format, args...)
		r.at = r.off
	}
}

func (r *reader) failed() bool { return r.err != "" }

func (r *reader) byte(what string) byte {
	if r.failed() {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("%s: truncated", what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uvarint(what string) uint64 {
	if r.failed() {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail("%s: truncated", what)
	case n < 0:
		r.fail("%s: overflows 64 bits", what)
	case n != len(binary.AppendUvarint(nil, v)):
		r.fail("%s: non-minimal varint", what)
	}
	if r.failed() {
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint(what string) int64 {
	if r.failed() {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail("%s: truncated", what)
	case n < 0:
		r.fail("%s: overflows 64 bits", what)
	case n != len(binary.AppendVarint(nil, v)):
		r.fail("%s: non-minimal varint", what)
	}
	if r.failed() {
		return 0
	}
	r.off += n
	return v
}

// string reads a length-prefixed string of at most max bytes.
func (r *reader) string(what string, max int) string {
	l := r.uvarint(what + " length")
	if r.failed() {
		return ""
	}
	if l > uint64(max) || l > uint64(len(r.b)-r.off) {
		r.fail("%s: length %d exceeds the limit %d or the input", what, l, max)
		return ""
	}
	s := string(r.b[r.off : r.off+int(l)])
	r.off += int(l)
	return s
}

// bytes reads a length-prefixed byte string of at most max bytes; the
// result aliases the input.
func (r *reader) bytes(what string, max int) []byte {
	l := r.uvarint(what + " length")
	if r.failed() {
		return nil
	}
	if l > uint64(max) || l > uint64(len(r.b)-r.off) {
		r.fail("%s: length %d exceeds the limit %d or the input", what, l, max)
		return nil
	}
	p := r.b[r.off : r.off+int(l)]
	r.off += int(l)
	return p
}

// end fails if input remains.
func (r *reader) end() {
	if !r.failed() && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
}

// error returns the reader's failure as a *DecodeError with sentinel, or nil.
func (r *reader) error(what string, sentinel error) error {
	if !r.failed() {
		return nil
	}
	return &DecodeError{What: what, Offset: r.at, Reason: r.err, Err: sentinel}
}
