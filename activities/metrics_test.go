package activities_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// withMetrics gives the fixture's activities business metrics on a registry of their own.
func withMetrics(f *fixture) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	f.acts.Metrics = observability.NewBusiness(reg)
	f.det.Metrics = f.acts.Metrics
	return reg
}

// value is the current value of the counter or histogram sample count of family name with
// exactly the labels given (nil: the family's only series), or 0 when absent.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestActivitiesRecordRunAndMessageMetrics(t *testing.T) {
	f := newFixture(t)
	reg := withMetrics(f)
	ctx := context.Background()

	if _, err := f.acts.PlanRun(ctx, activities.PlanRunInput{WorkflowID: wfID, InvoiceID: "inv_1", CustomerID: "cus_1", StartedAt: now}); err != nil {
		t.Fatal(err)
	}
	in := sendInput(1, recoup.ChannelEmail)
	in.Decision.DecidedBy = recoup.DecidedByLLM
	if res, err := f.acts.SendEmail(ctx, in); err != nil || res.Delivery != postgres.SendSent {
		t.Fatalf("send = %+v, %v", res, err)
	}
	// A retry that finds the message sent does not count it again.
	if _, err := f.acts.SendEmail(ctx, in); err != nil {
		t.Fatal(err)
	}
	// Twilio rejects the number with its own code.
	f.tw.Always(twilioRejection(http.StatusBadRequest))
	if _, err := f.acts.SendSMS(ctx, sendInput(1, recoup.ChannelSMS)); err == nil {
		t.Fatal("SMS to a rejected number succeeded")
	}
	// The answer to a send is lost: marked for reconciliation.
	lost := sendInput(2, recoup.ChannelEmail)
	cctx, cancel := context.WithCancel(ctx)
	f.sg.Always(fakes.Response{Hang: true, Before: cancel})
	if res, err := f.acts.SendEmail(cctx, lost); err != nil || res.Delivery != postgres.SendReconcile {
		t.Fatalf("lost send = %+v, %v", res, err)
	}
	f.sg.Always(fakes.Response{})
	// Log delivery mode.
	f.acts.Email = nil
	if res, err := f.acts.SendEmail(ctx, sendInput(3, recoup.ChannelEmail)); err != nil || res.Delivery != postgres.SendLogged {
		t.Fatalf("logged send = %+v, %v", res, err)
	}
	if _, err := f.acts.AnnounceOffer(ctx, activities.OfferInput{WorkflowID: wfID, InvoiceID: "inv_1", CustomerID: "cus_1",
		Step: 3, Incentive: recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.acts.FinishRun(ctx, activities.FinishRunInput{WorkflowID: wfID, InvoiceID: "inv_1", CustomerID: "cus_1",
		Outcome: recoup.StatusRecovered, Steps: 3, AmountMinor: 4900, Currency: "USD", EndedAt: now}); err != nil {
		t.Fatal(err)
	}

	msg := func(ch, by, delivery string) map[string]string {
		return map[string]string{"channel": ch, "tone": "friendly", "decided_by": by, "delivery": delivery}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"recoup_runs_started_total", nil, 1},
		{"recoup_runs_ended_total", map[string]string{"outcome": "recovered"}, 1},
		{"recoup_messages_total", msg("email", "llm", "sent"), 1},
		{"recoup_messages_total", msg("email", "unknown", "reconcile"), 1},
		{"recoup_messages_total", msg("email", "unknown", "logged"), 1},
		{"recoup_messages_total", msg("sms", "unknown", "sent"), 0},
		{"recoup_sends_reconciled_total", map[string]string{"channel": "email"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "twilio", "code": "21211"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "sendgrid", "code": "outcome_unknown"}, 1},
		{"recoup_incentive_offered_total", map[string]string{"kind": "discount_percent"}, 1},
		{"recoup_incentive_value_offered", map[string]string{"kind": "discount_percent"}, 10},
	} {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestDecideRecordsModelMetrics(t *testing.T) {
	f := newFixture(t)
	reg := withMetrics(f)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "none", 0, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	ctx := context.Background()
	decide := func(step int) recoup.Decision {
		t.Helper()
		in := decideInput(f, t)
		in.Step = step
		d, err := f.acts.DecideStrategy(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decide(1); d.DecidedBy != recoup.DecidedByLLM {
		t.Fatalf("decision = %+v", d)
	}
	o.SetReply("string")
	if d := decide(2); d.DecidedBy != recoup.DecidedByRules {
		t.Fatalf("decision = %+v", d)
	}
	o.Always(fakes.Response{Status: http.StatusServiceUnavailable})
	if d := decide(3); d.DecidedBy != recoup.DecidedByRules {
		t.Fatalf("decision = %+v", d)
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"recoup_llm_request_seconds", nil, 3},
		{"recoup_llm_tokens_total", map[string]string{"kind": "prompt"}, 20},
		{"recoup_llm_tokens_total", map[string]string{"kind": "completion"}, 10},
		{"recoup_llm_fallbacks_total", map[string]string{"reason": observability.FallbackInvalidJSON}, 1},
		{"recoup_llm_fallbacks_total", map[string]string{"reason": observability.FallbackError}, 1},
		{"recoup_llm_errors_total", map[string]string{"reason": "http_5xx"}, 1},
		{"recoup_provider_errors_total", map[string]string{"provider": "openai", "code": "503"}, 1},
	} {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "recoup_llm_fallbacks_total" && len(mf.GetMetric()) != 2 {
			t.Errorf("%d fallback series, want 2 (invalid_json, error)", len(mf.GetMetric()))
		}
	}
}

func TestDecideWithNoChannelCountsFallback(t *testing.T) {
	f := newFixture(t)
	reg := withMetrics(f)
	f.useLLM(t, fakes.NewOpenAI(t, "string"), 5*time.Second)
	in := decideInput(f, t)
	in.Excluded = []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS}
	_, _ = f.acts.DecideStrategy(context.Background(), in) // the rules decide whatever they decide without a channel
	if got := value(t, reg, "recoup_llm_fallbacks_total", map[string]string{"reason": observability.FallbackNoChannel}); got != 1 {
		t.Fatalf("no_channel fallbacks = %v, want 1", got)
	}
	if got := value(t, reg, "recoup_llm_request_seconds", nil); got != 0 {
		t.Fatalf("model asked %v times with no channel", got)
	}
}
