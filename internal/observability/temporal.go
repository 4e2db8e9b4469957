package observability

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// SDKLatencyBuckets are the histogram boundaries, in seconds, of the Temporal SDK's
// latency metrics (the OpenTelemetry defaults are meant for milliseconds).
var SDKLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// SDKMetricsHandler returns a Temporal client.MetricsHandler (for client.Options.MetricsHandler)
// that records the SDK's metrics through an OpenTelemetry MeterProvider exported by the
// OpenTelemetry Prometheus exporter onto reg, so that one /metrics serves the SDK's metrics
// next to Recoup's. Call it once per registry.
//
// Names follow the exporter's translation: counters get "_total"
// (temporal_request_total, temporal_workflow_completed_total), latencies are histograms in
// seconds (temporal_activity_execution_latency_seconds_bucket,
// temporal_workflow_task_execution_latency_seconds_bucket), gauges keep their name
// (temporal_worker_task_slots_available). Labels are the SDK's tags (namespace,
// task_queue, workflow_type, activity_type, ...); no otel_scope_* labels or target_info.
func SDKMetricsHandler(reg *prometheus.Registry) (client.MetricsHandler, error) {
	if reg == nil {
		return nil, errors.New("observability: SDKMetricsHandler needs a registry")
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, err
	}
	seconds := sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: SDKLatencyBuckets}},
	)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(seconds))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                mp.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		OnError:              otel.Handle, // logged by OpenTelemetry's error handler, never a panic
	}), nil
}
