package kinds

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
)

func TestJSONInputs(t *testing.T) {
	cat, err := Catalog()
	require.NoError(t, err)
	in, err := cat[Account].ParseInput([]byte(`{"kind":"transfer","amount_cents":5,"to":"b","ref":9}`))
	require.NoError(t, err)
	assert.Equal(t, account.Input{Kind: account.Transfer, AmountCents: 5, To: "b", Ref: 9}, in)
	in, err = cat[Clinic].ParseInput([]byte(`{"kind":"earliest","ref":2,"type":"root_canal","prefer":{"days":["wed","Fri"],"ranges":[{"from":"14:00","to":"18:00"}]}}`))
	require.NoError(t, err)
	c := in.(clinic.Input)
	assert.Equal(t, clinic.RootCanal, c.Type)
	assert.Equal(t, clinic.Wednesday, c.Prefer.Days[0])
	assert.Equal(t, clinic.At(14, 0), c.Prefer.Ranges[0].From)
	j := showClinic(c).(ClinicInput)
	assert.Equal(t, "root_canal", j.Type)
	assert.Equal(t, []string{"Wed", "Fri"}, j.Prefer.Days)

	for kind, bad := range map[string]string{
		Account: `{"kind":"credit","amount_cents":5,"from":"x","transfer_id":1}`,
		Clinic:  `{"kind":"exact","ref":1,"type":"checkup","day":"Someday","start":"09:00"}`,
		Counter: `{"add":1,"extra":true}`,
	} {
		_, err := cat[kind].ParseInput([]byte(bad))
		assert.ErrorIs(t, err, ErrBadInput, kind)
	}
	_, err = cat[Account].ParseInput([]byte(`{"kind":"deposit"} {}`))
	assert.ErrorIs(t, err, ErrBadInput)
}

func TestGatewayHonoursIdempotencyKeys(t *testing.T) {
	g, err := NewGateway(GatewayOptions{Seed: 1, DeclineRatio: 0.5, MaxLatency: -1})
	require.NoError(t, err)
	e := machine.Entity{Kind: Clinic, ID: "c"}
	call := func(id machine.ActionID, kind clinic.ActionKind, ref uint64) clinic.Result {
		r, err := g.Execute(context.Background(), actor.Call[clinic.Action]{Entity: e, ID: id, IdempotencyKey: machine.IdempotencyKey(e, id),
			Action: clinic.Action{Kind: kind, Ref: ref, AmountCents: 7500}, Attempt: 1})
		require.NoError(t, err)
		return r
	}
	var oks int
	for id := machine.ActionID(1); id <= 40; id++ {
		first := call(id, clinic.PreAuthorise, uint64(id))
		assert.Equal(t, first, call(id, clinic.PreAuthorise, uint64(id)), "a retry gets the first answer")
		assert.Equal(t, first, call(id, clinic.CheckStatus, uint64(id)), "a status check answers for the same key")
		if first.OK {
			oks++
		}
	}
	assert.Greater(t, oks, 5)
	assert.Less(t, oks, 35)
	assert.Len(t, g.Holds(), oks)
	assert.False(t, call(100, clinic.CheckStatus, 100).OK, "a pre-authorisation never made is not authorised")
	for h := range g.Holds() {
		assert.True(t, call(machine.ActionID(1000+h.Ref), clinic.Release, h.Ref).OK)
	}
	assert.Empty(t, g.Holds())
	_, err = NewGateway(GatewayOptions{DeclineRatio: 2})
	assert.ErrorIs(t, err, ErrInvalidOptions)
}
