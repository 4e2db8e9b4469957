package observability_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/provider"
)

func TestBusinessMetricsOnRegistry(t *testing.T) {
	reg := observability.NewRegistry()
	observability.NewIngressMetrics(reg) // the same registry holds the ingress metrics without conflict
	b := observability.NewBusiness(reg)

	b.RunStarted()
	b.RunStarted()
	b.RunEnded("recovered")
	b.Message("email", "friendly", "llm", "sent")
	b.Message("sms", "firm", "rules", "logged")
	b.IncentiveOffered("discount_percent", 10)
	b.IncentiveOffered("discount_percent", 15)
	b.IncentiveOffered("extension_days", 7)
	b.LLMRequest(1500*time.Millisecond, 100, 40, nil)
	b.LLMRequest(20*time.Second, 0, 0, fmt.Errorf("llm: %w: deadline exceeded", provider.ErrOutcomeUnknown))
	b.LLMRequest(time.Second, 0, 0, provider.FromStatus("openai", 429, "rate_limit_exceeded", "slow down"))
	b.LLMFallback(observability.FallbackError)
	b.LLMFallback(observability.FallbackViolation)
	b.ProviderError("twilio", provider.FromStatus("twilio", 400, "21211", "invalid To"))
	b.ProviderError("sendgrid", provider.FromStatus("sendgrid", 503, "", ""))
	b.ProviderError("sendgrid", nil) // not an error: not counted
	b.SendReconciled("email")

	fams := families(t, reg)
	counter := func(name string, labels map[string]string) float64 {
		t.Helper()
		m := series(fams[name], labels)
		if m == nil {
			t.Errorf("%s%v: no such series", name, labels)
			return -1
		}
		return m.GetCounter().GetValue()
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"recoup_runs_started_total", nil, 2},
		{"recoup_runs_ended_total", map[string]string{"outcome": "recovered"}, 1},
		{"recoup_messages_total", map[string]string{"channel": "email", "tone": "friendly", "decided_by": "llm", "delivery": "sent"}, 1},
		{"recoup_messages_total", map[string]string{"channel": "sms", "tone": "firm", "decided_by": "rules", "delivery": "logged"}, 1},
		{"recoup_incentive_offered_total", map[string]string{"kind": "discount_percent"}, 2},
		{"recoup_incentive_value_offered", map[string]string{"kind": "discount_percent"}, 25},
		{"recoup_incentive_value_offered", map[string]string{"kind": "extension_days"}, 7},
		{"recoup_llm_tokens_total", map[string]string{"kind": "prompt"}, 100},
		{"recoup_llm_tokens_total", map[string]string{"kind": "completion"}, 40},
		{"recoup_llm_errors_total", map[string]string{"reason": "timeout"}, 1},
		{"recoup_llm_errors_total", map[string]string{"reason": "rate_limited"}, 1},
		{"recoup_llm_fallbacks_total", map[string]string{"reason": "error"}, 1},
		{"recoup_llm_fallbacks_total", map[string]string{"reason": "violation"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "twilio", "code": "21211"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "sendgrid", "code": "503"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "openai", "code": "rate_limit_exceeded"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "openai", "code": "outcome_unknown"}, 1},
		{"recoup_sends_reconciled_total", map[string]string{"channel": "email"}, 1},
	} {
		if got := counter(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(fams["recoup_provider_errors_total"].GetMetric()); n != 4 {
		t.Errorf("%d provider error series, want 4", n)
	}
	h := fams["recoup_llm_request_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM || h.GetMetric()[0].GetHistogram().GetSampleCount() != 3 ||
		h.GetMetric()[0].GetHistogram().GetSampleSum() != 22.5 {
		t.Errorf("recoup_llm_request_seconds = %v", h)
	}
	for name, labels := range map[string][]string{
		"recoup_messages_total":        {"channel", "decided_by", "delivery", "tone"},
		"recoup_provider_errors_total": {"code", "provider"},
		"recoup_runs_ended_total":      {"outcome"},
	} {
		got := labelNames(fams[name])
		slices.Sort(got)
		if !slices.Equal(got, labels) {
			t.Errorf("%s labels = %v, want %v", name, got, labels)
		}
	}
}

func TestNilBusinessRecordsNothing(t *testing.T) {
	var b *observability.Business
	b.RunStarted()
	b.RunEnded("failed")
	b.Message("email", "friendly", "llm", "sent")
	b.IncentiveOffered("extension_days", 7)
	b.LLMRequest(time.Second, 1, 1, errors.New("x"))
	b.LLMFallback(observability.FallbackRefusal)
	b.ProviderError("twilio", errors.New("x"))
	b.SendReconciled("sms")
}

func TestBusinessRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	observability.NewBusiness(reg)
	defer func() {
		if recover() == nil {
			t.Fatal("registering the business metrics twice on one registry did not panic")
		}
	}()
	observability.NewBusiness(reg)
}

func TestProviderErrorCodeAndLLMErrorReason(t *testing.T) {
	unknown := fmt.Errorf("sendgrid: %w: read: connection reset", provider.ErrOutcomeUnknown)
	for _, c := range []struct {
		err          error
		code, reason string
	}{
		{provider.FromStatus("twilio", 400, "21211", ""), "21211", "http_4xx"},
		{provider.FromStatus("openai", 500, "", ""), "500", "http_5xx"},
		{provider.FromStatus("openai", 429, "", ""), "429", "rate_limited"},
		{fmt.Errorf("wrapped: %w", provider.FromStatus("sendgrid", 401, "", "")), "401", "http_4xx"},
		{&provider.Error{Provider: "sendgrid", Message: "could not connect"}, "connect", "connect"},
		{&provider.Error{Provider: "sendgrid", Message: "invalid message", Permanent: true}, "invalid", "other"},
		{unknown, "outcome_unknown", "timeout"},
		{errors.New("context canceled"), "other", "other"},
	} {
		if got := observability.ProviderErrorCode(c.err); got != c.code {
			t.Errorf("ProviderErrorCode(%v) = %q, want %q", c.err, got, c.code)
		}
		if got := observability.LLMErrorReason(c.err); got != c.reason {
			t.Errorf("LLMErrorReason(%v) = %q, want %q", c.err, got, c.reason)
		}
	}
}
