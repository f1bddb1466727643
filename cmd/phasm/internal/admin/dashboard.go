package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// dashboardFiles are the dashboard's static files: plain HTML, CSS and
// JavaScript, no build step, nothing fetched from elsewhere.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCSP allows the page to load only its own files and call only
// its own node: a dashboard that works offline and leaks nothing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardHandler serves the embedded files under /dashboard/. The files
// themselves are public (they hold no data); the /v1 routes they call
// require the bearer token when the node has one.
func dashboardHandler() http.Handler {
	var files http.Handler
	if sub, err := fs.Sub(dashboardFiles, "dashboard"); err == nil {
		files = http.StripPrefix("/dashboard/", http.FileServerFS(sub))
	} else { // cannot happen: the folder is embedded at build time
		files = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusInternalServerError, "admin.internal", "the embedded dashboard is missing: "+err.Error())
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
