package account

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// The account's codecs are hand-written: fields in declaration order,
// integers as (zig-zag) varints, strings length-prefixed, so equal values
// give equal bytes. They replace the reflective machine.DefaultCodec,
// which spent most of a simulated step encoding the Recent ring. Decoders
// validate lengths and enums and return a *machine.CorruptError, never
// panic.

func corrupt(where string, err error) error {
	return &machine.CorruptError{Where: where, Reason: err.Error()}
}

var (
	errShort  = errors.New("truncated")
	errExtra  = errors.New("trailing bytes")
	errVarint = errors.New("bad varint")
)

// decoder reads what the Append functions write. The first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errVarint
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errVarint
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	x := d.b[0]
	d.b = d.b[1:]
	return x
}

// string reads a string; when it equals old it returns old, so decoding
// into a state that already holds the same names allocates nothing.
func (d *decoder) string(old string) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	p := d.b[:n]
	d.b = d.b[n:]
	if string(p) == old {
		return old
	}
	return string(p)
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errExtra
	}
	return d.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// StateCodec is the canonical codec for State.
type StateCodec struct{}

var _ machine.Codec[State] = StateCodec{}

// Append appends the encoding of *v to dst.
func (StateCodec) Append(dst []byte, v *State) ([]byte, error) {
	b := appendBool(dst, v.Closed)
	b = binary.AppendVarint(b, v.BalanceCents)
	b = binary.AppendVarint(b, v.HeldCents)
	b = binary.AppendUvarint(b, uint64(v.NextAction))
	b = binary.AppendUvarint(b, uint64(len(v.Outgoing)))
	for i := range v.Outgoing {
		o := &v.Outgoing[i]
		b = binary.AppendUvarint(b, uint64(o.ID))
		b = appendString(b, o.To)
		b = binary.AppendVarint(b, o.AmountCents)
		b = binary.AppendUvarint(b, o.Ref)
	}
	t := &v.Totals
	for _, x := range [...]int64{t.DepositedCents, t.WithdrawnCents, t.TransferredCents, t.DebitedCents, t.RefundedCents, t.CreditedCents} {
		b = binary.AppendVarint(b, x)
	}
	for _, x := range [...]uint64{t.Deposits, t.Withdrawals, t.Transfers, t.Debits, t.Refunds, t.Credits} {
		b = binary.AppendUvarint(b, x)
	}
	for i := range v.Recent {
		r := &v.Recent[i]
		b = binary.AppendUvarint(b, r.Ref)
		b = appendString(b, r.Peer)
		b = binary.AppendUvarint(b, uint64(r.TransferID))
		b = binary.AppendVarint(b, r.AmountCents)
		b = append(b, byte(r.Outcome))
	}
	return binary.AppendUvarint(b, v.RecentCount), nil
}

// Decode replaces *v with the state encoded in src. It decodes in place,
// reusing the memory of v.Outgoing and v's strings when they are equal
// (like CloneState), so v must not share its Outgoing list with another
// State. On error *v is the zero State.
func (StateCodec) Decode(src []byte, v *State) error {
	d := decoder{b: src}
	switch c := d.byte(); {
	case c > 1:
		d.err = fmt.Errorf("bad flag %d", c)
	default:
		v.Closed = c == 1
	}
	v.BalanceCents = d.varint()
	v.HeldCents = d.varint()
	v.NextAction = machine.ActionID(d.uvarint())
	n := d.uvarint()
	if d.err == nil && n > MaxOutgoing {
		d.err = fmt.Errorf("%d transfers in flight, limit %d", n, MaxOutgoing)
	}
	out := v.Outgoing[:0]
	for i := 0; d.err == nil && i < int(n); i++ {
		var prev string
		if i < len(v.Outgoing) {
			prev = v.Outgoing[i].To
		}
		out = append(out, Outgoing{ID: machine.ActionID(d.uvarint()), To: d.string(prev), AmountCents: d.varint(), Ref: d.uvarint()})
	}
	v.Outgoing = out
	if len(out) == 0 {
		v.Outgoing = nil
	}
	t := &v.Totals
	t.DepositedCents, t.WithdrawnCents, t.TransferredCents = d.varint(), d.varint(), d.varint()
	t.DebitedCents, t.RefundedCents, t.CreditedCents = d.varint(), d.varint(), d.varint()
	t.Deposits, t.Withdrawals, t.Transfers = d.uvarint(), d.uvarint(), d.uvarint()
	t.Debits, t.Refunds, t.Credits = d.uvarint(), d.uvarint(), d.uvarint()
	for i := range v.Recent {
		r := &v.Recent[i]
		r.Ref = d.uvarint()
		r.Peer = d.string(r.Peer)
		r.TransferID = machine.ActionID(d.uvarint())
		r.AmountCents = d.varint()
		r.Outcome = Outcome(d.byte())
		if d.err == nil && r.Outcome > Refunded {
			d.err = fmt.Errorf("bad outcome %d", r.Outcome)
		}
	}
	v.RecentCount = d.uvarint()
	if err := d.end(); err != nil {
		*v = State{}
		return corrupt("account state", err)
	}
	return nil
}

// InputCodec is the canonical codec for Input.
type InputCodec struct{}

var _ machine.Codec[Input] = InputCodec{}

// Append appends the encoding of *v to dst.
func (InputCodec) Append(dst []byte, v *Input) ([]byte, error) {
	b := append(dst, byte(v.Kind))
	b = binary.AppendVarint(b, v.AmountCents)
	b = appendString(b, v.To)
	b = appendString(b, v.From)
	b = binary.AppendUvarint(b, uint64(v.TransferID))
	return binary.AppendUvarint(b, v.Ref), nil
}

// Decode replaces *v with the input encoded in src.
func (InputCodec) Decode(src []byte, v *Input) error {
	d := decoder{b: src}
	in := Input{Kind: InputKind(d.byte()), AmountCents: d.varint(), To: d.string(""), From: d.string(""),
		TransferID: machine.ActionID(d.uvarint()), Ref: d.uvarint()}
	if err := d.end(); err != nil {
		*v = Input{}
		return corrupt("account input", err)
	}
	*v = in
	return nil
}

// ActionCodec is the canonical codec for Action.
type ActionCodec struct{}

var _ machine.Codec[Action] = ActionCodec{}

// Append appends the encoding of *v to dst.
func (ActionCodec) Append(dst []byte, v *Action) ([]byte, error) {
	b := append(dst, byte(v.Kind))
	b = appendString(b, v.To)
	b = binary.AppendVarint(b, v.AmountCents)
	return binary.AppendUvarint(b, v.Ref), nil
}

// Decode replaces *v with the action encoded in src.
func (ActionCodec) Decode(src []byte, v *Action) error {
	d := decoder{b: src}
	a := Action{Kind: ActionKind(d.byte()), To: d.string(""), AmountCents: d.varint(), Ref: d.uvarint()}
	if err := d.end(); err != nil {
		*v = Action{}
		return corrupt("account action", err)
	}
	*v = a
	return nil
}

// ResultCodec is the canonical codec for Result.
type ResultCodec struct{}

var _ machine.Codec[Result] = ResultCodec{}

// Append appends the encoding of *v to dst.
func (ResultCodec) Append(dst []byte, v *Result) ([]byte, error) {
	return appendString(appendBool(dst, v.Credited), v.Code), nil
}

// Decode replaces *v with the result encoded in src.
func (ResultCodec) Decode(src []byte, v *Result) error {
	d := decoder{b: src}
	c := d.byte()
	r := Result{Credited: c == 1, Code: d.string("")}
	if d.err == nil && c > 1 {
		d.err = fmt.Errorf("bad flag %d", c)
	}
	if err := d.end(); err != nil {
		*v = Result{}
		return corrupt("account result", err)
	}
	*v = r
	return nil
}
