package activities_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

var now = time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC) // 10:00 in New York

func decideInput(f *fixture, t *testing.T) activities.DecideInput {
	t.Helper()
	h, err := f.acts.FetchCustomerHistory(context.Background(), activities.FetchHistoryInput{WorkflowID: wfID, CustomerID: "cus_1", InvoiceID: "inv_1", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return activities.DecideInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1, TotalSteps: 4, History: h,
		FailureCode: "card_declined", AmountMinor: 4900, Currency: "USD", Now: now}
}

func answer(channel, tone, kind string, value int, subject, message string) string {
	b, _ := json.Marshal(map[string]any{"channel": channel, "tone": tone,
		"incentive": map[string]any{"kind": kind, "value": value}, "subject": subject, "message": message,
		"rationale": "Long-time customer; a friendly nudge should do."})
	return string(b)
}

func storedDecision(t *testing.T, f *fixture, step int) (decidedBy string, violations []string) {
	t.Helper()
	err := f.st.Pool().QueryRow(context.Background(),
		`SELECT decided_by, violations FROM decisions WHERE workflow_id = $1 AND step = $2`, wfID, step).Scan(&decidedBy, &violations)
	if err != nil {
		t.Fatal(err)
	}
	return decidedBy, violations
}

func TestDecideUsesModelAnswerWithinPolicy(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "discount_percent", 10, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	d, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t))
	if err != nil {
		t.Fatal(err)
	}
	if d.DecidedBy != recoup.DecidedByLLM || d.Channel != recoup.ChannelSMS || d.Incentive.Value != 10 || d.Model != "gpt-fake" {
		t.Fatalf("decision = %+v", d)
	}
	if len(d.PromptVersion) != 12 || len(d.Violations) != 0 || !d.SendAt.Equal(now) {
		t.Fatalf("decision = %+v", d)
	}
	if d.DeciderNote != "model gpt-fake answered within policy" {
		t.Fatalf("decider note = %q", d.DeciderNote)
	}
	if by, _ := storedDecision(t, f, 1); by != "llm" {
		t.Fatalf("stored decided_by = %s", by)
	}
	// The model sees no contact data, and is asked for the JSON schema.
	req, _ := json.Marshal(modelRequest(t, o, 0))
	for _, pii := range []string{"ada@example.com", "+14155550123", "Ada", "Lovelace"} {
		if strings.Contains(string(req), pii) {
			t.Errorf("the prompt contains %q", pii)
		}
	}
	rf := modelRequest(t, o, 0)["response_format"].(map[string]any)
	if rf["type"] != "json_schema" {
		t.Fatalf("response_format = %v", rf)
	}
}

func TestDecideFallsBackToRules(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(o *fakes.OpenAI)
		timeout time.Duration
		want    string // a violation must contain this
		note    string // the decider note must say this
	}{
		{"invalid JSON", func(o *fakes.OpenAI) { o.SetReply("string") }, 5 * time.Second, "not valid JSON", "did not fit the schema"},
		{"discount above the plan cap", func(o *fakes.OpenAI) {
			o.SetReply(answer("email", "friendly", "discount_percent", 100, "Hi", "Free month!"))
		}, 5 * time.Second, "discount 100%", "broke the policy"},
		{"link from the model", func(o *fakes.OpenAI) {
			o.SetReply(answer("email", "friendly", "none", 0, "Pay now", "Pay at https://evil.example/pay"))
		}, 5 * time.Second, "contains a link", "broke the policy"},
		{"channel without consent", func(o *fakes.OpenAI) {
			o.SetReply(answer("carrier-pigeon", "friendly", "none", 0, "Hi", "Please pay."))
		}, 5 * time.Second, "channel", "broke the policy"},
		{"refusal", func(o *fakes.OpenAI) { o.SetRefusal("I can't help with that.") }, 5 * time.Second, "model refused", "the model refused"},
		{"server error", func(o *fakes.OpenAI) { o.Always(fakes.Response{Status: http.StatusInternalServerError}) }, 5 * time.Second, "model call failed", "the model call failed"},
		{"timeout", func(o *fakes.OpenAI) { o.Always(fakes.Response{Hang: true}) }, 100 * time.Millisecond, "model call failed", "the model call failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			o := fakes.NewOpenAI(t, "")
			tc.setup(o)
			f.useLLM(t, o, tc.timeout)
			d, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t))
			if err != nil {
				t.Fatal(err)
			}
			if d.DecidedBy != recoup.DecidedByRules || d.Channel != recoup.ChannelEmail || d.Message == "" {
				t.Fatalf("decision = %+v, want the rules' email", d)
			}
			if !strings.Contains(strings.Join(d.Violations, "|"), tc.want) {
				t.Fatalf("violations = %q, want one containing %q", d.Violations, tc.want)
			}
			if !strings.HasPrefix(d.DeciderNote, "rules: ") || !strings.Contains(d.DeciderNote, tc.note) || !strings.Contains(d.DeciderNote, "gpt-fake") {
				t.Fatalf("decider note = %q, want the rules, the model's name and %q", d.DeciderNote, tc.note)
			}
			by, violations := storedDecision(t, f, 1)
			if by != "rules" || len(violations) == 0 {
				t.Fatalf("stored decision by %s with violations %q", by, violations)
			}
		})
	}
}

func TestDecideWithoutModelUsesRules(t *testing.T) {
	f := newFixture(t)
	in := decideInput(f, t)
	in.Step = 3
	in.Excluded = []recoup.Channel{recoup.ChannelEmail}
	d, err := f.acts.DecideStrategy(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	// Rule 3 prefers email; email is excluded in this run, so SMS. Pro plan: 14 extension days.
	if d.DecidedBy != recoup.DecidedByRules || d.Channel != recoup.ChannelSMS || d.Incentive != (recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 14}) {
		t.Fatalf("decision = %+v", d)
	}
	if len(d.Violations) != 0 || !strings.Contains(d.Message, "$49.00") && !strings.Contains(d.Message, "49.00") {
		t.Fatalf("decision = %+v", d)
	}
	if !strings.Contains(d.DeciderNote, "no model configured") || !strings.Contains(d.DeciderNote, "OPENAI_BASE_URL") {
		t.Fatalf("decider note = %q, want it to say no model is configured and how to configure one", d.DeciderNote)
	}
}

func TestDecideHonoursQuietHours(t *testing.T) {
	f := newFixture(t)
	in := decideInput(f, t)
	in.Now = time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC) // 02:00 in New York
	d, err := f.acts.DecideStrategy(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC) // 09:00 in New York
	if !d.SendAt.Equal(want) {
		t.Fatalf("send at %s, want %s", d.SendAt, want)
	}
}

func TestFetchCustomerHistory(t *testing.T) {
	f := newFixture(t)
	_, err := f.acts.FetchCustomerHistory(context.Background(), activities.FetchHistoryInput{CustomerID: "cus_nobody", Now: now})
	if typ, nonRetryable := appErrType(err); typ != recoup.ErrTypeUnknownCustomer || !nonRetryable {
		t.Fatalf("unknown customer: error = %v", err)
	}
	ctx := context.Background()
	for i, ok := range []bool{true, true, false} {
		id := "evt_h" + string(rune('a'+i))
		body, _ := json.Marshal(map[string]string{"id": id})
		if _, err := f.st.RecordEvent(ctx, postgres.Event{EventID: id, Type: "payment.succeeded", Source: "test", InvoiceID: "inv_h",
			CustomerID: "cus_1", OccurredAt: now.AddDate(0, -i-1, 0), Body: body,
			Attempt: &postgres.PaymentAttempt{Succeeded: ok, AmountMinor: 4900, Currency: "USD"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.FinishRun(ctx, "dunning-old", "inv_old", "cus_1", "recovered", "", 2, now.AddDate(0, -6, 0)); err != nil {
		t.Fatal(err)
	}
	h, err := f.acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{WorkflowID: wfID, CustomerID: "cus_1", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := activities.CustomerHistory{CustomerID: "cus_1", Plan: "pro", Locale: "en-US", TimeZone: "America/New_York",
		EmailReachable: true, SMSReachable: true, PaymentsSucceeded: 2, PaymentsFailed: 1, EarlierRuns: 1, EarlierRunsRecovered: 1}
	if h != want {
		t.Fatalf("history = %+v\nwant      %+v", h, want)
	}
}

// billingReceiver verifies Standard Webhooks signatures with the reference library.
func billingReceiver(t *testing.T, secret string, got *[]map[string]any) *httptest.Server {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		m["webhook-id"] = r.Header.Get("webhook-id")
		*got = append(*got, m)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOfferAndExhaustionAreAnnouncedToBilling(t *testing.T) {
	f := newFixture(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var got []map[string]any
	srv := billingReceiver(t, secret, &got)
	hook, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	f.acts.Webhook = hook
	ctx := context.Background()
	offer, err := f.acts.AnnounceOffer(ctx, activities.OfferInput{WorkflowID: wfID, InvoiceID: "inv_1", CustomerID: "cus_1",
		Step: 2, Incentive: recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7}, Now: now})
	if err != nil || !offer.BillingNotified || !offer.ExpiresAt.Equal(now.AddDate(0, 0, 14)) {
		t.Fatalf("offer = %+v, %v", offer, err)
	}
	if _, err := f.acts.FinishRun(ctx, activities.FinishRunInput{WorkflowID: wfID, InvoiceID: "inv_1", CustomerID: "cus_1",
		Outcome: recoup.StatusExhausted, Steps: 4, AmountMinor: 4900, Currency: "USD", EndedAt: now}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["type"] != "dunning.offer" || got[1]["type"] != "dunning.exhausted" {
		t.Fatalf("billing received %v", got)
	}
	if got[0]["webhook-id"] != wfID+"/step-2/offer" {
		t.Fatalf("offer webhook-id = %v", got[0]["webhook-id"])
	}
	data := got[0]["data"].(map[string]any)
	if data["kind"] != "extension_days" || data["value"] != float64(7) || data["invoice_id"] != "inv_1" {
		t.Fatalf("offer data = %v", data)
	}
	var announced *time.Time
	if err := f.st.Pool().QueryRow(ctx, `SELECT announced_at FROM offers WHERE offer_key = $1`, offer.OfferKey).Scan(&announced); err != nil || announced == nil {
		t.Fatalf("offer not marked announced: %v", err)
	}
}
