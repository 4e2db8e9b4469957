package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/recoup-dunning/recoup/internal/observability"
)

// The profiler is served only when asked for (RECOUP_PPROF=1 wraps the handler), and the
// wrapped handler still serves /healthz and /metrics.
func TestWithPprof(t *testing.T) {
	plain := MetricsHandler(observability.NewRegistry())
	get := func(h http.Handler, path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if code := get(plain, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("without RECOUP_PPROF, /debug/pprof/ answered %d, want 404", code)
	}
	wrapped := WithPprof(plain)
	for path, want := range map[string]int{"/debug/pprof/": 200, "/healthz": 200, "/metrics": 200, "/nothing": 404} {
		if code := get(wrapped, path); code != want {
			t.Errorf("GET %s answered %d, want %d", path, code, want)
		}
	}
}
