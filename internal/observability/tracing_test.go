package observability_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/recoup-dunning/recoup/internal/observability"
)

var otelVars = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
	"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES"}

// clearOTel unsets the OTEL_* variables for the test (t.Setenv restores them after).
func clearOTel(t *testing.T) {
	for _, k := range otelVars {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTracingOffWithoutEndpoint(t *testing.T) {
	clearOTel(t)
	ic, shutdown, err := observability.SetupTracing(context.Background(), "recoup-worker")
	if err != nil || ic != nil || shutdown == nil {
		t.Fatalf("SetupTracing = %v, %v, %v; want nil interceptor, a shutdown, no error", ic, shutdown != nil, err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTracingEnabled(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, false},
	} {
		if got := observability.TracingEnabled(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("TracingEnabled(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}

func TestSetupTracingRejectsUnknownProtocol(t *testing.T) {
	clearOTel(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if ic, _, err := observability.SetupTracing(context.Background(), "recoup-worker"); err == nil || ic != nil {
		t.Fatalf("SetupTracing with http/json = %v, %v; want an error", ic, err)
	}
}

// withGlobalTracing installs a recording TracerProvider and the W3C propagator globally for
// the test.
func withGlobalTracing(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		otel.SetTracerProvider(oldTP)
		otel.SetTextMapPropagator(oldProp)
	})
	return rec
}

func TestHTTPMiddlewareContinuesTheCallersTrace(t *testing.T) {
	rec := withGlobalTracing(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	h := observability.HTTPMiddleware(mux, "ingress")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d", w.Code)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (health checks are not traced)", len(spans))
	}
	s := spans[0]
	if s.Name() != "ingress POST /v1/events" || s.SpanContext().TraceID().String() != traceID ||
		s.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %q trace %s parent %s", s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID())
	}
}

func TestHTTPMiddlewarePassesThroughWhenTracingIsOff(t *testing.T) {
	h := observability.HTTPMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", "yes")
		w.WriteHeader(http.StatusTeapot)
	}), "ingress")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	if w.Code != http.StatusTeapot || w.Header().Get("X-Seen") != "yes" {
		t.Fatalf("response %d %v", w.Code, w.Header())
	}
}
