package actor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor/wire"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence/memstore"
)

func counterCodec(t *testing.T) kindCodecs {
	t.Helper()
	k, err := counter.NewKind(100)
	require.NoError(t, err)
	return newKindCodec(k)
}

func TestKindCodecRoundTrips(t *testing.T) {
	k := counterCodec(t)
	b, err := k.encodeInput(counter.Input{Add: 42})
	require.NoError(t, err)
	in, err := k.decodeInput(b)
	require.NoError(t, err)
	require.Equal(t, counter.Input{Add: 42}, in)

	b, err = k.encodeState(counter.State{Value: 7, Increments: 2})
	require.NoError(t, err)
	s, err := k.decodeState(b)
	require.NoError(t, err)
	require.Equal(t, counter.State{Value: 7, Increments: 2}, s)

	b, err = k.encodeResult(machine.None{})
	require.NoError(t, err)
	r, err := k.decodeResult(b)
	require.NoError(t, err)
	require.Equal(t, machine.None{}, r)

	_, err = k.encodeInput("not an input")
	require.ErrorIs(t, err, ErrBadInput)
	_, err = k.decodeInput([]byte{0xff, 0xff, 0xff})
	require.ErrorIs(t, err, ErrBadEnvelope)
	require.ErrorIs(t, err, machine.ErrCorrupt)
}

func TestOutcomeRoundTrips(t *testing.T) {
	k := counterCodec(t)
	roundTrip := func(query bool, resp response, err error) (*wire.Envelope, response, error) {
		out := &wire.Envelope{}
		encodeOutcome(out, k, query, resp, err)
		back, berr := decodeOutcome(out, k, query)
		return out, back, berr
	}
	t.Run("ok", func(t *testing.T) {
		env, resp, err := roundTrip(false, response{}, nil)
		require.Equal(t, wire.Envelope_STATUS_OK, env.Status)
		require.NoError(t, err)
		require.NoError(t, resp.err)
	})
	t.Run("query state", func(t *testing.T) {
		env, resp, err := roundTrip(true, response{state: counter.State{Value: 3, Increments: 1}}, nil)
		require.Equal(t, wire.Envelope_STATUS_OK, env.Status)
		require.NoError(t, err)
		require.Equal(t, counter.State{Value: 3, Increments: 1}, resp.state)
	})
	t.Run("rejected keeps the machine's sentinel", func(t *testing.T) {
		env, resp, err := roundTrip(false, response{err: counter.ErrOverflow, rejected: true}, nil)
		require.Equal(t, wire.Envelope_STATUS_REJECTED, env.Status)
		require.Equal(t, "counter.overflow", env.ErrorCode)
		require.NoError(t, err)
		require.True(t, resp.rejected)
		require.ErrorIs(t, resp.err, counter.ErrOverflow)
		require.NotErrorIs(t, resp.err, counter.ErrZero)
		require.Equal(t, counter.ErrOverflow.Error(), resp.err.Error())
		// The same semantics as machine.DecodeError.
		dec, derr := machine.DecodeError(machine.AppendError(nil, counter.ErrOverflow))
		require.NoError(t, derr)
		require.Equal(t, dec, resp.err)
	})
	t.Run("permanent", func(t *testing.T) {
		perr := &machine.PanicError{Entity: machine.Entity{Kind: "counter", ID: "x"}, Value: "boom"}
		env, resp, err := roundTrip(false, response{err: perr, permanent: true}, nil)
		require.Equal(t, wire.Envelope_STATUS_PERMANENT, env.Status)
		require.NoError(t, err)
		require.True(t, resp.permanent)
		require.ErrorIs(t, resp.err, machine.ErrPanic)
		var re *RemoteError
		require.ErrorAs(t, resp.err, &re)
		require.Contains(t, re.Message, "boom")
	})
	for _, c := range []struct {
		name   string
		err    error
		status wire.Envelope_Status
		is     error
		asErr  bool // a FAILED outcome comes back as the call's error
	}{
		{"overloaded", fmt.Errorf("%w: full", ErrOverloaded), wire.Envelope_STATUS_RETRYABLE, ErrOverloaded, false},
		{"unavailable", fmt.Errorf("%w: reloading", ErrUnavailable), wire.Envelope_STATUS_RETRYABLE, ErrUnavailable, false},
		{"owner stopping", ErrStopped, wire.Envelope_STATUS_RETRYABLE, ErrUnavailable, false},
		{"moved", fmt.Errorf("%w: elsewhere", ErrMoved), wire.Envelope_STATUS_MOVED, ErrMoved, false},
		{"unknown kind", fmt.Errorf("%w: %q", ErrUnknownKind, "x"), wire.Envelope_STATUS_FAILED, ErrUnknownKind, true},
		{"bad envelope", fmt.Errorf("%w: junk", ErrBadEnvelope), wire.Envelope_STATUS_FAILED, ErrBadEnvelope, true},
		{"entity failed", fmt.Errorf("%w: %w", ErrEntityFailed, machine.ErrCorrupt), wire.Envelope_STATUS_FAILED, ErrEntityFailed, true},
		{"deadline", context.DeadlineExceeded, wire.Envelope_STATUS_FAILED, context.DeadlineExceeded, true},
		{"anything else", errors.New("disk on fire"), wire.Envelope_STATUS_FAILED, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, resp, err := roundTrip(false, response{}, c.err)
			require.Equal(t, c.status, env.Status)
			got := resp.err
			if c.asErr {
				require.NoError(t, resp.err)
				got = err
			} else {
				require.NoError(t, err)
			}
			require.Error(t, got)
			if c.is != nil {
				require.ErrorIs(t, got, c.is)
			}
			require.Equal(t, retryable(c.err) || errors.Is(c.err, ErrStopped), retryable(got))
			require.Contains(t, got.Error(), c.err.Error())
		})
	}
}

func TestCallTableIsBoundedAndSwept(t *testing.T) {
	tab := newCallTable(2)
	now := time.Now()
	a, cha, err := tab.add("p1", now.Add(time.Minute))
	require.NoError(t, err)
	b, _, err := tab.add("p1", now.Add(-2*time.Second))
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	_, _, err = tab.add("p1", now)
	require.ErrorIs(t, err, ErrOverloaded)
	require.Equal(t, 1, tab.sweep(now), "only the expired entry goes")
	require.True(t, tab.complete(&wire.Envelope{Correlation: a}))
	require.Equal(t, a, (<-cha).env.Correlation)
	require.False(t, tab.complete(&wire.Envelope{Correlation: a}), "a duplicate reply finds nobody")
	require.Equal(t, 0, tab.len())
}

func TestCallTableFailsCallsToALostPeer(t *testing.T) {
	tab := newCallTable(10)
	deadline := time.Now().Add(time.Minute)
	_, toA, err := tab.add("a:1", deadline)
	require.NoError(t, err)
	_, toB, err := tab.add("b:1", deadline)
	require.NoError(t, err)
	lost := fmt.Errorf("%w: lost", ErrUnavailable)
	require.Equal(t, 1, tab.fail(func(addr string) bool { return addr == "a:1" }, lost))
	got := <-toA
	require.ErrorIs(t, got.err, ErrUnavailable)
	require.Nil(t, got.env)
	select {
	case r := <-toB:
		t.Fatalf("the call to a live peer ended: %+v", r)
	default:
	}
	require.Equal(t, 1, tab.len())
}

func TestPeerTableProbesALostPeerOncePerInterval(t *testing.T) {
	p := newPeerTable()
	now := time.Now()
	ok, probe := p.admit("a:1", now)
	require.True(t, ok)
	require.False(t, probe, "a peer never lost is not probed")
	require.Equal(t, "a:1", p.event(&remote.EndpointTerminatedEvent{Address: "a:1"}, now))
	ok, _ = p.admit("a:1", now.Add(PeerProbeInterval/2))
	require.False(t, ok, "a lost peer refuses requests between probes")
	ok, probe = p.admit("a:1", now.Add(PeerProbeInterval))
	require.True(t, ok)
	require.True(t, probe)
	ok, _ = p.admit("a:1", now.Add(PeerProbeInterval+time.Millisecond))
	require.False(t, ok, "one probe per interval")
	require.Empty(t, p.event(&remote.EndpointConnectedEvent{Address: "a:1"}, now))
	ok, probe = p.admit("a:1", now.Add(PeerProbeInterval+2*time.Millisecond))
	require.True(t, ok)
	require.False(t, probe, "a reconnected peer takes requests again")
	ok, _ = p.admit("b:1", now)
	require.True(t, ok, "other peers are not affected")
}

// collector forwards the envelopes it receives to a channel.
type collector chan *wire.Envelope

func (c collector) Receive(ctx protoactor.Context) {
	if env, ok := ctx.Message().(*wire.Envelope); ok {
		c <- env
	}
}

// TestRouterServesEnvelopes drives the router in one process, without a
// remote: replies go to a local collector actor.
func TestRouterServesEnvelopes(t *testing.T) {
	h, err := New(Config{Store: memstore.New(), Shards: 4})
	require.NoError(t, err)
	kind, err := counter.NewKind(10)
	require.NoError(t, err)
	_, err = Register(h, kind, KindOptions[counter.State, counter.Input, machine.None, machine.None, machine.None]{})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, h.Start(ctx))
	defer func() { require.NoError(t, h.Stop(ctx)) }()
	router, err := h.root.SpawnNamed(protoactor.PropsFromProducer(func() protoactor.Actor { return &router{h: h} }), RouterName)
	require.NoError(t, err)
	replies := make(collector, 16)
	sink := h.root.Spawn(protoactor.PropsFromProducer(func() protoactor.Actor { return replies }))
	k := h.codecs["counter"]
	input := func(add uint64) []byte {
		b, err := k.encodeInput(counter.Input{Add: add})
		require.NoError(t, err)
		return b
	}
	var corr uint64
	ask := func(env *wire.Envelope) *wire.Envelope {
		corr++
		env.Correlation, env.ReplyAddress, env.ReplyId = corr, sink.Address, sink.Id
		h.root.Send(router, env)
		select {
		case rep := <-replies:
			require.Equal(t, wire.Envelope_OP_REPLY, rep.Op)
			require.Equal(t, corr, rep.Correlation)
			return rep
		case <-time.After(5 * time.Second):
			t.Fatal("no reply")
			return nil
		}
	}
	in := func(add uint64, id string) *wire.Envelope {
		return &wire.Envelope{Op: wire.Envelope_OP_INPUT, Kind: "counter", EntityId: "c", RequestId: id, Payload: input(add)}
	}
	require.Equal(t, wire.Envelope_STATUS_OK, ask(in(4, "r1")).Status)
	require.Equal(t, wire.Envelope_STATUS_OK, ask(in(4, "r1")).Status, "a retried request ID is answered")
	rej := ask(in(20, "r2"))
	require.Equal(t, wire.Envelope_STATUS_REJECTED, rej.Status)
	require.Equal(t, "counter.overflow", rej.ErrorCode)
	q := ask(&wire.Envelope{Op: wire.Envelope_OP_QUERY, Kind: "counter", EntityId: "c"})
	require.Equal(t, wire.Envelope_STATUS_OK, q.Status)
	s, err := k.decodeState(q.Payload)
	require.NoError(t, err)
	require.Equal(t, counter.State{Value: 4, Increments: 1}, s, "the duplicate was not applied twice")

	bad := ask(&wire.Envelope{Op: wire.Envelope_OP_INPUT, Kind: "counter", EntityId: "c", Payload: []byte{0xff, 0xff}})
	require.Equal(t, wire.Envelope_STATUS_FAILED, bad.Status)
	require.Equal(t, "actor.bad_envelope", bad.ErrorCode)
	unk := ask(&wire.Envelope{Op: wire.Envelope_OP_INPUT, Kind: "nope", EntityId: "c"})
	require.Equal(t, wire.Envelope_STATUS_FAILED, unk.Status)
	require.Equal(t, "actor.unknown_kind", unk.ErrorCode)
	noID := ask(&wire.Envelope{Op: wire.Envelope_OP_QUERY, Kind: "counter"})
	require.Equal(t, "actor.bad_envelope", noID.ErrorCode)
	op := ask(&wire.Envelope{Op: wire.Envelope_Op(99)})
	require.Equal(t, wire.Envelope_STATUS_FAILED, op.Status)
	require.Equal(t, "actor.bad_envelope", op.ErrorCode)
	// A reply nobody waits for, and a Tell (no correlation), get no answer.
	h.root.Send(router, &wire.Envelope{Op: wire.Envelope_OP_REPLY, Correlation: 12345})
	h.root.Send(router, in(1, "tell"))
	q = ask(&wire.Envelope{Op: wire.Envelope_OP_QUERY, Kind: "counter", EntityId: "c"})
	s, err = k.decodeState(q.Payload)
	require.NoError(t, err)
	require.Equal(t, counter.State{Value: 5, Increments: 2}, s)
}
