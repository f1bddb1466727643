package actor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	protoactor "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/phasm-go/phasm/actor/wire"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/shard"
)

// RouterName is the well-known actor name of every node's and client's
// router: the one actor that remote peers send envelopes to.
const RouterName = "phasm"

// Defaults for ClusterConfig fields left at zero.
const (
	DefaultRemoteRequestTimeout   = 10 * time.Second
	DefaultRemoteMaxInFlight      = 100_000
	DefaultRemoteWriterQueueSize  = 16_384
	DefaultRemoteKeepaliveTime    = 10 * time.Second
	DefaultRemoteKeepaliveTimeout = 5 * time.Second
)

// ClusterConfig puts a host (or a client) on the network: it listens on
// protoactor remote and routes every request by the shard map of a
// cluster.View. Without it (Config.Cluster nil) a host serves every shard
// locally and opens no socket.
type ClusterConfig struct {
	// Listen is the host:port the remote server binds (port 0: any free
	// port; read the result with Host.RemoteAddr). Required.
	Listen string
	// Advertise is the host:port peers reach this process at, when it
	// differs from the bound address (NAT, containers).
	Advertise string

	// View returns the current cluster view; it is called for every
	// request, so it must be cheap. Exactly one of View and Watch is
	// required.
	View func() cluster.View
	// Watch delivers views (cluster.Node.Watch); the newest one received is
	// used. Until the first arrives every request fails with ErrNoOwner.
	//
	// A host that watches hands shards off by the views: it owns exactly
	// the shards the latest view assigns it, under the view's per-shard
	// epoch (the fence its actions carry; Config.ShardEpoch is not used).
	// A shard that moves away stops taking requests (they are answered
	// ErrMoved and retried at the new owner) and passivates its entities
	// once their in-flight appends finish; a shard gained re-activates the
	// entities the store lists with outstanding actions. With View instead,
	// every shard's actor serves under Config.ShardEpoch and only routing
	// follows the view.
	Watch <-chan cluster.View
	// Seeds (clients only) are remote addresses of cluster nodes (their
	// Listen or Advertise address) to learn views from: the client asks
	// them, and then the members its view lists, for their view every
	// SeedRefreshInterval, and soon after a request finds its route stale
	// (moved, no owner, a lost peer). It keeps the highest version. One of
	// View, Watch and Seeds is required for a client.
	Seeds []string

	// TLS, when set, secures node-to-node gRPC in both directions (use a
	// config that requires and verifies client certificates: any peer that
	// can connect can send to any local actor).
	TLS *tls.Config

	// RequestTimeout bounds one remote attempt when the caller's context
	// allows longer (default DefaultRemoteRequestTimeout): a reply lost with
	// a dead peer fails the attempt with ErrUnavailable, and Ask retries.
	RequestTimeout time.Duration
	// MaxInFlight bounds the remote requests waiting for replies; past it
	// calls fail with ErrOverloaded (default DefaultRemoteMaxInFlight).
	MaxInFlight int
	// WriterQueueSize bounds each peer's send queue (default
	// DefaultRemoteWriterQueueSize; protoactor's own default preallocates
	// about 16 MB per peer).
	WriterQueueSize int
	// KeepaliveTime and KeepaliveTimeout configure gRPC keepalive so a
	// silently dead peer is noticed (defaults DefaultRemoteKeepaliveTime,
	// DefaultRemoteKeepaliveTimeout).
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
}

func (c *ClusterConfig) validate(client bool, bad func(format string, args ...any)) {
	if c.Listen == "" {
		bad("Cluster.Listen is required")
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("Cluster.Listen %q: %v", c.Listen, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("Cluster.Listen %q: bad port", c.Listen)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			bad("Cluster.Advertise %q: %v", c.Advertise, err)
		}
	}
	sources := 0
	for _, set := range []bool{c.View != nil, c.Watch != nil, len(c.Seeds) > 0} {
		if set {
			sources++
		}
	}
	switch {
	case !client && len(c.Seeds) > 0:
		bad("Cluster.Seeds is for clients: a node follows its own cluster.Node (Cluster.Watch)")
	case client && sources != 1:
		bad("exactly one of View, Watch and Seeds is required")
	case !client && sources != 1:
		bad("exactly one of Cluster.View and Cluster.Watch is required")
	}
	for _, a := range c.Seeds {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("Seeds: %q: %v", a, err)
		}
	}
	if c.MaxInFlight < 0 || c.WriterQueueSize < 0 {
		bad("Cluster.MaxInFlight and Cluster.WriterQueueSize must not be negative")
	}
	if c.RequestTimeout < 0 || c.KeepaliveTime < 0 || c.KeepaliveTimeout < 0 {
		bad("Cluster timeouts must not be negative")
	}
}

func (c ClusterConfig) withDefaults() ClusterConfig {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRemoteRequestTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultRemoteMaxInFlight
	}
	if c.WriterQueueSize == 0 {
		c.WriterQueueSize = DefaultRemoteWriterQueueSize
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = DefaultRemoteKeepaliveTime
	}
	if c.KeepaliveTimeout == 0 {
		c.KeepaliveTimeout = DefaultRemoteKeepaliveTimeout
	}
	return c
}

// netState is a host's (or client's) network side.
type netState struct {
	cfg    ClusterConfig
	client bool // a client hosts nothing: every shard is remote
	remote *remote.Remote
	addr   string // this process's remote address (replies come here)
	latest atomic.Pointer[cluster.View]
	calls  *callTable
	peers  *peerTable
	sub    *eventstream.Subscription
	// changed is closed (and replaced) whenever a new view arrives, so
	// retry waits end as soon as routing may have changed.
	changed atomic.Pointer[chan struct{}]
	// poke asks a seeded client's view follower for a refresh now.
	poke chan struct{}
	// noListen (tests only) skips the remote server: the host follows its
	// views but cannot reach or be reached by other processes.
	noListen bool
}

func newNetState(cfg ClusterConfig, client bool) *netState {
	cfg = cfg.withDefaults()
	n := &netState{cfg: cfg, client: client, calls: newCallTable(cfg.MaxInFlight), peers: newPeerTable(), poke: make(chan struct{}, 1)}
	ch := make(chan struct{})
	n.changed.Store(&ch)
	return n
}

// stale tells a seeded client's view follower that a route failed.
func (n *netState) stale() {
	if len(n.cfg.Seeds) == 0 {
		return
	}
	select {
	case n.poke <- struct{}{}:
	default:
	}
}

// viewChanged returns a channel closed when the next view arrives.
func (n *netState) viewChanged() <-chan struct{} { return *n.changed.Load() }

// setView makes v the routing view (unless views come from
// ClusterConfig.View), fails the calls waiting on peers v
// says are down or gone (their requests are retried at the new owners,
// with the same request IDs), and wakes retry waits.
func (n *netState) setView(v cluster.View) {
	if n.cfg.View == nil {
		n.latest.Store(&v)
	}
	live := make(map[string]bool, len(v.Members))
	for _, m := range v.Members {
		if m.Status != shard.Down && m.Addrs.Remote != "" {
			live[m.Addrs.Remote] = true
		}
	}
	n.calls.fail(func(addr string) bool { return !live[addr] },
		fmt.Errorf("%w: view %d no longer lists the peer as live", ErrUnavailable, v.Version))
	next := make(chan struct{})
	old := n.changed.Swap(&next)
	close(*old)
}

func (n *netState) view() (cluster.View, bool) {
	if n.cfg.View != nil {
		return n.cfg.View(), true
	}
	if v := n.latest.Load(); v != nil {
		return *v, true
	}
	return cluster.View{}, false
}

// route says where an entity's requests go under the current view.
type route struct {
	remote  bool
	addr    string // the owner's remote address
	epoch   uint64 // the shard's epoch in the view
	version uint64 // the view's version
}

// routeOf looks the entity's shard up in the current view. Without
// cluster mode everything is local.
func (h *Host) routeOf(e machine.Entity) (route, error) {
	n := h.net
	if n == nil {
		return route{}, nil
	}
	v, ok := n.view()
	if !ok {
		n.stale()
		return route{}, fmt.Errorf("%w: no cluster view yet", ErrNoOwner)
	}
	shards := len(v.Map.Shards)
	if shards == 0 {
		return route{}, fmt.Errorf("%w: the view (version %d) has no shard map", ErrNoOwner, v.Version)
	}
	if !n.client && shards != h.cfg.Shards {
		return route{}, fmt.Errorf("%w: the view has %d shards, this host %d", ErrNoOwner, shards, h.cfg.Shards)
	}
	s := shard.Of(e, shards)
	m, epoch, ok := v.Owner(s)
	if !ok {
		n.stale()
		return route{}, fmt.Errorf("%w: shard %d is unowned in view %d", ErrNoOwner, s, v.Version)
	}
	if !n.client && m.ID == v.Self {
		return route{epoch: epoch, version: v.Version}, nil
	}
	if m.Status == shard.Down || m.Addrs.Remote == "" {
		n.stale()
		return route{}, fmt.Errorf("%w: shard %d is owned by %s (%s, remote address %q) in view %d", ErrNoOwner, s, m.ID, m.Status, m.Addrs.Remote, v.Version)
	}
	return route{remote: true, addr: m.Addrs.Remote, epoch: epoch, version: v.Version}, nil
}

// startNet spawns the router and starts the remote server.
func (h *Host) startNet() (err error) {
	n := h.net
	props := protoactor.PropsFromProducer(func() protoactor.Actor { return &router{h: h} })
	if _, err := h.root.SpawnNamed(props, RouterName); err != nil {
		return fmt.Errorf("actor: spawning the router: %w", err)
	}
	host, portText, _ := net.SplitHostPort(n.cfg.Listen) // validated
	port, _ := strconv.Atoi(portText)
	ka := keepalive.ClientParameters{Time: n.cfg.KeepaliveTime, Timeout: n.cfg.KeepaliveTimeout, PermitWithoutStream: true}
	dial := []grpc.DialOption{grpc.WithKeepaliveParams(ka)}
	serve := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: n.cfg.KeepaliveTime, Timeout: n.cfg.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: n.cfg.KeepaliveTime / 2, PermitWithoutStream: true}),
	}
	if n.cfg.TLS != nil {
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(n.cfg.TLS)))
		serve = append(serve, grpc.Creds(&loggedCreds{TransportCredentials: credentials.NewTLS(n.cfg.TLS), log: h.log}))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts := []remote.ConfigOption{
		remote.WithEndpointWriterQueueSize(n.cfg.WriterQueueSize),
		remote.WithEndpointManagerQueueSize(n.cfg.WriterQueueSize),
		remote.WithDialOptions(dial...),
		remote.WithServerOptions(serve...),
	}
	if n.cfg.Advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(n.cfg.Advertise))
	}
	if !n.noListen {
		n.remote = remote.NewRemote(h.system, remote.Configure(host, port, opts...))
		defer func() {
			// protoactor panics when it cannot listen.
			if v := recover(); v != nil {
				n.remote = nil
				err = fmt.Errorf("actor: starting the remote on %s: %v", n.cfg.Listen, v)
			}
		}()
		n.remote.Start()
		n.addr = h.system.Address()
		// A lost connection ends the calls waiting on that peer at once:
		// they are retried (at the new owner once the view changes)
		// instead of waiting out RequestTimeout for a reply that cannot
		// come.
		n.sub = h.system.EventStream.SubscribeWithPredicate(func(ev any) {
			if addr := n.peers.event(ev, time.Now()); addr != "" {
				if k := n.calls.fail(func(a string) bool { return a == addr },
					fmt.Errorf("%w: lost the connection to %s", ErrUnavailable, addr)); k > 0 {
					h.log.Warn("connection to a peer lost; failed its waiting requests for retry", "peer", addr, "requests", k)
				}
			}
		}, func(ev any) bool {
			switch ev.(type) {
			case *remote.EndpointTerminatedEvent, *remote.EndpointConnectedEvent:
				return true
			}
			return false
		})
	}
	if n.cfg.Watch != nil {
		h.bg.Add(1)
		go func() {
			defer h.bg.Done()
			held := make([]uint64, len(h.shards)) // none for a client
			for {
				select {
				case <-h.stopCtx.Done():
					return
				case v, ok := <-n.cfg.Watch:
					if !ok {
						return
					}
					// Ownership first, then the view: a request routed here
					// by the new view finds its shard already gained.
					if !n.client {
						h.follow(v, held)
					}
					n.setView(v)
				}
			}
		}()
	}
	if len(n.cfg.Seeds) > 0 {
		h.bg.Add(1)
		go h.followSeeds()
	}
	if n.cfg.View != nil {
		// Views come from a function: poll it for changes, so that calls
		// waiting on peers it reports down end and retries wake.
		h.bg.Add(1)
		go func() {
			defer h.bg.Done()
			t := time.NewTicker(ViewPollInterval)
			defer t.Stop()
			last := n.cfg.View().Version
			for {
				select {
				case <-h.stopCtx.Done():
					return
				case <-t.C:
					if v := n.cfg.View(); v.Version != last {
						last = v.Version
						n.setView(v)
					}
				}
			}
		}()
	}
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-h.stopCtx.Done():
				return
			case now := <-t.C:
				n.calls.sweep(now)
			}
		}
	}()
	return nil
}

// follow tells every shard actor whose ownership differs between held and
// view v its new epoch (0: not owned), and records it in held. A view with
// another shard count (or none) owns nothing here.
func (h *Host) follow(v cluster.View, held []uint64) {
	gained, lost := 0, 0
	defer func() {
		if gained+lost > 0 {
			h.log.Info("shard ownership follows the cluster view", "view", v.Version, "gained", gained, "lost", lost)
		}
	}()
	for i := range held {
		var epoch uint64
		if len(v.Map.Shards) == len(held) {
			if a := v.Map.Shards[i]; a.Owner != "" && a.Owner == v.Self {
				epoch = max(a.Epoch, 1)
			}
		}
		if epoch != held[i] {
			switch {
			case epoch == 0:
				lost++
			case held[i] == 0:
				gained++
			}
			held[i] = epoch
			h.root.Send(h.shards[i], &ownership{epoch: epoch})
		}
	}
}

// loggedCreds logs the connections its TLS handshake refuses (a peer
// without a certificate from the cluster's CA, or without TLS), at most
// one line per refusedLogEvery.
type loggedCreds struct {
	credentials.TransportCredentials
	log  *slog.Logger
	last atomic.Int64 // unix nanoseconds of the last line
	hid  atomic.Int64 // refusals not logged since
}

const refusedLogEvery = time.Second

// ServerHandshake implements credentials.TransportCredentials.
func (c *loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		now := time.Now().UnixNano()
		if last := c.last.Load(); now-last >= int64(refusedLogEvery) && c.last.CompareAndSwap(last, now) {
			c.log.Warn("refused a connection to the remote: TLS handshake failed", "peer", conn.RemoteAddr().String(), "err", err, "refused_unlogged", c.hid.Swap(0))
		} else {
			c.hid.Add(1)
		}
	}
	return out, info, err
}

// Clone implements credentials.TransportCredentials.
func (c *loggedCreds) Clone() credentials.TransportCredentials {
	return &loggedCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// stopNet stops the remote server (after stopCtx has ended the waiters).
// It does not use protoactor's graceful shutdown: that stops the endpoint
// manager while peers' disconnect events read its state (a data race the
// race detector reports) and can wait 10 s for gRPC. Outgoing connections
// end with the process.
func (h *Host) stopNet() {
	if h.net != nil && h.net.remote != nil {
		if h.net.sub != nil {
			h.system.EventStream.Unsubscribe(h.net.sub)
		}
		h.net.remote.Shutdown(false)
	}
}

// RemoteAddr returns the address peers reach this host's router at, or ""
// before Start or without cluster mode.
func (h *Host) RemoteAddr() string {
	if h.net == nil || h.state.Load() == hostNew {
		return ""
	}
	return h.net.addr
}

// callTable correlates requests sent to other processes with their
// replies. It is bounded; every entry has a deadline, its waiter removes
// it, and a sweep removes any that outlive their deadline.
type callTable struct {
	mu   sync.Mutex
	next uint64
	max  int
	m    map[uint64]*pendingCall
}

type pendingCall struct {
	ch       chan callResult
	addr     string // the peer the request went to
	deadline time.Time
}

// callResult is a reply envelope, or the error that ended the wait early
// (the peer's connection was lost, or the view says it is down).
type callResult struct {
	env *wire.Envelope
	err error
}

func newCallTable(max int) *callTable {
	// A random start keeps a restarted process from taking a reply meant
	// for its previous incarnation at the same address.
	return &callTable{max: max, next: rand.Uint64() | 1, m: map[uint64]*pendingCall{}}
}

// add registers a call to the peer at addr; its outcome arrives on the
// returned channel.
func (t *callTable) add(addr string, deadline time.Time) (uint64, chan callResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		return 0, nil, fmt.Errorf("%w: %d remote requests in flight", ErrOverloaded, len(t.m))
	}
	id := t.next
	t.next++
	if t.next == 0 {
		t.next = 1 // 0 means "no reply wanted"
	}
	ch := make(chan callResult, 1)
	t.m[id] = &pendingCall{ch: ch, addr: addr, deadline: deadline}
	return id, ch, nil
}

func (t *callTable) remove(id uint64) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// complete hands a reply to its waiter; false when nobody waits for it
// (late, duplicate or forged).
func (t *callTable) complete(env *wire.Envelope) bool {
	t.mu.Lock()
	p, ok := t.m[env.GetCorrelation()]
	delete(t.m, env.GetCorrelation())
	t.mu.Unlock()
	if ok {
		p.ch <- callResult{env: env} // buffered, one outcome per entry
	}
	return ok
}

// fail ends, with err, every waiting call to a peer that dead reports as
// dead, and returns how many it ended. A reply that still arrives later
// is dropped as late; the caller's retry carries the same request ID, so
// the entity answers it from its request window instead of applying the
// input twice.
func (t *callTable) fail(dead func(addr string) bool, err error) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for id, p := range t.m {
		if dead(p.addr) {
			delete(t.m, id)
			p.ch <- callResult{err: err}
			n++
		}
	}
	return n
}

// sweep removes entries whose deadline passed more than a second ago.
func (t *callTable) sweep(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for id, p := range t.m {
		if now.Sub(p.deadline) > time.Second {
			delete(t.m, id)
			n++
		}
	}
	return n
}

func (t *callTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// ViewPollInterval is how often a host or client whose views come from
// ClusterConfig.View checks it for a new version.
const ViewPollInterval = 50 * time.Millisecond

// PeerProbeInterval is how often a request is still let through to a peer
// whose connection was lost (the others fail at once with ErrUnavailable
// and are retried, normally at the new owner once the view changes).
// protoactor retries a connection to a dead peer for about 10 seconds
// while queueing what is sent to it; the probe is what notices the peer
// back (a restart at the same address, or a healed network).
const PeerProbeInterval = time.Second

// peerTable remembers the peers whose connection protoactor reported lost
// (EndpointTerminatedEvent) and not since re-established.
type peerTable struct {
	mu   sync.Mutex
	lost map[string]time.Time // address -> when the last probe was let through
	// nlost is len(lost), read without the lock: with no peer lost (the
	// normal case) admit takes no lock on the request path.
	nlost atomic.Int32
}

func newPeerTable() *peerTable { return &peerTable{lost: map[string]time.Time{}} }

// event updates the table from protoactor's endpoint events; it reports
// the address whose connection was lost, if any.
func (p *peerTable) event(ev any, now time.Time) (lostAddr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *remote.EndpointTerminatedEvent:
		if _, ok := p.lost[e.Address]; !ok {
			p.lost[e.Address] = now
		}
		p.nlost.Store(int32(len(p.lost)))
		return e.Address
	case *remote.EndpointConnectedEvent:
		delete(p.lost, e.Address)
		p.nlost.Store(int32(len(p.lost)))
	}
	return ""
}

// admit reports whether a request may go to addr now: always, unless its
// connection was lost; then once per PeerProbeInterval, as a probe.
func (p *peerTable) admit(addr string, now time.Time) (ok, probe bool) {
	if p.nlost.Load() == 0 {
		return true, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	last, lost := p.lost[addr]
	if !lost {
		return true, false
	}
	if now.Sub(last) < PeerProbeInterval {
		return false, false
	}
	p.lost[addr] = now
	return true, true
}

// callRemote sends a request to the entity's owner and, when wait is set,
// waits for its reply (within ctx and the attempt timeout).
func (h *Host) callRemote(ctx context.Context, k kindCodecs, req *request, rt route, wait bool) (response, error) {
	n := h.net
	env := &wire.Envelope{Kind: req.entity.Kind, EntityId: req.entity.ID, ShardEpoch: rt.epoch, RequestId: req.requestID}
	var err error
	switch {
	case req.query:
		env.Op = wire.Envelope_OP_QUERY
	case req.completion:
		env.Op = wire.Envelope_OP_COMPLETION
		env.ActionId = uint64(req.actionID)
		env.Payload, err = k.encodeResult(req.result)
	default:
		env.Op = wire.Envelope_OP_INPUT
		env.Payload, err = k.encodeInput(req.input)
	}
	if err != nil {
		return response{}, err
	}
	ok, probe := n.peers.admit(rt.addr, time.Now())
	if !ok {
		n.stale()
		return response{}, fmt.Errorf("%w: the connection to %s (owner of %s in view %d) was lost; retrying when the view changes or the peer answers again", ErrUnavailable, rt.addr, req.entity, rt.version)
	}
	if !wait {
		h.root.Send(protoactor.NewPID(rt.addr, RouterName), env)
		return response{}, nil
	}
	timeout := n.cfg.RequestTimeout
	if probe {
		// A probe of a lost peer waits briefly: a peer that is back
		// answers at once, a dead one would hold the caller for the
		// whole RequestTimeout.
		timeout = min(timeout, 2*PeerProbeInterval)
	}
	rep, err := h.roundTrip(ctx, rt.addr, env, timeout, req.entity.String())
	if err != nil {
		if errors.Is(err, errPeerLost) {
			n.stale()
		}
		return response{}, err
	}
	if rep.GetStatus() == wire.Envelope_STATUS_MOVED {
		n.stale()
	}
	return decodeOutcome(rep, k, req.query)
}

// errPeerLost marks a round trip ended by the loss of its peer (or by a
// view that no longer lists it), as opposed to a timeout.
var errPeerLost = errors.New("peer lost")

// roundTrip sends env to the router at addr as a request and waits for its
// reply, within ctx and timeout: it registers the call in the correlation
// table, stamps env with the correlation, reply address and deadline, and
// ends early when the peer is lost (an error wrapping ErrUnavailable and
// errPeerLost), when ctx ends, or when the host stops. what names the
// request in the timeout's error.
func (h *Host) roundTrip(ctx context.Context, addr string, env *wire.Envelope, timeout time.Duration, what string) (*wire.Envelope, error) {
	n := h.net
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	corr, ch, err := n.calls.add(addr, deadline)
	if err != nil {
		h.overload()
		return nil, err
	}
	defer n.calls.remove(corr)
	env.Correlation, env.ReplyAddress, env.ReplyId = corr, n.addr, RouterName
	env.DeadlineUnixNano = deadline.UnixNano()
	h.root.Send(protoactor.NewPID(addr, RouterName), env)
	waitFor := time.Until(deadline)
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case rep := <-ch:
		if rep.err != nil {
			return nil, fmt.Errorf("%w (%w)", rep.err, errPeerLost)
		}
		return rep.env, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("%w: no reply from %s for %s within %s", ErrUnavailable, addr, what, waitFor.Round(time.Millisecond))
	case <-h.stopCtx.Done():
		return nil, ErrStopped
	}
}

// completeRemote delivers a tracked action's result to an entity that
// lives elsewhere (or whose owner is unknown right now), retrying until
// its owner acknowledges it or the host stops. Duplicates are harmless:
// the driver drops a completion that is no longer outstanding.
func (h *Host) completeRemote(e machine.Entity, id machine.ActionID, result any) {
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		backoff := h.cfg.Actions.InitialBackoff
		for h.stopCtx.Err() == nil {
			changed := h.viewChanged()
			ctx, cancel := context.WithTimeout(h.stopCtx, h.cfg.Actions.AttemptTimeout)
			resp, err := h.call(ctx, &request{entity: e, completion: true, actionID: id, result: result}, true)
			cancel()
			if err == nil {
				err = resp.err
			}
			if err == nil || resp.rejected || resp.permanent || errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrBadInput) || errors.Is(err, ErrBadEnvelope) {
				if err != nil {
					h.log.Error("completion refused by its entity's owner", "entity", e.String(), "action", id, "err", err)
				}
				return
			}
			if h.retryWait(h.stopCtx, jitter(backoff), changed) != nil {
				return
			}
			backoff = min(backoff*2, h.cfg.Actions.MaxBackoff)
		}
	}()
}

// router is the actor peers send envelopes to. It never blocks: requests
// go to the shard actors with a reply callback, replies complete waiting
// callers from the correlation table.
type router struct{ h *Host }

// Receive implements protoactor.Actor.
func (r *router) Receive(c protoactor.Context) {
	env, ok := c.Message().(*wire.Envelope)
	if !ok {
		return // lifecycle messages; anything else is not ours
	}
	h := r.h
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("router panicked on an envelope", "op", env.GetOp().String(), "kind", env.GetKind(), "panic", v)
		}
	}()
	switch env.GetOp() {
	case wire.Envelope_OP_INPUT, wire.Envelope_OP_COMPLETION, wire.Envelope_OP_QUERY:
		h.serveEnvelope(env)
	case wire.Envelope_OP_VIEW:
		h.serveView(env)
	case wire.Envelope_OP_REPLY:
		if h.net == nil || !h.net.calls.complete(env) {
			h.log.Debug("reply for no waiting request (late or duplicate)", "correlation", env.GetCorrelation())
		}
	default:
		h.log.Warn("envelope with an unsupported operation", "op", env.GetOp().String(), "from", env.GetReplyAddress())
		h.replyTo(env, nil, response{}, fmt.Errorf("%w: unsupported operation %s", ErrBadEnvelope, env.GetOp()))
	}
}

// replyTo answers a request envelope, when its sender waits for an answer.
func (h *Host) replyTo(env *wire.Envelope, k kindCodecs, resp response, err error) {
	if env.GetCorrelation() == 0 || env.GetReplyAddress() == "" {
		return
	}
	out := &wire.Envelope{Op: wire.Envelope_OP_REPLY, Correlation: env.GetCorrelation(),
		Kind: env.GetKind(), EntityId: env.GetEntityId(), RequestId: env.GetRequestId()}
	encodeOutcome(out, k, env.GetOp() == wire.Envelope_OP_QUERY, resp, err)
	if out.Status == wire.Envelope_STATUS_MOVED && h.net != nil {
		if v, ok := h.net.view(); ok {
			out.ViewVersion = v.Version
		}
	}
	h.root.Send(protoactor.NewPID(env.GetReplyAddress(), env.GetReplyId()), out)
}

// serveEnvelope decodes a request envelope and admits it locally, when
// this host owns the entity's shard; otherwise it answers MOVED.
func (h *Host) serveEnvelope(env *wire.Envelope) {
	fail := func(err error) {
		h.log.Warn("envelope refused", "op", env.GetOp().String(), "kind", env.GetKind(), "entity", env.GetEntityId(), "from", env.GetReplyAddress(), "err", err)
		h.replyTo(env, nil, response{}, err)
	}
	k, ok := h.kinds[env.GetKind()]
	if !ok {
		fail(fmt.Errorf("%w: %q is not hosted here", ErrUnknownKind, env.GetKind()))
		return
	}
	if env.GetEntityId() == "" {
		fail(fmt.Errorf("%w: no entity ID", ErrBadEnvelope))
		return
	}
	e := machine.Entity{Kind: env.GetKind(), ID: env.GetEntityId()}
	rt, err := h.routeOf(e)
	switch {
	case err != nil:
		h.replyTo(env, nil, response{}, fmt.Errorf("%w: %w", ErrMoved, err))
		return
	case rt.remote:
		h.replyTo(env, nil, response{}, fmt.Errorf("%w: %s is owned by %s in view %d", ErrMoved, e, rt.addr, rt.version))
		return
	case env.GetShardEpoch() > rt.epoch:
		// The sender routed by a newer assignment than this host knows.
		h.replyTo(env, nil, response{}, fmt.Errorf("%w: %s routed under shard epoch %d, this node holds %d", ErrMoved, e, env.GetShardEpoch(), rt.epoch))
		return
	}
	req := &request{entity: e, requestID: env.GetRequestId()}
	if dl := env.GetDeadlineUnixNano(); dl > 0 {
		req.deadline = time.Unix(0, dl)
		if time.Now().After(req.deadline) {
			return // the sender no longer waits
		}
	}
	switch env.GetOp() {
	case wire.Envelope_OP_QUERY:
		req.query = true
	case wire.Envelope_OP_COMPLETION:
		req.completion = true
		req.actionID = machine.ActionID(env.GetActionId())
		if req.result, err = k.decodeResult(env.GetPayload()); err != nil {
			fail(err)
			return
		}
	default:
		if req.input, err = k.decodeInput(env.GetPayload()); err != nil {
			fail(err)
			return
		}
	}
	if env.GetCorrelation() != 0 && env.GetReplyAddress() != "" {
		req.done = func(resp response) { h.replyTo(env, k, resp, nil) }
	}
	if err := h.admit(req); err != nil {
		h.replyTo(env, k, response{}, err)
	}
}
