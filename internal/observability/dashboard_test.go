package observability_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/provider"
)

const dashboardPath = "../../docs/grafana/recoup.json"

type dashboardPanel struct {
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *json.RawMessage `json:"datasource"`
	Targets    []struct {
		Datasource map[string]string `json:"datasource"`
		Expr       string            `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboard struct {
	Title         string           `json:"title"`
	UID           string           `json:"uid"`
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []dashboardVar `json:"list"`
	} `json:"templating"`
}

type dashboardVar struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query string `json:"query"`
}

var metricNameRE = regexp.MustCompile(`\b(?:recoup|temporal)_[a-z0-9_]+`)

// dashboardMetrics parses the dashboard, checks its shape, and returns every metric name
// its queries use, with the panel that uses it.
func dashboardMetrics(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q uid %q schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	if !slices.Contains(d.Templating.List, dashboardVar{Name: "DS_PROMETHEUS", Type: "datasource", Query: "prometheus"}) {
		t.Error("no DS_PROMETHEUS datasource variable")
	}
	names := map[string]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource["uid"] != "${DS_PROMETHEUS}" {
					t.Errorf("panel %q queries datasource %v, want ${DS_PROMETHEUS}", p.Title, tg.Datasource)
				}
				for _, n := range metricNameRE.FindAllString(tg.Expr, -1) {
					names[n] = p.Title
				}
			}
		}
	}
	walk(d.Panels)
	return names
}

// exposedNames are the sample names Prometheus stores for the gathered families: a
// histogram family also yields _bucket, _sum and _count.
func exposedNames(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, mf := range fams {
		out[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		}
	}
	return out
}

// TestDashboardQueriesExistingRecoupMetrics checks the recoup_* names against the business
// and ingress metrics; the temporal_* names are checked against a real worker's metrics in
// TestSDKMetricsAndTracingFromARealWorker.
func TestDashboardQueriesExistingRecoupMetrics(t *testing.T) {
	reg := observability.NewRegistry()
	in := observability.NewIngressMetrics(reg)
	in.Received.WithLabelValues("http", "payment.failed", "accepted").Inc()
	in.Deliveries.WithLabelValues("delivered").Inc()
	in.DeliveryLag.Observe(1)
	b := observability.NewBusiness(reg)
	b.RunStarted()
	b.RunEnded("recovered")
	b.Message("email", "friendly", "llm", "sent")
	b.IncentiveOffered("discount_percent", 10)
	b.LLMRequest(1, 1, 1, provider.FromStatus("openai", 500, "", ""))
	b.LLMFallback(observability.FallbackError)
	b.SendReconciled("email")
	b.Incident("opened", "critical", 45*time.Second)
	b.RunHeld()
	have := exposedNames(families(t, reg))

	used := dashboardMetrics(t)
	var recoup []string
	for name, panel := range used {
		if !strings.HasPrefix(name, "recoup_") {
			continue
		}
		recoup = append(recoup, name)
		if !have[name] {
			t.Errorf("panel %q queries %s, which Recoup does not export", panel, name)
		}
	}
	for _, want := range []string{"recoup_runs_started_total", "recoup_runs_ended_total", "recoup_messages_total",
		"recoup_llm_request_seconds_bucket", "recoup_llm_fallbacks_total", "recoup_provider_errors_total",
		"recoup_sends_reconciled_total", "recoup_events_received_total", "recoup_event_delivery_lag_seconds_bucket",
		"recoup_event_backlog"} {
		if !slices.Contains(recoup, want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
