// Package admin is a phasm node's admin HTTP API (JSON over net/http) and
// its client, used by `phasm status` and `phasm send`.
//
// Routes (every /v1 route requires "Authorization: Bearer TOKEN" when the
// node has a token):
//
//	GET  /healthz                          200 {"status":"ok"} while the process serves
//	GET  /readyz                           200 when the host accepts requests, else 503
//	GET  /metrics                          the node's metrics in Prometheus text format
//	GET  /                                 redirects to /dashboard/
//	GET  /dashboard/                       the dashboard: static files embedded in the
//	                                       binary (no external network), which poll the
//	                                       /v1 routes below with the token the page is given
//	GET  /v1/series                        the host's recent throughput and persist
//	                                       latency, one point per second (SeriesBody)
//	GET  /v1/status                        node ID, kinds, host stats, shards, store
//	GET  /v1/cluster/view                  the node's cluster.View as JSON (shard map,
//	                                       members and their addresses); 404
//	                                       admin.not_clustered on a single node
//	POST /v1/entities/{kind}/{id}          body: the input as JSON, with an optional
//	                                       "request_id"; reply {"accepted":true} or
//	                                       {"accepted":false,"error":{"code","message"}}
//	GET  /v1/entities/{kind}/{id}          the state, read through a query
//	GET  /v1/entities/{kind}/{id}/journal  the decoded journal (store Load + codecs)
//
// Errors other than a machine's rejection are {"error":{"code","message"}}
// with a status: 400 bad input, 401 missing or wrong token, 404 unknown
// kind, 503 overloaded or stopping, 504 timeout, 500 otherwise.
package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phasm-go/phasm/actor"
	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// Config configures the admin handler.
type Config struct {
	// NodeID is reported by /v1/status.
	NodeID string
	// Kinds are the kinds hosted on the node's host.
	Kinds *kinds.Set
	// Store is the node's store (journals).
	Store persistence.Store
	// StoreName describes the store ("pebble /data", "postgres").
	StoreName string
	// Shards is the host's shard count.
	Shards int
	// Token, when set, is required as a bearer token on every /v1 route.
	Token string
	// Ready reports whether the node accepts requests.
	Ready func() bool
	// Started is when the node started (for uptime).
	Started time.Time
	// RequestTimeout bounds one entity request (default 10s).
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// Logger receives request errors (default: discard).
	Logger *slog.Logger
	// Metrics is what GET /metrics exposes in Prometheus format: the
	// registry the node's host (and the Go runtime collectors) report to.
	Metrics prometheus.Gatherer
	// Cluster, when set (cluster mode), returns what /v1/status reports
	// as "cluster": the node's cluster.Status.
	Cluster func() any
	// View, when set (cluster mode), returns the node's current cluster
	// view for GET /v1/cluster/view: what a cluster client routes by.
	View func() cluster.View
	// Series, when set, is what GET /v1/series reports (the dashboard's
	// throughput and latency charts); the caller runs its sampling.
	Series *Series
}

// Status is the body of GET /v1/status.
type Status struct {
	NodeID  string      `json:"node_id"`  // the node's ID
	Kinds   []string    `json:"kinds"`    // the hosted kinds
	Shards  int         `json:"shards"`   // the host's shard count
	Store   string      `json:"store"`    // the store backend and where
	UptimeS float64     `json:"uptime_s"` // seconds since the node started
	Ready   bool        `json:"ready"`    // accepting requests
	Stats   actor.Stats `json:"stats"`    // the host's counters
	// Cluster is the node's cluster status (cluster.Status) in cluster
	// mode, null for a single node.
	Cluster any `json:"cluster"`
}

// Reply is the body of POST /v1/entities/{kind}/{id}.
type Reply struct {
	Accepted bool             `json:"accepted"`        // the machine accepted the input and it is durable
	Error    *kinds.ErrorJSON `json:"error,omitempty"` // the machine's rejection
}

// ErrorBody is the body of an error response.
type ErrorBody struct {
	Error kinds.ErrorJSON `json:"error"` // what went wrong
}

type server struct {
	cfg Config
}

// NewHandler returns the admin API.
func NewHandler(cfg Config) http.Handler {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.cfg.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError)}))
	}
	mux.Handle("GET /dashboard/", dashboardHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusFound)
	})
	mux.HandleFunc("GET /v1/status", s.auth(s.status))
	mux.HandleFunc("GET /v1/series", s.auth(s.series))
	mux.HandleFunc("GET /v1/cluster/view", s.auth(s.view))
	mux.HandleFunc("POST /v1/entities/{kind}/{id}", s.auth(s.send))
	mux.HandleFunc("GET /v1/entities/{kind}/{id}", s.auth(s.state))
	mux.HandleFunc("GET /v1/entities/{kind}/{id}/journal", s.auth(s.journal))
	mux.HandleFunc("/v1/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "admin.not_found", "no such route: "+r.Method+" "+r.URL.Path)
	}))
	return mux
}

func (s *server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token != "" {
			got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !found || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="phasm"`)
				writeError(w, http.StatusUnauthorized, "admin.unauthorized", "missing or wrong bearer token")
				return
			}
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, ErrorBody{Error: kinds.ErrorJSON{Code: errCode, Message: msg}})
}

// runtimeError maps a runtime error to a status and an error code.
func runtimeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, kinds.ErrUnknownKind), errors.Is(err, actor.ErrUnknownKind):
		writeError(w, http.StatusNotFound, "admin.unknown_kind", err.Error())
	case errors.Is(err, kinds.ErrBadInput), errors.Is(err, actor.ErrBadInput):
		writeError(w, http.StatusBadRequest, "admin.bad_input", err.Error())
	case errors.Is(err, actor.ErrOverloaded):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "actor.overloaded", err.Error())
	case errors.Is(err, actor.ErrStopped), errors.Is(err, actor.ErrNotStarted), errors.Is(err, actor.ErrUnavailable),
		errors.Is(err, actor.ErrMoved), errors.Is(err, actor.ErrNoOwner):
		writeError(w, http.StatusServiceUnavailable, "actor.unavailable", err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "admin.timeout", err.Error())
	case errors.Is(err, actor.ErrEntityFailed):
		writeError(w, http.StatusInternalServerError, "actor.entity_failed", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "admin.internal", err.Error())
	}
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	st := Status{
		NodeID: s.cfg.NodeID, Kinds: kinds.Names(), Shards: s.cfg.Shards, Store: s.cfg.StoreName,
		UptimeS: time.Since(s.cfg.Started).Seconds(), Ready: s.cfg.Ready(), Stats: s.cfg.Kinds.Host.Stats(),
	}
	if s.cfg.Cluster != nil {
		st.Cluster = s.cfg.Cluster()
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) view(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.View == nil {
		writeError(w, http.StatusNotFound, "admin.not_clustered", "this node is not a cluster member: it has no cluster view")
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.View())
}

func (s *server) series(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Series == nil {
		writeError(w, http.StatusNotFound, "admin.no_series", "this node keeps no throughput series")
		return
	}
	writeJSON(w, http.StatusOK, SeriesBody{NodeID: s.cfg.NodeID, Points: s.cfg.Series.Points()})
}

// splitRequestID removes an optional top-level "request_id" string from
// a JSON object and returns the rest.
func splitRequestID(body []byte) ([]byte, string, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return nil, "", fmt.Errorf("%w: the body must be a JSON object: %v", kinds.ErrBadInput, err)
	}
	raw, found := m["request_id"]
	if !found {
		return body, "", nil
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return nil, "", fmt.Errorf("%w: request_id must be a string", kinds.ErrBadInput)
	}
	delete(m, "request_id")
	rest, err := json.Marshal(m)
	return rest, id, err
}

func (s *server) send(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "admin.bad_input", "reading the body: "+err.Error())
		return
	}
	input, requestID, err := splitRequestID(body)
	if err != nil {
		runtimeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	err = s.cfg.Kinds.Send(ctx, r.PathValue("kind"), r.PathValue("id"), input, requestID)
	var merr *machine.Error
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, Reply{Accepted: true})
	case errors.As(err, &merr):
		writeJSON(w, http.StatusOK, Reply{Accepted: false, Error: kinds.ErrorOf(err)})
	default:
		runtimeError(w, err)
	}
}

func (s *server) state(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	kind, id := r.PathValue("kind"), r.PathValue("id")
	st, err := s.cfg.Kinds.Query(ctx, kind, id)
	if err != nil {
		runtimeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entity": kind + "/" + id, "state": st})
}

func (s *server) journal(w http.ResponseWriter, r *http.Request) {
	kind, id := r.PathValue("kind"), r.PathValue("id")
	d, err := s.cfg.Kinds.Descriptor(kind)
	if err != nil {
		runtimeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	l, err := s.cfg.Store.Load(ctx, machine.Entity{Kind: kind, ID: id})
	if err != nil {
		runtimeError(w, err)
		return
	}
	j, err := d.Journal(id, l)
	if err != nil {
		runtimeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}
