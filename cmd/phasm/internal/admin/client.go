package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
)

// ErrUnauthorized: the node refused the bearer token (HTTP 401).
var ErrUnauthorized = errors.New("admin: unauthorized (missing or wrong --admin-token)")

// APIError is an error response of the admin API.
type APIError struct {
	StatusCode int    // the HTTP status
	Code       string // a stable error code (admin.unauthorized, actor.overloaded, ...)
	Message    string // the human message
}

// Error describes the response.
func (e *APIError) Error() string {
	return fmt.Sprintf("admin: HTTP %d: %s: %s", e.StatusCode, e.Code, e.Message)
}

// Unwrap returns ErrUnauthorized for a 401.
func (e *APIError) Unwrap() error {
	if e.StatusCode == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	return nil
}

// Client calls a node's admin API.
type Client struct {
	// Addr is host:port or a base URL (http://host:port).
	Addr string
	// Token is sent as a bearer token when set.
	Token string
	// HTTP is the client used (default http.DefaultClient).
	HTTP *http.Client
}

func (c *Client) url(path string) string {
	base := c.Addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return strings.TrimSuffix(base, "/") + path
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin: reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
			eb.Error = kinds.ErrorJSON{Code: "http", Message: strings.TrimSpace(string(b))}
		}
		return &APIError{StatusCode: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *json.RawMessage:
		*o = append((*o)[:0], b...)
		return nil
	default:
		return json.Unmarshal(b, out)
	}
}

func entityPath(kind, id string) string {
	return "/v1/entities/" + url.PathEscape(kind) + "/" + url.PathEscape(id)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// View returns the node's cluster view (GET /v1/cluster/view): the
// shard map and the members a cluster client routes by. A single node
// answers an *APIError with code admin.not_clustered.
func (c *Client) View(ctx context.Context) (cluster.View, error) {
	var v cluster.View
	err := c.do(ctx, http.MethodGet, "/v1/cluster/view", nil, &v)
	return v, err
}

// Send sends a JSON input to an entity; requestID, when set, is added as
// the input's "request_id".
func (c *Client) Send(ctx context.Context, kind, id string, input []byte, requestID string) (Reply, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(input, &m); err != nil || m == nil {
		if err == nil {
			err = errors.New("null")
		}
		return Reply{}, fmt.Errorf("%w: the input must be a JSON object: %v", kinds.ErrBadInput, err)
	}
	if requestID != "" {
		b, _ := json.Marshal(requestID)
		m["request_id"] = b
	}
	body, err := json.Marshal(m)
	if err != nil {
		return Reply{}, err
	}
	var r Reply
	err = c.do(ctx, http.MethodPost, entityPath(kind, id), body, &r)
	return r, err
}

// State returns an entity's state as JSON.
func (c *Client) State(ctx context.Context, kind, id string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, entityPath(kind, id), nil, &raw)
	return raw, err
}

// Journal returns an entity's decoded journal as JSON.
func (c *Client) Journal(ctx context.Context, kind, id string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, entityPath(kind, id)+"/journal", nil, &raw)
	return raw, err
}
