package machine

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine/kv"
)

// Defaults for [Options]. A zero field means its default.
const (
	DefaultMaxOutstanding  = 10_000
	DefaultRequestWindow   = 1_000
	DefaultMaxPayloadBytes = 1 << 20
)

// Options configure a [Kind]. Every field is optional; zero means the
// documented default. Negative numbers are invalid unless a field says
// otherwise.
type Options[S, I, A, R, U any] struct {
	// Codecs; nil means DefaultCodec for the type. State and action codecs
	// must be canonical.
	StateCodec     Codec[S]
	InputCodec     Codec[I]
	ActionCodec    Codec[A]
	ResultCodec    Codec[R]
	UntrackedCodec Codec[U]

	// Clone, when set, deep-copies src into dst. The driver then keeps the
	// committed state as a copy (cheap for flat states) instead of as its
	// encoding. It must copy everything the codec encodes.
	Clone func(dst, src *S)

	// MaxActions bounds the actions one Transition or Restore may emit
	// (default DefaultMaxActions).
	MaxActions int
	// MaxOutstanding bounds the tracked actions an entity may have
	// outstanding; a transition that would exceed it fails with
	// ErrTooManyOutstanding (default DefaultMaxOutstanding).
	MaxOutstanding int
	// RequestWindow is how many recent request IDs an entity remembers, with
	// their replies, to answer retries (default DefaultRequestWindow).
	RequestWindow int
	// DigestEveryRecords puts a state digest in every Nth journal record so
	// replay detects nondeterminism (default 1: every record; -1: never).
	DigestEveryRecords int
	// MaxPayloadBytes bounds one encoded input or result (default
	// DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// MaxWrites bounds the distinct keys one transition of a
	// database-backed state (see [ViewState]) may write; more fail the
	// write with kv.ErrTooManyWrites (default kv.DefaultMaxWrites).
	MaxWrites int
}

// Kind is a machine together with its codecs and limits: everything the
// entities of one kind share. Build it once with [NewKind] and create a
// [Driver] per entity with NewDriver. A Kind is safe for concurrent use.
type Kind[S, I, A, R, U any] struct {
	name    string
	m       Machine[S, I, A, R, U]
	init    Initializer[S]
	state   Codec[S]
	input   Codec[I]
	action  Codec[A]
	result  Codec[R]
	untrack Codec[U]
	clone   func(dst, src *S)

	maxActions     int
	maxOutstanding int
	window         int
	digestEvery    int
	maxPayload     int
	maxWrites      int
	hasView        bool
}

// NewKind validates opts and returns the kind. Every problem found is
// reported at once, joined, each wrapping [ErrInvalidConfig] or
// [ErrUnsupportedType].
func NewKind[S, I, A, R, U any](name string, m Machine[S, I, A, R, U], opts Options[S, I, A, R, U]) (*Kind[S, I, A, R, U], error) {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: kind %q: %s", ErrInvalidConfig, name, fmt.Sprintf(format, args...)))
	}
	if name == "" {
		bad("name is empty")
	}
	if m == nil {
		bad("machine is nil")
	}
	for _, f := range []struct {
		name string
		v    int
		min  int
	}{
		{"MaxActions", opts.MaxActions, 0},
		{"MaxOutstanding", opts.MaxOutstanding, 0},
		{"RequestWindow", opts.RequestWindow, 0},
		{"DigestEveryRecords", opts.DigestEveryRecords, -1},
		{"MaxPayloadBytes", opts.MaxPayloadBytes, 0},
		{"MaxWrites", opts.MaxWrites, 0},
	} {
		if f.v < f.min {
			bad("%s is %d, must be at least %d", f.name, f.v, f.min)
		}
	}
	k := &Kind[S, I, A, R, U]{
		name: name, m: m, clone: opts.Clone,
		maxActions:     orDefault(opts.MaxActions, DefaultMaxActions),
		maxOutstanding: orDefault(opts.MaxOutstanding, DefaultMaxOutstanding),
		window:         orDefault(opts.RequestWindow, DefaultRequestWindow),
		digestEvery:    orDefault(opts.DigestEveryRecords, 1),
		maxPayload:     orDefault(opts.MaxPayloadBytes, DefaultMaxPayloadBytes),
		maxWrites:      orDefault(opts.MaxWrites, kv.DefaultMaxWrites),
	}
	_, k.hasView = any(new(S)).(ViewState)
	if init, ok := m.(Initializer[S]); ok {
		k.init = init
	}
	k.state = codecOrDefault(opts.StateCodec, &problems)
	k.input = codecOrDefault(opts.InputCodec, &problems)
	k.action = codecOrDefault(opts.ActionCodec, &problems)
	k.result = codecOrDefault(opts.ResultCodec, &problems)
	k.untrack = codecOrDefault(opts.UntrackedCodec, &problems)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return k, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func codecOrDefault[T any](c Codec[T], problems *[]error) Codec[T] {
	if c != nil {
		return c
	}
	d, err := DefaultCodec[T]()
	if err != nil {
		*problems = append(*problems, err)
	}
	return d
}

// HasView reports whether the kind's state is database-backed: its pointer
// implements [ViewState].
func (k *Kind[S, I, A, R, U]) HasView() bool { return k.hasView }

// MaxWrites returns the per-transition limit of keys written to the view.
func (k *Kind[S, I, A, R, U]) MaxWrites() int { return k.maxWrites }

// Name returns the kind's name.
func (k *Kind[S, I, A, R, U]) Name() string { return k.name }

// Machine returns the kind's machine.
func (k *Kind[S, I, A, R, U]) Machine() Machine[S, I, A, R, U] { return k.m }

// StateCodec returns the codec used for states.
func (k *Kind[S, I, A, R, U]) StateCodec() Codec[S] { return k.state }

// InputCodec returns the codec used for normal inputs.
func (k *Kind[S, I, A, R, U]) InputCodec() Codec[I] { return k.input }

// ActionCodec returns the codec used for tracked actions.
func (k *Kind[S, I, A, R, U]) ActionCodec() Codec[A] { return k.action }

// ResultCodec returns the codec used for results of tracked actions.
func (k *Kind[S, I, A, R, U]) ResultCodec() Codec[R] { return k.result }

// UntrackedCodec returns the codec used for untracked actions.
func (k *Kind[S, I, A, R, U]) UntrackedCodec() Codec[U] { return k.untrack }

// MaxActions returns the per-call action limit.
func (k *Kind[S, I, A, R, U]) MaxActions() int { return k.maxActions }

// CopyState deep-copies src into dst with the kind's Clone function, or by
// encoding and decoding when none is set.
func (k *Kind[S, I, A, R, U]) CopyState(dst, src *S) error {
	if k.clone != nil {
		k.clone(dst, src)
		return nil
	}
	b, err := k.state.Append(nil, src)
	if err != nil {
		return err
	}
	return k.state.Decode(b, dst)
}

// InitState sets *s to the state of a fresh entity: the zero value, then
// the machine's Init when it implements [Initializer].
func (k *Kind[S, I, A, R, U]) InitState(s *S) {
	var zero S
	*s = zero
	if k.init != nil {
		k.init.Init(s)
	}
}
