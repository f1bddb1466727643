package kinds

import (
	"context"

	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// The names of the hosted kinds.
const (
	Account = account.KindName // "account"
	Clinic  = clinic.KindName  // "clinic"
	Counter = "counter"
)

// ErrUnknownKind: no hosted kind has that name.
var ErrUnknownKind = errors.New("kinds: unknown kind")

// Descriptor is the type-erased view of one kind: JSON in and out, and
// journal decoding and replay. It needs no host.
type Descriptor interface {
	// Name returns the kind's name.
	Name() string
	// ParseInput turns a JSON input into the kind's Go input; problems
	// wrap ErrBadInput.
	ParseInput(data []byte) (any, error)
	// Journal decodes what a store loaded for one entity.
	Journal(id string, l persistence.Loaded) (Journal, error)
	// Replay replays what a store loaded through the machine, calling step
	// after every record (and once for the snapshot). A record that does
	// not replay as recorded returns a *machine.NondeterminismError; damaged
	// data a *machine.CorruptError. The summary is returned on success.
	Replay(id string, l persistence.Loaded, step func(Step)) (ReplaySummary, error)
}

// Journal is one entity's decoded durable data.
type Journal struct {
	Entity      string  `json:"entity"`       // kind/id
	LastSeq     uint64  `json:"last_seq"`     // the entity's last sequence number
	SnapshotSeq *uint64 `json:"snapshot_seq"` // the snapshot the records follow, or null
	Records     []Step  `json:"records"`      // the journal records after the snapshot
}

// Step is one journal record, decoded, and (in a replay) its outcome and
// the digest of the state after it.
type Step struct {
	Seq       uint64    `json:"seq"`                  // the sequence number after the record
	Time      time.Time `json:"time"`                 // the acceptance time
	Kind      string    `json:"kind"`                 // input, completion, rejected, snapshot
	RequestID string    `json:"request_id,omitempty"` // the caller's idempotency key
	ActionID  uint64    `json:"action_id,omitempty"`  // the completed action (completion)
	Input     any       `json:"input,omitempty"`      // the input, as JSON (input, rejected)
	Result    any       `json:"result,omitempty"`     // the action's result, as JSON (completion)
	// Error is the recorded rejection.
	Error *ErrorJSON `json:"error,omitempty"`
	// Digest is the digest the record carries, hex, or "".
	Digest string `json:"digest,omitempty"`
	// Outcome and StateDigest are filled by Replay: "accepted",
	// "rejected", or "nondeterminism: ..." for the failing step.
	Outcome     string `json:"outcome,omitempty"`
	StateDigest string `json:"state_digest,omitempty"`
}

// ErrorJSON is a machine error as JSON.
type ErrorJSON struct {
	Code    string `json:"code"`    // the stable code, e.g. bank.insufficient_funds
	Message string `json:"message"` // the human message
}

// ErrorOf returns the JSON form of a machine error.
func ErrorOf(err error) *ErrorJSON {
	if err == nil {
		return nil
	}
	return &ErrorJSON{Code: machine.ErrorCode(err), Message: err.Error()}
}

// ReplaySummary is what a successful replay found at the end.
type ReplaySummary struct {
	Records int `json:"records"` // journal records replayed
	// Outstanding counts the tracked actions Restore re-emits.
	Outstanding int `json:"outstanding"`
	// RestoreComplete reports that Restore re-emitted exactly the
	// outstanding actions the journal left (a machine bug otherwise).
	RestoreComplete bool   `json:"restore_complete"`
	StateDigest     string `json:"state_digest"`
	// State is the state after the replay.
	State any `json:"state"`
}

func digestHex(d uint32) string { return fmt.Sprintf("%08x", d) }

type spec[S, I, A, R, U any] struct {
	kind       *machine.Kind[S, I, A, R, U]
	parse      func([]byte) (I, error)
	show       func(I) any
	showResult func(R) any
}

// Name, ParseInput, Journal and Replay implement Descriptor.
func (s *spec[S, I, A, R, U]) Name() string { return s.kind.Name() }

func (s *spec[S, I, A, R, U]) ParseInput(data []byte) (any, error) { return s.parse(data) }

func (s *spec[S, I, A, R, U]) decode(e machine.Entity, rec machine.Record) (Step, error) {
	st := Step{Seq: rec.Seq, Time: rec.InputTime(), Kind: rec.Kind.String(), RequestID: rec.RequestID, ActionID: uint64(rec.ActionID)}
	if rec.HasDigest {
		st.Digest = digestHex(rec.Digest)
	}
	corrupt := func(where string, err error) error {
		return &machine.CorruptError{Entity: e, Seq: rec.Seq, Where: where, Reason: err.Error()}
	}
	switch rec.Kind {
	case machine.RecordCompletion:
		var r R
		if err := s.kind.ResultCodec().Decode(rec.Payload, &r); err != nil {
			return st, corrupt("completion result", err)
		}
		st.Result = s.showResult(r)
	default:
		var in I
		if err := s.kind.InputCodec().Decode(rec.Payload, &in); err != nil {
			return st, corrupt("input", err)
		}
		st.Input = s.show(in)
		if rec.Kind == machine.RecordRejected {
			rerr, err := machine.DecodeError(rec.Err)
			if err != nil {
				return st, corrupt("rejection", err)
			}
			st.Error = ErrorOf(rerr)
		}
	}
	return st, nil
}

func (s *spec[S, I, A, R, U]) Journal(id string, l persistence.Loaded) (Journal, error) {
	e := machine.Entity{Kind: s.Name(), ID: id}
	j := Journal{Entity: e.String(), LastSeq: l.LastSeq, Records: []Step{}}
	if l.Snapshot != nil {
		seq := l.Snapshot.Seq
		j.SnapshotSeq = &seq
	}
	for _, rec := range l.Records {
		st, err := s.decode(e, rec)
		if err != nil {
			return j, err
		}
		j.Records = append(j.Records, st)
	}
	return j, nil
}

func (s *spec[S, I, A, R, U]) Replay(id string, l persistence.Loaded, step func(Step)) (ReplaySummary, error) {
	e := machine.Entity{Kind: s.Name(), ID: id}
	var d *machine.Driver[S, I, A, R, U]
	var err error
	if l.Snapshot != nil {
		if d, err = s.kind.FromSnapshot(id, *l.Snapshot); err != nil {
			return ReplaySummary{}, err
		}
		dg, err := d.StateDigest()
		if err != nil {
			return ReplaySummary{}, err
		}
		step(Step{Seq: l.Snapshot.Seq, Kind: "snapshot", Outcome: "loaded", StateDigest: digestHex(dg)})
	} else if d, err = s.kind.NewDriver(id); err != nil {
		return ReplaySummary{}, err
	}
	for _, rec := range l.Records {
		st, err := s.decode(e, rec)
		if err != nil {
			return ReplaySummary{}, err
		}
		if err := d.Replay(rec); err != nil {
			st.Outcome = "failed: " + err.Error()
			var nd *machine.NondeterminismError
			if errors.As(err, &nd) {
				st.Outcome = "nondeterminism: " + nd.What
			}
			step(st)
			return ReplaySummary{}, err
		}
		st.Outcome = "accepted"
		if rec.Kind == machine.RecordRejected {
			st.Outcome = "rejected"
		}
		dg, err := d.StateDigest()
		if err != nil {
			return ReplaySummary{}, err
		}
		st.StateDigest = digestHex(dg)
		step(st)
	}
	var fx machine.Effects[A, U]
	rep, err := d.Restore(&fx)
	if err != nil {
		return ReplaySummary{}, err
	}
	dg, err := d.StateDigest()
	if err != nil {
		return ReplaySummary{}, err
	}
	return ReplaySummary{Records: len(l.Records), Outstanding: len(fx.Tracked), RestoreComplete: rep.Complete(),
		StateDigest: digestHex(dg), State: *d.State()}, nil
}

// Catalog returns the descriptors of the hosted kinds, by name. It builds
// the kinds with the same options Register uses.
func Catalog() (map[string]Descriptor, error) {
	ak, ck, nk, err := newKinds()
	if err != nil {
		return nil, err
	}
	return catalogOf(ak, ck, nk), nil
}

func catalogOf(ak *account.Kind, ck *clinic.Kind, nk *machine.Kind[counter.State, counter.Input, machine.None, machine.None, machine.None]) map[string]Descriptor {
	return map[string]Descriptor{
		Account: &spec[account.State, account.Input, account.Action, account.Result, machine.None]{kind: ak, parse: parseAccount, show: showAccount, showResult: showAccountResult},
		Clinic:  &spec[clinic.State, clinic.Input, clinic.Action, clinic.Result, machine.None]{kind: ck, parse: parseClinic, show: showClinic, showResult: showClinicResult},
		Counter: &spec[counter.State, counter.Input, machine.None, machine.None, machine.None]{kind: nk, parse: parseCounter, show: showCounter, showResult: showNone},
	}
}

func newKinds() (*account.Kind, *clinic.Kind, *machine.Kind[counter.State, counter.Input, machine.None, machine.None, machine.None], error) {
	ak, err1 := account.NewKind()
	ck, err2 := clinic.NewKind()
	nk, err3 := counter.NewKind(0)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, nil, nil, err
	}
	return ak, ck, nk, nil
}

// Names returns the hosted kinds' names, sorted.
func Names() []string {
	n := []string{Account, Clinic, Counter}
	sort.Strings(n)
	return n
}

// Options configure the executors Register installs.
type Options struct {
	// Payment configures the clinic's simulated payment gateway.
	Payment GatewayOptions
}

// Set is the kinds registered on one host, with typed references and the
// type-erased operations the admin API needs.
type Set struct {
	Host     *actor.Host                                  // the host the kinds are registered on
	Accounts *actor.KindRef[account.State, account.Input] // the bank accounts
	Clinics  *actor.KindRef[clinic.State, clinic.Input]   // the dentist clinics' calendars
	Counters *actor.KindRef[counter.State, counter.Input] // the counters
	// Gateway is the clinic's simulated payment provider.
	Gateway *Gateway

	catalog map[string]Descriptor
	ops     map[string]hostOps
}

type hostOps struct {
	send  func(ctx context.Context, id string, in any, opts ...actor.CallOption) error
	query func(ctx context.Context, id string) (any, error)
}

func opsFor[S, I any](ref *actor.KindRef[S, I]) hostOps {
	return hostOps{
		send: func(ctx context.Context, id string, in any, opts ...actor.CallOption) error {
			v, ok := in.(I)
			if !ok {
				return fmt.Errorf("%w: %T for kind %q", actor.ErrBadInput, in, ref.Name())
			}
			return ref.Ref(id).Ask(ctx, v, opts...)
		},
		query: func(ctx context.Context, id string) (any, error) { return ref.Ref(id).Query(ctx) },
	}
}

// Register registers the account, clinic and counter kinds on h, which
// must not be started yet, with their executors: the account's credit is
// the built-in entity-to-entity delivery, the clinic's payments go to a
// new Gateway.
func Register(h *actor.Host, opts Options) (*Set, error) {
	gw, err := NewGateway(opts.Payment)
	if err != nil {
		return nil, err
	}
	ak, ck, nk, err := newKinds()
	if err != nil {
		return nil, err
	}
	s := &Set{Host: h, Gateway: gw, catalog: catalogOf(ak, ck, nk)}
	s.Accounts, err = actor.Register(h, ak, actor.KindOptions[account.State, account.Input, account.Action, account.Result, machine.None]{
		Deliver: func(from machine.Entity, t machine.Tracked[account.Action]) (actor.Delivery, bool) {
			if t.Action.Kind != account.RequestCredit {
				return actor.Delivery{}, false
			}
			return actor.Delivery{To: machine.Entity{Kind: account.KindName, ID: t.Action.To}, Input: account.CreditInput(from.ID, t)}, true
		},
		Reply: func(_ account.Action, err error) account.Result { return account.CreditResult(err) },
	})
	if err != nil {
		return nil, err
	}
	s.Clinics, err = actor.Register(h, ck, actor.KindOptions[clinic.State, clinic.Input, clinic.Action, clinic.Result, machine.None]{
		Execute: gw.Execute,
		Failure: failure,
	})
	if err != nil {
		return nil, err
	}
	s.Counters, err = actor.Register(h, nk, actor.KindOptions[counter.State, counter.Input, machine.None, machine.None, machine.None]{})
	if err != nil {
		return nil, err
	}
	s.ops = map[string]hostOps{Account: opsFor(s.Accounts), Clinic: opsFor(s.Clinics), Counter: opsFor(s.Counters)}
	return s, nil
}

// RegisterClient registers the account, clinic and counter kinds on a
// cluster client, which must not be started yet, with the same kinds and
// wire codecs Register installs on the nodes. The Set's references route
// to the entities' owners; Host and Gateway are nil (the executors run on
// the nodes).
func RegisterClient(c *actor.Client) (*Set, error) {
	ak, ck, nk, err := newKinds()
	if err != nil {
		return nil, err
	}
	s := &Set{catalog: catalogOf(ak, ck, nk)}
	if s.Accounts, err = actor.RegisterClient(c, ak); err != nil {
		return nil, err
	}
	if s.Clinics, err = actor.RegisterClient(c, ck); err != nil {
		return nil, err
	}
	if s.Counters, err = actor.RegisterClient(c, nk); err != nil {
		return nil, err
	}
	s.ops = map[string]hostOps{Account: opsFor(s.Accounts), Clinic: opsFor(s.Clinics), Counter: opsFor(s.Counters)}
	return s, nil
}

// Descriptor returns the descriptor of a kind, or an error wrapping
// ErrUnknownKind.
func (s *Set) Descriptor(kind string) (Descriptor, error) {
	d, ok := s.catalog[kind]
	if !ok {
		return nil, fmt.Errorf("%w %q (hosted: %v)", ErrUnknownKind, kind, Names())
	}
	return d, nil
}

// Send parses a JSON input for entity kind/id and asks the entity. It
// returns nil when the machine accepted it, the machine's error when it
// rejected it, an error wrapping ErrBadInput or ErrUnknownKind for a bad
// request, or a runtime error (package actor).
func (s *Set) Send(ctx context.Context, kind, id string, input []byte, requestID string) error {
	d, err := s.Descriptor(kind)
	if err != nil {
		return err
	}
	in, err := d.ParseInput(input)
	if err != nil {
		return err
	}
	var opts []actor.CallOption
	if requestID != "" {
		opts = append(opts, actor.WithRequestID(requestID))
	}
	return s.ops[kind].send(ctx, id, in, opts...)
}

// Query returns the state of entity kind/id (read in order with its
// inputs, see actor.Ref.Query).
func (s *Set) Query(ctx context.Context, kind, id string) (any, error) {
	if _, err := s.Descriptor(kind); err != nil {
		return nil, err
	}
	return s.ops[kind].query(ctx, id)
}

// NewRequestID returns a fresh random request ID.
func NewRequestID() string { return actor.NewRequestID() }
