package observability

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// TracingEnabled reports whether getenv (os.Getenv) configures an OTLP trace endpoint:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and neither
// OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none turns it off.
func TracingEnabled(getenv func(string) string) bool {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(env("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// SetupTracing turns on OpenTelemetry tracing when TracingEnabled(os.Getenv): it builds an
// OTLP exporter configured by the standard OTEL_EXPORTER_OTLP_* variables (endpoint,
// headers, TLS, timeout, compression; OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL "http/protobuf",
// the default, or "grpc"), a batching TracerProvider whose resource has service.name
// serviceName (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it; the sampler
// follows OTEL_TRACES_SAMPLER), installs it and the W3C TraceContext+Baggage propagator
// globally, and returns the Temporal SDK's tracing interceptor for
// client.Options.Interceptors. shutdown flushes and stops the exporter.
//
// Without an endpoint tracing is off: the interceptor is nil (add nothing to
// client.Options.Interceptors) and shutdown does nothing.
func SetupTracing(ctx context.Context, serviceName string) (interceptor.Interceptor, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	if !TracingEnabled(os.Getenv) {
		return nil, noop, nil
	}
	protocol := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		protocol = strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, noop, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, noop, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", serviceName)),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, noop, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	otel.SetTextMapPropagator(prop)
	ic, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            tp.Tracer("temporal-sdk-go"),
		TextMapPropagator: prop,
	})
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, noop, fmt.Errorf("Temporal tracing interceptor: %w", err)
	}
	return ic, tp.Shutdown, nil
}

// HTTPMiddleware traces the requests h serves as spans named operation (with the route
// pattern, when the mux set one, in the span name), continuing a trace whose context the
// caller sent (traceparent). /metrics, /healthz and /readyz are not traced, nor SendGrid
// Inbound Parse posts (their path holds a secret). With tracing off
// the global providers are no-ops and it only passes requests through.
func HTTPMiddleware(h http.Handler, operation string) http.Handler {
	return otelhttp.NewHandler(h, operation,
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/metrics", "/healthz", "/readyz":
				return false
			}
			// SendGrid Inbound Parse carries its secret in the path: no span records it.
			return !strings.HasPrefix(r.URL.Path, "/v1/providers/sendgrid/inbound/")
		}),
		otelhttp.WithSpanNameFormatter(func(operation string, r *http.Request) string {
			if r.Pattern != "" {
				return operation + " " + r.Pattern
			}
			return operation + " " + r.Method
		}),
	)
}
