package account

import (
	"errors"
	"fmt"

	"github.com/phasm-go/phasm/machine"
)

// KindName is the name of the account kind; it is the first part of every
// idempotency key an account's actions carry.
const KindName = "account"

// Limits of one account.
const (
	// MaxOutgoing bounds the transfers an account may have in flight;
	// another transfer is rejected with ErrTooManyTransfers.
	MaxOutgoing = 64
	// RecentTransfers is how many transfers an account remembers in
	// State.Recent.
	RecentTransfers = 32
	// MaxAmountCents bounds one deposit, withdrawal or transfer.
	MaxAmountCents = 1 << 40
	// MaxBalanceCents bounds an account's balance plus holds; a deposit or
	// credit beyond it is rejected with ErrTooMuch, so sums cannot
	// overflow.
	MaxBalanceCents = 1 << 60
)

// InputKind says what an input asks for.
type InputKind uint8

// The inputs.
const (
	// Deposit adds AmountCents from outside the bank.
	Deposit InputKind = iota + 1
	// Withdraw takes AmountCents out of the bank.
	Withdraw
	// Transfer moves AmountCents to the account named To, tagged with the
	// client's Ref.
	Transfer
	// Credit is delivered by another account's transfer (never sent by
	// clients): From is the source account, TransferID the source's action
	// ID, Ref the client's tag. Build it with CreditInput.
	Credit
	// Close closes an empty account for good.
	Close
)

// String names the input kind.
func (k InputKind) String() string {
	switch k {
	case Deposit:
		return "deposit"
	case Withdraw:
		return "withdraw"
	case Transfer:
		return "transfer"
	case Credit:
		return "credit"
	case Close:
		return "close"
	default:
		return fmt.Sprintf("InputKind(%d)", uint8(k))
	}
}

// Input is a request to one account.
type Input struct {
	Kind        InputKind
	AmountCents int64
	// To is the destination account's entity ID (Transfer).
	To string
	// From is the source account's entity ID (Credit).
	From string
	// TransferID is the source's action ID for the transfer (Credit).
	TransferID machine.ActionID
	// Ref is the client's tag for a transfer, kept in State.Recent on both
	// sides; zero means none.
	Ref uint64
}

// ActionKind says what a tracked action asks for.
type ActionKind uint8

// RequestCredit asks the destination account to credit a transfer: an
// entity-to-entity action. Its result is the destination's reply.
const RequestCredit ActionKind = 1

// Action is a tracked action of an account.
type Action struct {
	Kind        ActionKind
	To          string
	AmountCents int64
	Ref         uint64
}

// Result is the outcome of RequestCredit: whether the destination credited
// the transfer, and if not, the error code of its rejection.
type Result struct {
	Credited bool
	Code     string
}

// Outgoing is a transfer in flight: debited and held, awaiting the
// destination's reply.
type Outgoing struct {
	ID          machine.ActionID
	To          string
	AmountCents int64
	Ref         uint64
}

// Outcome says how a transfer ended for one account.
type Outcome uint8

// The outcomes kept in State.Recent.
const (
	// Credited: an incoming transfer was applied.
	Credited Outcome = iota + 1
	// Settled: an outgoing transfer was credited at its destination.
	Settled
	// Refunded: an outgoing transfer was rejected and refunded.
	Refunded
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Credited:
		return "credited"
	case Settled:
		return "settled"
	case Refunded:
		return "refunded"
	default:
		return fmt.Sprintf("Outcome(%d)", uint8(o))
	}
}

// TransferRecord is one finished transfer in State.Recent.
type TransferRecord struct {
	Ref uint64
	// Peer is the other account: the source of a credit, the destination
	// of a settled or refunded transfer.
	Peer string
	// TransferID is the source's action ID; with the source's name it
	// identifies the transfer (it is the key machine.IdempotencyKey builds).
	TransferID  machine.ActionID
	AmountCents int64
	Outcome     Outcome
}

// Totals are an account's running aggregates, for invariants and for
// outside checks (see the package documentation).
type Totals struct {
	DepositedCents   int64
	WithdrawnCents   int64
	TransferredCents int64 // accepted outgoing transfers
	DebitedCents     int64 // outgoing transfers settled (credited at the destination)
	RefundedCents    int64 // outgoing transfers refunded
	CreditedCents    int64 // incoming transfers applied

	Deposits    uint64
	Withdrawals uint64
	Transfers   uint64
	Debits      uint64
	Refunds     uint64
	Credits     uint64
}

// State is one account.
type State struct {
	Closed       bool
	BalanceCents int64 // spendable
	HeldCents    int64 // debited for transfers in flight
	// NextAction is the last action ID used; IDs are never reused.
	NextAction machine.ActionID
	// Outgoing lists the transfers in flight, oldest first.
	Outgoing []Outgoing
	Totals   Totals
	// Recent is a ring of the last RecentTransfers finished transfers;
	// RecentCount counts every record ever written, so the newest is at
	// (RecentCount-1) % RecentTransfers.
	Recent      [RecentTransfers]TransferRecord
	RecentCount uint64
}

// The vocabulary, for brevity.
type (
	// In is an account's input as Transition receives it.
	In = machine.Input[Input, Result]
	// Actions collects an account's actions.
	Actions = machine.Actions[Action, machine.None]
	// Kind is the account kind.
	Kind = machine.Kind[State, Input, Action, Result, machine.None]
	// Driver runs one account.
	Driver = machine.Driver[State, Input, Action, Result, machine.None]
	// Options configure the account kind.
	Options = machine.Options[State, Input, Action, Result, machine.None]
)

// Errors an account rejects inputs with. Check them with errors.Is.
var (
	ErrBadAmount            = machine.NewError("bank.bad_amount", "bank: amount must be positive and at most MaxAmountCents")
	ErrInsufficientFunds    = machine.NewError("bank.insufficient_funds", "bank: insufficient funds")
	ErrNoDestination        = machine.NewError("bank.no_destination", "bank: transfer without a destination account")
	ErrNoSource             = machine.NewError("bank.no_source", "bank: credit without a source account or transfer ID")
	ErrClosed               = machine.NewError("bank.closed", "bank: account is closed")
	ErrNotEmpty             = machine.NewError("bank.not_empty", "bank: only an empty account without transfers in flight can be closed")
	ErrTooMuch              = machine.NewError("bank.too_much", "bank: balance would exceed MaxBalanceCents")
	ErrTooManyTransfers     = machine.NewError("bank.too_many_transfers", "bank: too many transfers in flight")
	ErrAlreadyCredited      = machine.NewError("bank.already_credited", "bank: transfer already credited")
	ErrUnknownInput         = machine.NewError("bank.unknown_input", "bank: unknown input kind")
	ErrUnexpectedCompletion = machine.NewError("bank.unexpected_completion", "bank: completion for no transfer in flight")
)

// Machine is the account machine.
type Machine struct{}

var _ machine.Machine[State, Input, Action, Result, machine.None] = Machine{}

// Transition applies a deposit, withdrawal, transfer, credit or close, or
// the destination's reply to a transfer. Every input is validated before
// anything is changed.
func (Machine) Transition(s *State, in In, out *Actions) error {
	if c := in.Completion; c != nil {
		return settle(s, c)
	}
	v := &in.Value
	switch v.Kind {
	case Deposit:
		if err := checkAmount(v.AmountCents); err != nil {
			return err
		}
		if s.Closed {
			return ErrClosed
		}
		if s.BalanceCents+s.HeldCents > MaxBalanceCents-v.AmountCents {
			return ErrTooMuch
		}
		s.BalanceCents += v.AmountCents
		s.Totals.DepositedCents += v.AmountCents
		s.Totals.Deposits++
		return nil
	case Withdraw:
		if err := checkAmount(v.AmountCents); err != nil {
			return err
		}
		if s.Closed {
			return ErrClosed
		}
		if v.AmountCents > s.BalanceCents {
			return ErrInsufficientFunds
		}
		s.BalanceCents -= v.AmountCents
		s.Totals.WithdrawnCents += v.AmountCents
		s.Totals.Withdrawals++
		return nil
	case Transfer:
		switch {
		case checkAmount(v.AmountCents) != nil:
			return ErrBadAmount
		case v.To == "":
			return ErrNoDestination
		case s.Closed:
			return ErrClosed
		case v.AmountCents > s.BalanceCents:
			return ErrInsufficientFunds
		case len(s.Outgoing) >= MaxOutgoing:
			return ErrTooManyTransfers
		}
		s.NextAction++
		id := s.NextAction
		s.BalanceCents -= v.AmountCents
		s.HeldCents += v.AmountCents
		s.Totals.TransferredCents += v.AmountCents
		s.Totals.Transfers++
		s.Outgoing = append(s.Outgoing, Outgoing{ID: id, To: v.To, AmountCents: v.AmountCents, Ref: v.Ref})
		return out.Track(id, Action{Kind: RequestCredit, To: v.To, AmountCents: v.AmountCents, Ref: v.Ref})
	case Credit:
		switch {
		case checkAmount(v.AmountCents) != nil:
			return ErrBadAmount
		case v.From == "" || v.TransferID == 0:
			return ErrNoSource
		case s.Closed:
			return ErrClosed
		case s.creditedBefore(v.From, v.TransferID):
			return ErrAlreadyCredited
		case s.BalanceCents+s.HeldCents > MaxBalanceCents-v.AmountCents:
			return ErrTooMuch
		}
		s.BalanceCents += v.AmountCents
		s.Totals.CreditedCents += v.AmountCents
		s.Totals.Credits++
		s.remember(TransferRecord{Ref: v.Ref, Peer: v.From, TransferID: v.TransferID, AmountCents: v.AmountCents, Outcome: Credited})
		return nil
	case Close:
		if s.Closed {
			return ErrClosed
		}
		if s.BalanceCents != 0 || len(s.Outgoing) != 0 {
			return ErrNotEmpty
		}
		s.Closed = true
		return nil
	default:
		return ErrUnknownInput
	}
}

func checkAmount(cents int64) error {
	if cents <= 0 || cents > MaxAmountCents {
		return ErrBadAmount
	}
	return nil
}

// keepOutgoing is the capacity up to which an emptied Outgoing list keeps
// its memory.
const keepOutgoing = 4

// settle applies the destination's reply to an outgoing transfer.
func settle(s *State, c *machine.Completion[Result]) error {
	i := s.outgoing(c.ActionID)
	if i < 0 {
		return ErrUnexpectedCompletion
	}
	o := s.Outgoing[i]
	s.HeldCents -= o.AmountCents
	rec := TransferRecord{Ref: o.Ref, Peer: o.To, TransferID: o.ID, AmountCents: o.AmountCents}
	if c.Result.Credited {
		s.Totals.DebitedCents += o.AmountCents
		s.Totals.Debits++
		rec.Outcome = Settled
	} else {
		s.BalanceCents += o.AmountCents
		s.Totals.RefundedCents += o.AmountCents
		s.Totals.Refunds++
		rec.Outcome = Refunded
	}
	// Keep the order (oldest first) so Restore re-emits in ID order.
	copy(s.Outgoing[i:], s.Outgoing[i+1:])
	s.Outgoing[len(s.Outgoing)-1] = Outgoing{}
	s.Outgoing = s.Outgoing[:len(s.Outgoing)-1]
	if len(s.Outgoing) == 0 && cap(s.Outgoing) > keepOutgoing {
		// An empty list encodes the same whatever its capacity: a small
		// one is kept for the next transfer (the common case, one in
		// flight, then allocates nothing here nor in CloneState), a large
		// one is released, as an idle account should hold little memory.
		s.Outgoing = nil
	}
	s.remember(rec)
	return nil
}

func (s *State) outgoing(id machine.ActionID) int {
	for i := range s.Outgoing {
		if s.Outgoing[i].ID == id {
			return i
		}
	}
	return -1
}

func (s *State) creditedBefore(from string, id machine.ActionID) bool {
	for i := range s.Recent {
		r := &s.Recent[i]
		// The ID first: it rarely matches, so most entries cost one test.
		if r.TransferID == id && r.Outcome == Credited && r.Peer == from {
			return true
		}
	}
	return false
}

func (s *State) remember(r TransferRecord) {
	s.Recent[s.RecentCount%RecentTransfers] = r
	s.RecentCount++
}

// RecentRecords returns the remembered transfers, oldest first.
func (s *State) RecentRecords() []TransferRecord {
	n := min(s.RecentCount, RecentTransfers)
	out := make([]TransferRecord, 0, n)
	for i := s.RecentCount - n; i < s.RecentCount; i++ {
		out = append(out, s.Recent[i%RecentTransfers])
	}
	return out
}

// Restore re-emits RequestCredit for every transfer in flight, under its
// original ID. Delivering it again is safe: the destination recognises the
// key and answers with its first reply.
func (Machine) Restore(s *State, out *Actions) error {
	for _, o := range s.Outgoing {
		if err := out.Track(o.ID, Action{Kind: RequestCredit, To: o.To, AmountCents: o.AmountCents, Ref: o.Ref}); err != nil {
			return err
		}
	}
	return nil
}

// Invariants checks one account: no negative balance, the hold equals the
// transfers in flight, action IDs unique and below the counter, and the
// running totals add up.
func (Machine) Invariants(s *State) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.BalanceCents < 0 || s.HeldCents < 0 {
		bad("negative money: balance %d, held %d", s.BalanceCents, s.HeldCents)
	}
	var held int64
	for i, o := range s.Outgoing {
		held += o.AmountCents
		if o.ID == 0 || o.ID > s.NextAction {
			bad("transfer action ID %d not in 1..%d", o.ID, s.NextAction)
		}
		if i > 0 && o.ID <= s.Outgoing[i-1].ID {
			bad("transfer action IDs not unique and increasing: %d after %d", o.ID, s.Outgoing[i-1].ID)
		}
		if o.AmountCents <= 0 || o.To == "" {
			bad("transfer %d malformed: %+v", o.ID, o)
		}
	}
	if held != s.HeldCents {
		bad("held %d but transfers in flight add up to %d", s.HeldCents, held)
	}
	if len(s.Outgoing) > MaxOutgoing {
		bad("%d transfers in flight, limit %d", len(s.Outgoing), MaxOutgoing)
	}
	t := &s.Totals
	if in, outs := t.DepositedCents+t.CreditedCents, t.WithdrawnCents+t.DebitedCents; s.BalanceCents+s.HeldCents != in-outs {
		bad("money not conserved: balance %d + held %d != deposited %d + credited %d - withdrawn %d - debited %d",
			s.BalanceCents, s.HeldCents, t.DepositedCents, t.CreditedCents, t.WithdrawnCents, t.DebitedCents)
	}
	if t.TransferredCents != t.DebitedCents+t.RefundedCents+s.HeldCents {
		bad("transferred %d != debited %d + refunded %d + held %d", t.TransferredCents, t.DebitedCents, t.RefundedCents, s.HeldCents)
	}
	if t.Transfers != t.Debits+t.Refunds+uint64(len(s.Outgoing)) {
		bad("%d transfers != %d debits + %d refunds + %d in flight", t.Transfers, t.Debits, t.Refunds, len(s.Outgoing))
	}
	if s.Closed && (s.BalanceCents != 0 || len(s.Outgoing) != 0) {
		bad("closed account holds money: balance %d, %d transfers in flight", s.BalanceCents, len(s.Outgoing))
	}
	return errors.Join(errs...)
}

// CreditInput is the input the runtime delivers to the destination of
// RequestCredit action t of the account named from; deliver it with
// machine.IdempotencyKey of (from, t.ID) as request ID.
func CreditInput(from string, t machine.Tracked[Action]) Input {
	return Input{Kind: Credit, AmountCents: t.Action.AmountCents, From: from, TransferID: t.ID, Ref: t.Action.Ref}
}

// CreditResult turns the destination's reply to a Credit input (nil when
// it accepted) into the result the source receives. ErrAlreadyCredited
// means the credit was applied by an earlier delivery: it counts as
// credited.
func CreditResult(err error) Result {
	if err == nil || errors.Is(err, ErrAlreadyCredited) {
		return Result{Credited: true}
	}
	code := machine.ErrorCode(err)
	if code == "" {
		code = "bank.unknown"
	}
	return Result{Credited: false, Code: code}
}

// NewKind returns the account kind with default limits, its canonical
// codecs and a fast state copy.
func NewKind() (*Kind, error) { return NewKindWith(Options{}) }

// NewKindWith returns the account kind with opts; nil codecs and Clone get
// the account's own (StateCodec, InputCodec, ActionCodec, ResultCodec,
// CloneState).
func NewKindWith(opts Options) (*Kind, error) {
	if opts.StateCodec == nil {
		opts.StateCodec = StateCodec{}
	}
	if opts.InputCodec == nil {
		opts.InputCodec = InputCodec{}
	}
	if opts.ActionCodec == nil {
		opts.ActionCodec = ActionCodec{}
	}
	if opts.ResultCodec == nil {
		opts.ResultCodec = ResultCodec{}
	}
	if opts.Clone == nil {
		opts.Clone = CloneState
	}
	return machine.NewKind[State, Input, Action, Result, machine.None](KindName, Machine{}, opts)
}

// CloneState deep-copies an account's state into dst, reusing dst's
// memory. dst and src must not share their Outgoing list.
func CloneState(dst, src *State) {
	out := dst.Outgoing
	*dst = *src
	if src.Outgoing == nil {
		dst.Outgoing = nil
		return
	}
	dst.Outgoing = append(out[:0], src.Outgoing...)
}
