package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// stubClasses stands in for the decline table (internal/model/declines) in these tests.
func stubClasses(code string) recoup.DeclineClass {
	return map[string]recoup.DeclineClass{"insufficient_funds": recoup.DeclineInsufficientFunds,
		"stolen_card": recoup.DeclineDoNotRetry, "try_again_later": recoup.DeclineIssuerUnavailable}[code]
}

func TestRetryAdviceReachesBillingSignedWithItsPayload(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var got []map[string]any
	srv := billingReceiver(t, secret, &got)
	hook, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Webhook: hook, ClassifyDecline: stubClasses}
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	in := activities.AdviseRetryInput{WorkflowID: "dunning-inv_1", InvoiceID: "inv_1", CustomerID: "cus_1",
		Failure:  recoup.RetryAttempt{EventID: "evt_1", At: at, Code: "try_again_later"},
		Attempts: []recoup.RetryAttempt{{EventID: "evt_1", At: at, Code: "try_again_later"}},
		CardBIN:  "555555", Country: "US", TimeZone: "America/New_York", Now: at}
	res, err := acts.AdviseRetry(context.Background(), in)
	if err != nil || res.Advice.Delivery != "sent" {
		t.Fatalf("advice %+v, %v", res, err)
	}
	// Stolen card: no retry, and no retry_at in the payload.
	in.Failure = recoup.RetryAttempt{EventID: "evt_2", At: at.Add(time.Hour), Code: "stolen_card"}
	in.Attempts = append(in.Attempts, in.Failure)
	if res, err := acts.AdviseRetry(context.Background(), in); err != nil || !res.Advice.DoNotRetry {
		t.Fatalf("stolen card advice %+v, %v", res, err)
	}
	if len(got) != 2 {
		t.Fatalf("billing received %d webhooks, want 2", len(got))
	}
	d0, d1 := got[0]["data"].(map[string]any), got[1]["data"].(map[string]any)
	if got[0]["type"] != recoup.WebhookRetryAdvice || got[0]["webhook-id"] != "dunning-inv_1/retry-advice/evt_1" ||
		d0["class"] != "issuer_unavailable" || d0["do_not_retry"] != false || d0["retry_at"] != "2026-03-04T15:00:00Z" ||
		d0["remaining_attempts"] != float64(7) || d0["failure_event_id"] != "evt_1" || d0["reason"] == "" {
		t.Errorf("first advice: %v", got[0])
	}
	if _, has := d1["retry_at"]; has || d1["do_not_retry"] != true || d1["class"] != "do_not_retry" || got[1]["webhook-id"] != "dunning-inv_1/retry-advice/evt_2" {
		t.Errorf("do-not-retry advice: %v", got[1])
	}
}

func TestRetryAdviceRejectedByBillingIsRecordedNotRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnprocessableEntity) }))
	t.Cleanup(srv.Close)
	hook, err := webhook.New(webhook.Config{URL: srv.URL, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Webhook: hook, ClassifyDecline: stubClasses}
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	res, err := acts.AdviseRetry(context.Background(), activities.AdviseRetryInput{WorkflowID: "dunning-inv_1", InvoiceID: "inv_1",
		Failure: recoup.RetryAttempt{EventID: "evt_1", At: at, Code: "insufficient_funds"}, Attempts: []recoup.RetryAttempt{{EventID: "evt_1", At: at}}, Now: at})
	if err != nil || res.Advice.Delivery != "rejected" || res.Advice.Class != recoup.DeclineInsufficientFunds {
		t.Fatalf("advice %+v, %v: want it recorded as rejected", res.Advice, err)
	}
}

// Without a classifier of its own, the advice classifies the failure code with the prompt
// set's decline table (prompts/declines.yaml): the worker's wiring.
func TestRetryAdviceClassifiesWithTheShippedDeclineTable(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }}}
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, time.UTC)
	for code, want := range map[string]recoup.DeclineClass{
		"insufficient_funds": recoup.DeclineInsufficientFunds, "stripe:stolen_card": recoup.DeclineDoNotRetry,
		"iso8583:91": recoup.DeclineIssuerUnavailable, "no_such_code_anywhere": recoup.DeclineUnknown,
	} {
		f := recoup.RetryAttempt{EventID: "evt_" + code, At: at, Code: code}
		res, err := acts.AdviseRetry(context.Background(), activities.AdviseRetryInput{WorkflowID: "dunning-inv_1", InvoiceID: "inv_1",
			CustomerID: "cus_1", Failure: f, Attempts: []recoup.RetryAttempt{f}, CardBIN: "424242", Country: "US",
			TimeZone: "America/New_York", Now: at})
		if err != nil || res.Advice.Class != want {
			t.Errorf("%s: advice class %q (%v), want %q", code, res.Advice.Class, err, want)
		}
	}
}
