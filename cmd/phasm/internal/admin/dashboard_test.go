package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, srv *httptest.Server, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestDashboardServesEmbeddedFiles: the page and its assets come from the
// binary, under a policy that forbids any other origin; / leads to it; the
// files need no token (they hold no data) while the series they poll does.
func TestDashboardServesEmbeddedFiles(t *testing.T) {
	reg, inputs, _ := hostMetrics(t)
	series := NewSeries(reg, 10)
	now := time.Now()
	_ = series.Sample(now)
	inputs.WithLabelValues("counter", "accepted").Add(3)
	if err := series.Sample(now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(Config{NodeID: "n1", Token: "s3cret", Series: series}))
	defer srv.Close()

	resp, _ := get(t, srv, "/", "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/dashboard/" {
		t.Errorf("GET /: %d to %q, want a redirect to /dashboard/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]string{
		"/dashboard/":          `<script src="app.js"`,
		"/dashboard/app.js":    "/v1/cluster/view",
		"/dashboard/style.css": "#grid",
	} {
		resp, body := get(t, srv, path, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q: want only the node itself allowed", path, csp)
		}
		for _, ext := range []string{"http://", "https://", "//cdn"} {
			if path != "/dashboard/" && strings.Contains(body, ext) {
				t.Errorf("%s refers to another origin (%q)", path, ext)
			}
		}
	}

	if resp, _ := get(t, srv, "/v1/series", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/series without the token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, srv, "/v1/series", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/series with a wrong token: %d, want 401", resp.StatusCode)
	}
	resp, body := get(t, srv, "/v1/series", "s3cret")
	var sb SeriesBody
	if err := json.Unmarshal([]byte(body), &sb); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/series: %d %v: %s", resp.StatusCode, err, body)
	}
	if sb.NodeID != "n1" || len(sb.Points) != 1 || sb.Points[0].AcceptedPerS != 3 {
		t.Errorf("series %+v: want n1's one point at 3 accepted/s", sb)
	}

	noSeries := httptest.NewServer(NewHandler(Config{NodeID: "n1"}))
	defer noSeries.Close()
	if resp, body := get(t, noSeries, "/v1/series", ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "admin.no_series") {
		t.Errorf("GET /v1/series on a node without a series: %d %s, want 404 admin.no_series", resp.StatusCode, body)
	}
}
