package clinic

import (
	"encoding/binary"
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// The clinic's codecs are hand-written: fixed-width little-endian fields in
// declaration order, so equal values give equal bytes (canonical) and the
// simulator's per-step encodings cost a few copies. Decoders validate every
// field the machine relies on and return a *machine.CorruptError, never
// panic.

var le = binary.LittleEndian

func corrupt(where, format string, args ...any) error {
	return &machine.CorruptError{Where: where, Reason: fmt.Sprintf(format, args...)}
}

const (
	stateHeaderBytes = 8 + WorkDays*8 + 3*2 + 2*8 + 7*8 + 2
	requestBytes     = 8 + 8 + 8 + 6 + MaxRanges*2
)

// StateCodec is the canonical codec for State.
type StateCodec struct{}

var _ machine.Codec[State] = StateCodec{}

// Append appends the encoding of *v to dst.
func (StateCodec) Append(dst []byte, v *State) ([]byte, error) {
	n := len(v.Requests)
	if n > MaxRequests {
		return dst, fmt.Errorf("clinic: %d requests, limit %d", n, MaxRequests)
	}
	start := len(dst)
	size := stateHeaderBytes + n*requestBytes
	dst = append(dst, make([]byte, size)...)
	b := dst[start:]
	le.PutUint64(b, uint64(v.NextAction))
	for d := range WorkDays {
		le.PutUint64(b[8+8*d:], v.Busy[d])
	}
	b = b[8+WorkDays*8:]
	le.PutUint16(b, v.Pending)
	le.PutUint16(b[2:], v.Bookings)
	le.PutUint16(b[4:], v.BookedQuarters)
	le.PutUint64(b[6:], uint64(v.PaidCents))
	le.PutUint64(b[14:], uint64(v.PriceCents))
	st := &v.Stats
	for i, x := range [7]uint64{st.Requests, st.Confirmed, st.NoSlot, st.SlotTaken, st.Cancelled, st.Released, st.ReleaseFailures} {
		le.PutUint64(b[22+8*i:], x)
	}
	le.PutUint16(b[78:], uint16(n))
	b = b[80:]
	for i := range v.Requests {
		putRequest((*[requestBytes]byte)(b[i*requestBytes:]), &v.Requests[i])
	}
	return dst, nil
}

// Decode replaces *v with the state encoded in src. It reuses the memory
// of v.Requests (like CloneState), so v must not share it with another
// State.
func (StateCodec) Decode(src []byte, v *State) error {
	reqs := v.Requests[:0]
	*v = State{}
	if len(src) < stateHeaderBytes {
		return corrupt("clinic state", "%d bytes, want at least %d", len(src), stateHeaderBytes)
	}
	var s State
	s.NextAction = machine.ActionID(le.Uint64(src))
	for d := range WorkDays {
		s.Busy[d] = le.Uint64(src[8+8*d:])
	}
	b := src[8+WorkDays*8:]
	s.Pending = le.Uint16(b)
	s.Bookings = le.Uint16(b[2:])
	s.BookedQuarters = le.Uint16(b[4:])
	s.PaidCents = int64(le.Uint64(b[6:]))
	s.PriceCents = int64(le.Uint64(b[14:]))
	var st [7]uint64
	for i := range st {
		st[i] = le.Uint64(b[22+8*i:])
	}
	s.Stats = Stats{Requests: st[0], Confirmed: st[1], NoSlot: st[2], SlotTaken: st[3], Cancelled: st[4], Released: st[5], ReleaseFailures: st[6]}
	n := int(le.Uint16(b[78:]))
	b = b[80:]
	if n > MaxRequests || len(b) != n*requestBytes {
		return corrupt("clinic state", "%d requests in %d bytes", n, len(b))
	}
	if n > 0 {
		s.Requests = append(reqs, make([]Request, n)...)
	}
	for i := range s.Requests {
		r := &s.Requests[i]
		if !getRequest((*[requestBytes]byte)(b[i*requestBytes:]), r) {
			return corrupt("clinic state", "request %d malformed: %+v", i, *r)
		}
	}
	*v = s
	return nil
}

// putRequest writes r into its fixed-size slot (an array pointer: no
// bounds checks in the hot loop).
func putRequest(b *[requestBytes]byte, r *Request) {
	le.PutUint64(b[0:8], r.Ref)
	le.PutUint64(b[8:16], uint64(r.Action))
	le.PutUint64(b[16:24], uint64(r.PaidCents))
	b[24] = byte(r.Day)
	b[25] = r.Start
	b[26] = byte(r.Type)
	b[27] = byte(r.Status)
	b[28] = 0
	if r.Auto {
		b[28] = 1
	}
	b[29] = r.PrefDays
	p := &r.PrefRanges
	b[30], b[31], b[32], b[33] = p[0][0], p[0][1], p[1][0], p[1][1]
	b[34], b[35], b[36], b[37] = p[2][0], p[2][1], p[3][0], p[3][1]
}

// getRequest reads a request from its slot and reports whether it is
// well formed.
func getRequest(b *[requestBytes]byte, r *Request) bool {
	r.Ref = le.Uint64(b[0:8])
	r.Action = machine.ActionID(le.Uint64(b[8:16]))
	r.PaidCents = int64(le.Uint64(b[16:24]))
	r.Day = Weekday(b[24])
	r.Start = b[25]
	r.Type = AppointmentType(b[26])
	r.Status = Status(b[27])
	r.Auto = b[28] == 1
	r.PrefDays = b[29]
	ok := b[28] <= 1 && r.Type.valid() && r.Day >= Monday && r.Day <= Friday && r.Start < QuartersPerDay &&
		r.Status >= AwaitingPayment && r.Status <= Cancelling && r.PrefDays < 1<<WorkDays
	for j := range MaxRanges {
		lo, hi := b[30+2*j], b[31+2*j]
		ok = ok && lo <= hi && hi <= QuartersPerDay
		r.PrefRanges[j][0], r.PrefRanges[j][1] = lo, hi
	}
	return ok
}

const inputBytes = 1 + 8 + 1 + 1 + 2 + WorkDays + MaxRanges*4

// InputCodec is the canonical codec for Input.
type InputCodec struct{}

var _ machine.Codec[Input] = InputCodec{}

// Append appends the encoding of *v to dst.
func (InputCodec) Append(dst []byte, v *Input) ([]byte, error) {
	var b [inputBytes]byte
	b[0] = byte(v.Kind)
	le.PutUint64(b[1:], v.Ref)
	b[9] = byte(v.Type)
	b[10] = byte(v.Day)
	le.PutUint16(b[11:], uint16(v.Start))
	for i, d := range v.Prefer.Days {
		b[13+i] = byte(d)
	}
	for i, r := range v.Prefer.Ranges {
		le.PutUint16(b[18+4*i:], uint16(r.From))
		le.PutUint16(b[20+4*i:], uint16(r.To))
	}
	return append(dst, b[:]...), nil
}

// Decode replaces *v with the input encoded in src.
func (InputCodec) Decode(src []byte, v *Input) error {
	*v = Input{}
	if len(src) != inputBytes {
		return corrupt("clinic input", "%d bytes, want %d", len(src), inputBytes)
	}
	v.Kind = InputKind(src[0])
	v.Ref = le.Uint64(src[1:])
	v.Type = AppointmentType(src[9])
	v.Day = Weekday(src[10])
	v.Start = Clock(le.Uint16(src[11:]))
	for i := range v.Prefer.Days {
		v.Prefer.Days[i] = Weekday(src[13+i])
	}
	for i := range v.Prefer.Ranges {
		v.Prefer.Ranges[i] = TimeRange{From: Clock(le.Uint16(src[18+4*i:])), To: Clock(le.Uint16(src[20+4*i:]))}
	}
	return nil
}

const actionBytes = 1 + 8 + 8

// ActionCodec is the canonical codec for Action.
type ActionCodec struct{}

var _ machine.Codec[Action] = ActionCodec{}

// Append appends the encoding of *v to dst.
func (ActionCodec) Append(dst []byte, v *Action) ([]byte, error) {
	var b [actionBytes]byte
	b[0] = byte(v.Kind)
	le.PutUint64(b[1:], v.Ref)
	le.PutUint64(b[9:], uint64(v.AmountCents))
	return append(dst, b[:]...), nil
}

// Decode replaces *v with the action encoded in src.
func (ActionCodec) Decode(src []byte, v *Action) error {
	*v = Action{}
	if len(src) != actionBytes {
		return corrupt("clinic action", "%d bytes, want %d", len(src), actionBytes)
	}
	*v = Action{Kind: ActionKind(src[0]), Ref: le.Uint64(src[1:]), AmountCents: int64(le.Uint64(src[9:]))}
	return nil
}

// ResultCodec is the canonical codec for Result.
type ResultCodec struct{}

var _ machine.Codec[Result] = ResultCodec{}

// Append appends the encoding of *v to dst.
func (ResultCodec) Append(dst []byte, v *Result) ([]byte, error) {
	ok := byte(0)
	if v.OK {
		ok = 1
	}
	return append(dst, ok, byte(v.Reason)), nil
}

// Decode replaces *v with the result encoded in src.
func (ResultCodec) Decode(src []byte, v *Result) error {
	*v = Result{}
	if len(src) != 2 || src[0] > 1 {
		return corrupt("clinic result", "malformed %x", src)
	}
	*v = Result{OK: src[0] == 1, Reason: Reason(src[1])}
	return nil
}
