package observability_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/recoup-dunning/recoup/internal/observability"
)

func TestSDKMetricsHandlerSharesTheRegistry(t *testing.T) {
	reg := observability.NewRegistry()
	observability.NewBusiness(reg).RunStarted()
	h, err := observability.SDKMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.Counter("temporal_test").Inc(1)
	tagged := h.WithTags(map[string]string{"namespace": "default", "activity_type": "SendEmail"})
	tagged.Counter("temporal_test").Inc(2)
	tagged.Timer("temporal_activity_execution_latency").Record(30 * time.Millisecond)
	tagged.Gauge("temporal_worker_task_slots_available").Update(7)

	fams := families(t, reg)
	c := fams["temporal_test_total"]
	if c.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("temporal_test_total = %v, want a counter (monotonic counters)", c)
	}
	if m := series(c, map[string]string{"activity_type": "SendEmail", "namespace": "default"}); m == nil || m.GetCounter().GetValue() != 2 {
		t.Errorf("tagged temporal_test_total = %v", m)
	}
	if m := series(c, nil); len(c.GetMetric()) != 2 || m == nil {
		t.Errorf("temporal_test_total series = %v", c.GetMetric())
	}
	lat := fams["temporal_activity_execution_latency_seconds"]
	if lat.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("temporal_activity_execution_latency_seconds = %v", lat)
	}
	hist := lat.GetMetric()[0].GetHistogram()
	var bounds []float64
	for _, b := range hist.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	if !slices.Equal(bounds, observability.SDKLatencyBuckets) || hist.GetSampleCount() != 1 || hist.GetSampleSum() != 0.03 {
		t.Errorf("histogram: buckets %v, count %d, sum %v", bounds, hist.GetSampleCount(), hist.GetSampleSum())
	}
	if g := series(fams["temporal_worker_task_slots_available"], map[string]string{"namespace": "default"}); g == nil || g.GetGauge().GetValue() != 7 {
		t.Errorf("temporal_worker_task_slots_available = %v", g)
	}
	for _, name := range []string{"recoup_runs_started_total", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing: the SDK metrics must share the registry", name)
		}
	}
	for _, mf := range fams {
		for _, lp := range labelNames(mf) {
			if strings.HasPrefix(lp, "otel_scope") {
				t.Errorf("%s has label %s", mf.GetName(), lp)
			}
		}
	}
	if fams["target_info"] != nil {
		t.Error("target_info is exported")
	}

	// One /metrics scrape shows both.
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"recoup_runs_started_total 1",
		`temporal_test_total{activity_type="SendEmail",namespace="default"} 2`,
		`temporal_activity_execution_latency_seconds_bucket{activity_type="SendEmail",namespace="default",le="0.05"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestSDKMetricsHandlerNeedsRegistry(t *testing.T) {
	if _, err := observability.SDKMetricsHandler(nil); err == nil {
		t.Fatal("no error without a registry")
	}
}
