package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/phasm-go/phasm/shard"
)

// The cluster RPC: JSON over HTTP/1.1 on the admin address, over mutual TLS
// when Config.TLS is set. See the package documentation for the protocol.
const (
	pathJoin      = "/v1/cluster/join"
	pathHeartbeat = "/v1/cluster/heartbeat"
	pathLeave     = "/v1/cluster/leave"
	pathRemove    = "/v1/cluster/remove"
	pathStatus    = "/v1/cluster/status"

	// headerForwarded marks a request a member forwarded to the leader; a
	// forwarded request is never forwarded again.
	headerForwarded = "Phasm-Forwarded"

	// maxRPCBody bounds request and response bodies.
	maxRPCBody = 1 << 20
)

type joinRequest struct {
	ID     shard.NodeID `json:"id"`
	Raft   string       `json:"raft"`
	Remote string       `json:"remote"`
	Admin  string       `json:"admin"`
	Shards int          `json:"shards"`
}

type joinResponse struct {
	Leader      shard.NodeID `json:"leader"`
	Incarnation uint64       `json:"incarnation"`
	Voter       bool         `json:"voter"`
}

type heartbeatRequest struct {
	ID          shard.NodeID `json:"id"`
	Incarnation uint64       `json:"incarnation"`
}

type heartbeatResponse struct {
	Leader shard.NodeID `json:"leader"`
	// Rejoin: the leader does not count this incarnation as a live member
	// (it is Down, removed, or superseded); the node must join again.
	Rejoin bool `json:"rejoin,omitempty"`
}

type leaveRequest struct {
	ID          shard.NodeID `json:"id"`
	Incarnation uint64       `json:"incarnation"`
}

type removeRequest struct {
	ID shard.NodeID `json:"id"`
}

type errorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Wire error codes and the sentinels they stand for, in the order errors
// are matched when encoding.
var errorCodes = []struct {
	code   string
	status int
	err    error
}{
	{"not_leader", http.StatusMisdirectedRequest, ErrNotLeader},
	{"no_leader", http.StatusServiceUnavailable, ErrNoLeader},
	{"shutdown", http.StatusServiceUnavailable, ErrShutdown},
	{"join_rejected", http.StatusForbidden, ErrJoinRejected},
	{"last_member", http.StatusConflict, ErrLastMember},
	{"owns_shards", http.StatusConflict, ErrMemberOwnsShards},
	{"unknown_member", http.StatusNotFound, ErrUnknownMember},
	{"invalid_transition", http.StatusConflict, ErrInvalidTransition},
	{"stale_incarnation", http.StatusConflict, ErrStaleIncarnation},
	{"bad_request", http.StatusBadRequest, ErrInvalidCommand},
	{"identity", http.StatusForbidden, ErrIdentity},
}

func codeOf(err error) (string, int) {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code, c.status
		}
	}
	return "internal", http.StatusInternalServerError
}

func errorOf(code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return c.err
		}
	}
	return ErrRPC
}

func (n *Node) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("POST "+pathJoin, handle(n, pathJoin, true, func(r joinRequest) (joinResponse, error) { return n.leaderJoin(r) }))
	m.Handle("POST "+pathHeartbeat, handle(n, pathHeartbeat, false, n.leaderHeartbeat))
	m.Handle("POST "+pathLeave, handle(n, pathLeave, true, func(r leaveRequest) (struct{}, error) { return struct{}{}, n.leaderLeave(r) }))
	m.Handle("POST "+pathRemove, handle(n, pathRemove, true, func(r removeRequest) (struct{}, error) { return struct{}{}, n.leaderRemove(r) }))
	m.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, n.Status()) })
	return m
}

// identified is a request made by a node about itself.
type identified interface{ nodeID() shard.NodeID }

func (r joinRequest) nodeID() shard.NodeID      { return r.ID }
func (r heartbeatRequest) nodeID() shard.NodeID { return r.ID }
func (r leaveRequest) nodeID() shard.NodeID     { return r.ID }
func (r removeRequest) nodeID() shard.NodeID    { return r.ID }

// checkIdentity binds a request to its caller's certificate on mutual
// TLS: a node speaks only for itself (the certificate's Common Name is its
// node ID, as DevCA.IssueNode makes it), and only members forward other
// nodes' requests. Without TLS there is no identity to check.
func (n *Node) checkIdentity(r *http.Request, id shard.NodeID) error {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	peer := shard.NodeID(r.TLS.PeerCertificates[0].Subject.CommonName)
	if r.Header.Get(headerForwarded) != "" {
		if _, ok := n.View().Member(peer); ok {
			return nil
		}
		return fmt.Errorf("%w: a request for %q forwarded by %q, which is not a member", ErrIdentity, id, peer)
	}
	if peer != id {
		return fmt.Errorf("%w: the certificate names %q, the request node %q", ErrIdentity, peer, id)
	}
	return nil
}

// handle decodes a request, checks its caller's identity, runs fn, and
// when fn answers ErrNotLeader and forward is set (and the request was not
// itself forwarded) passes the request on to the leader once.
func handle[Req identified, Resp any](n *Node, path string, forward bool, fn func(Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRPCBody)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Code: "bad_request", Message: err.Error()})
			return
		}
		if err := n.checkIdentity(r, req.nodeID()); err != nil {
			n.log.Warn("cluster RPC refused", "path", path, "from", r.RemoteAddr, "err", err)
			code, status := codeOf(err)
			writeJSON(w, status, errorResponse{Code: code, Message: err.Error()})
			return
		}
		resp, err := fn(req)
		if errors.Is(err, ErrNotLeader) && forward && r.Header.Get(headerForwarded) == "" {
			if addr := n.leaderAdmin(); addr != "" && addr != n.adminAddr {
				var fresp Resp
				if err = n.call(r.Context(), addr, path, req, &fresp, true); err == nil {
					resp = fresp
				}
			}
		}
		if err != nil {
			var re *RemoteError
			if errors.As(err, &re) {
				code, status := codeOf(re.Err)
				writeJSON(w, status, errorResponse{Code: code, Message: re.Message})
				return
			}
			code, status := codeOf(err)
			writeJSON(w, status, errorResponse{Code: code, Message: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// call posts req to addr's path and decodes the answer into resp. A
// transport failure wraps ErrRPC; an error answer is a *RemoteError.
func (n *Node) call(ctx context.Context, addr, path string, req, resp any, forwarded bool) error {
	timeout := n.cfg.RPCTimeout
	if path != pathHeartbeat {
		timeout += 2 * n.cfg.ApplyTimeout // the leader may change the Raft configuration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return doRPC(ctx, n.client, n.scheme, addr, http.MethodPost, path, req, resp, forwarded)
}

func doRPC(ctx context.Context, client *http.Client, scheme, addr, method, path string, req, resp any, forwarded bool) error {
	var body io.Reader
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRPC, err)
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, method, scheme+"://"+addr+path, body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRPC, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if forwarded {
		hr.Header.Set(headerForwarded, "1")
	}
	res, err := client.Do(hr)
	if err != nil {
		return fmt.Errorf("%w: %s%s: %w", ErrRPC, addr, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxRPCBody))
	if err != nil {
		return fmt.Errorf("%w: %s%s: reading the answer: %w", ErrRPC, addr, path, err)
	}
	if res.StatusCode != http.StatusOK {
		var e errorResponse
		if err := json.Unmarshal(data, &e); err != nil || e.Code == "" {
			return fmt.Errorf("%w: %s%s: HTTP %d", ErrRPC, addr, path, res.StatusCode)
		}
		return &RemoteError{Addr: addr, Code: e.Code, Message: e.Message, Err: errorOf(e.Code)}
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%w: %s%s: malformed answer: %w", ErrRPC, addr, path, err)
	}
	return nil
}

// FetchStatus asks the node at the admin address addr for its Status, the
// way `phasm status` does. tlsConf is the caller's mutual TLS configuration
// (see LoadTLS), nil for a cluster without TLS; timeout bounds the call.
func FetchStatus(ctx context.Context, addr string, tlsConf *tls.Config, timeout time.Duration) (Status, error) {
	scheme := "http"
	tr := &http.Transport{}
	if tlsConf != nil {
		scheme = "https"
		tr.TLSClientConfig = clientTLS(tlsConf)
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st Status
	err := doRPC(ctx, &http.Client{Transport: tr}, scheme, addr, http.MethodGet, pathStatus, nil, &st, false)
	return st, err
}
