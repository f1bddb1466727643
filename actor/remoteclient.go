package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/phasm-go/phasm/machine"
)

// ClientConfig configures a Client: the network side (ClusterConfig:
// where the client's own router listens for replies, the view it routes
// by, TLS, timeouts) and a logger.
type ClientConfig struct {
	ClusterConfig
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
}

// Client lets an application process that is not a node send to a
// cluster's entities: its typed Refs (the same Ref[S, I] as on a node) go
// straight to the owner of each entity's shard in the view the client is
// given, over protoactor remote. It hosts no entities and keeps no store.
//
// Build it with NewClient, RegisterClient the kinds it talks to, then
// Start; Stop closes it.
type Client struct {
	h *Host
}

// NewClient validates cfg and returns a client that is not started yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	var problems []error
	cfg.ClusterConfig.validate(true, func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	})
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	hc := Config{Logger: cfg.Logger}.withDefaults()
	h := &Host{cfg: hc, log: hc.Logger, kinds: map[string]kindEntry{}, codecs: map[string]kindCodecs{},
		metrics: newMetrics(), net: newNetState(cfg.ClusterConfig, true)}
	h.stopCtx, h.stopFn = context.WithCancel(context.Background())
	return &Client{h: h}, nil
}

// RegisterClient teaches the client a kind's wire codecs, so it can send
// the kind's inputs and read its states, and returns typed references to
// its entities. The kind is not hosted here. Call it before Start.
func RegisterClient[S, I, A, R, U any](c *Client, kind *machine.Kind[S, I, A, R, U]) (*KindRef[S, I], error) {
	if kind == nil {
		return nil, fmt.Errorf("%w: nil kind", ErrInvalidKind)
	}
	h := c.h
	if h.state.Load() != hostNew {
		return nil, fmt.Errorf("%w %q: register kinds before Start", ErrInvalidKind, kind.Name())
	}
	if _, dup := h.codecs[kind.Name()]; dup {
		return nil, fmt.Errorf("%w %q: already registered", ErrInvalidKind, kind.Name())
	}
	h.codecs[kind.Name()] = newKindCodec(kind)
	return &KindRef[S, I]{h: h, name: kind.Name()}, nil
}

// Start starts the client's actor system, its router and the remote
// server that receives replies.
func (c *Client) Start(context.Context) error {
	h := c.h
	if err := h.startSystem(); err != nil {
		return err
	}
	if err := h.startNet(); err != nil {
		h.state.Store(hostStopped)
		h.stopFn()
		h.system.Shutdown()
		h.bg.Wait()
		return err
	}
	return nil
}

// Stop fails the calls still waiting with ErrStopped and closes the
// client.
func (c *Client) Stop(context.Context) error {
	h := c.h
	h.stopOnce.Do(func() {
		prev := h.state.Swap(hostStopped)
		h.stopFn()
		if prev == hostNew {
			return
		}
		h.stopNet()
		h.system.Shutdown()
		h.bg.Wait()
	})
	return nil
}

// RemoteAddr returns the address the client's router receives replies at.
func (c *Client) RemoteAddr() string { return c.h.RemoteAddr() }

// InFlight returns the remote requests waiting for replies.
func (c *Client) InFlight() int { return c.h.net.calls.len() }
