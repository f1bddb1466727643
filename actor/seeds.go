package actor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"

	"github.com/phasm-go/phasm/actor/wire"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// Timings of clients that learn views from seeds.
const (
	// SeedRefreshInterval is how often such a client asks for a newer view.
	SeedRefreshInterval = 500 * time.Millisecond
	// seedAskTimeout bounds one view request.
	seedAskTimeout = 2 * time.Second
	// MaxViewBytes bounds an encoded view a client accepts.
	MaxViewBytes = 16 << 20
)

// serveView answers an OP_VIEW request with this node's current view,
// encoded as JSON (the same form as the admin API's /v1/cluster/view).
func (h *Host) serveView(env *wire.Envelope) {
	if env.GetCorrelation() == 0 || env.GetReplyAddress() == "" {
		return
	}
	out := &wire.Envelope{Op: wire.Envelope_OP_REPLY, Correlation: env.GetCorrelation()}
	v, ok := cluster.View{}, false
	if h.net != nil && !h.net.client {
		v, ok = h.net.view()
	}
	if !ok {
		encodeOutcome(out, nil, false, response{}, fmt.Errorf("%w: this node has no cluster view yet", ErrNoOwner))
	} else if b, err := json.Marshal(v); err != nil {
		encodeOutcome(out, nil, false, response{}, fmt.Errorf("actor: encoding the view: %w", err))
	} else {
		out.Payload, out.ViewVersion = b, v.Version
	}
	h.root.Send(protoactor.NewPID(env.GetReplyAddress(), env.GetReplyId()), out)
}

// askView asks the node at addr for its view.
func (h *Host) askView(ctx context.Context, addr string) (cluster.View, error) {
	n := h.net
	if ok, _ := n.peers.admit(addr, time.Now()); !ok {
		return cluster.View{}, fmt.Errorf("%w: the connection to %s was lost", ErrUnavailable, addr)
	}
	rep, err := h.roundTrip(ctx, addr, &wire.Envelope{Op: wire.Envelope_OP_VIEW}, seedAskTimeout, "the view")
	if err != nil {
		return cluster.View{}, err
	}
	if rep.GetStatus() != wire.Envelope_STATUS_OK {
		resp, err := decodeOutcome(rep, nil, false)
		if err == nil {
			err = resp.err
		}
		return cluster.View{}, fmt.Errorf("view from %s: %w", addr, err)
	}
	if len(rep.GetPayload()) > MaxViewBytes {
		return cluster.View{}, fmt.Errorf("%w: view from %s is %d bytes (limit %d)", ErrBadEnvelope, addr, len(rep.GetPayload()), MaxViewBytes)
	}
	var v cluster.View
	if err := json.Unmarshal(rep.GetPayload(), &v); err != nil {
		return cluster.View{}, fmt.Errorf("%w: view from %s: %v", ErrBadEnvelope, addr, err)
	}
	if v.Version != rep.GetViewVersion() {
		return cluster.View{}, fmt.Errorf("%w: view from %s has version %d, its envelope %d", ErrBadEnvelope, addr, v.Version, rep.GetViewVersion())
	}
	return v, nil
}

// followSeeds keeps a seeded client's view fresh: it asks the seeds and
// the live members of its current view, in turn, for theirs, and keeps a
// newer one. It refreshes every SeedRefreshInterval, and at once when a
// request found its route stale (pokeView).
func (h *Host) followSeeds() {
	defer h.bg.Done()
	n := h.net
	t := time.NewTicker(SeedRefreshInterval)
	defer t.Stop()
	next := 0
	warned := time.Time{}
	for {
		var cur uint64
		v, have := n.view()
		if have {
			cur = v.Version
		}
		addrs := slices.Clone(n.cfg.Seeds)
		for _, m := range v.Members {
			if m.Status != shard.Down && m.Addrs.Remote != "" && !slices.Contains(addrs, m.Addrs.Remote) {
				addrs = append(addrs, m.Addrs.Remote)
			}
		}
		var errs []error
		for i := range addrs {
			addr := addrs[(next+i)%len(addrs)]
			ctx, cancel := context.WithTimeout(h.stopCtx, seedAskTimeout)
			got, err := h.askView(ctx, addr)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				continue
			}
			next = (next + i + 1) % len(addrs)
			if !have || got.Version > cur {
				n.setView(got)
			}
			errs = nil
			break
		}
		if errs != nil && h.stopCtx.Err() == nil && time.Since(warned) > 10*time.Second {
			warned = time.Now()
			h.log.Warn("no node answered for its cluster view", "err", errors.Join(errs...))
		}
		select {
		case <-h.stopCtx.Done():
			return
		case <-t.C:
		case <-n.poke:
		}
	}
}
