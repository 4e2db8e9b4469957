package activities_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

const retryPromise = "No worries, we will try again automatically on Friday."

// decideWithAdvice decides step 1 of an insufficient_funds failure (a class whose plan may
// promise a retry) with the given advice, the model answering retryPromise; it returns the
// decision, the request the model received, the input and the policy.
func decideWithAdvice(t *testing.T, adv *recoup.RetryAdvice) (recoup.Decision, string, activities.DecideInput, *policy.Policy) {
	t.Helper()
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("email", "friendly", "none", 0, "Your payment", retryPromise))
	f.useLLM(t, o, 5*time.Second)
	in := decideInput(f, t)
	in.FailureCode, in.Advice = "stripe:insufficient_funds", adv
	d, err := f.acts.DecideStrategy(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(modelRequest(t, o, 0))
	return d, string(req), in, f.acts.Prompts().Policy
}

// noRetryPromise fails the test when text promises a retry (guardrails.yaml retry_promises).
func noRetryPromise(t *testing.T, pol *policy.Policy, text string) {
	t.Helper()
	if v := pol.CheckDeclineText("message", text, policy.DeclineFacts{Class: recoup.DeclineInsufficientFunds, NoRetryPromise: true}); len(v) != 0 {
		t.Errorf("rules message %q promises a retry: %q", text, v)
	}
}

func TestARetryPromiseIsRefusedWhenTheAdviceSaysDoNotRetry(t *testing.T) {
	d, prompt, _, pol := decideWithAdvice(t, &recoup.RetryAdvice{Class: recoup.DeclineInsufficientFunds, DoNotRetry: true,
		Reason: "Visa budget spent (15 in 30 days)", AdvisedAt: now})
	want := "advice: no retry (Visa budget spent (15 in 30 days))"
	if d.DecidedBy != recoup.DecidedByRules || !strings.Contains(strings.Join(d.Violations, "; "), "tried again") ||
		!strings.Contains(strings.Join(d.Violations, "; "), want) || !strings.Contains(d.Rationale, want) {
		t.Fatalf("decision %+v: want the rules to decide, refusing the model's retry promise because of the advice", d)
	}
	noRetryPromise(t, pol, d.Message)
	for _, s := range []string{"No further automatic retry: Visa budget spent (15 in 30 days).", "Never write that the payment will be tried again"} {
		if !strings.Contains(prompt, s) {
			t.Errorf("the prompt lacks %q", s)
		}
	}
}

func TestARetryPromiseIsRefusedWithoutAnAdvice(t *testing.T) {
	d, prompt, _, pol := decideWithAdvice(t, nil)
	if d.DecidedBy != recoup.DecidedByRules || !strings.Contains(strings.Join(d.Violations, "; "), "advice: no retry advised yet") {
		t.Fatalf("decision %+v: want the retry promise refused while no retry is advised", d)
	}
	noRetryPromise(t, pol, d.Message)
	if !strings.Contains(prompt, "No further automatic retry: none advised yet.") {
		t.Errorf("the prompt lacks the missing advice")
	}
}

func TestARetryPromiseIsAcceptedWhenBillingWillRetry(t *testing.T) {
	at := now.Add(50 * time.Hour)
	d, prompt, in, _ := decideWithAdvice(t, &recoup.RetryAdvice{Class: recoup.DeclineInsufficientFunds, RetryAt: at, Remaining: 3,
		Reason: "insufficient funds: retry on the next likely payday", AdvisedAt: now})
	if d.DecidedBy != recoup.DecidedByLLM || d.Message != retryPromise {
		t.Fatalf("decision %+v (violations %q): want the model's retry promise sent", d, d.Violations)
	}
	loc, err := time.LoadLocation(in.History.TimeZone)
	if err != nil || in.History.TimeZone == "" {
		loc = time.UTC
	}
	line := "Billing will retry the payment at " + at.In(loc).Format("Mon 2 Jan 2006 15:04 MST") + " (3 attempts left)."
	if !strings.Contains(prompt, line) {
		t.Errorf("the prompt lacks %q", line)
	}
	if strings.Contains(prompt, "Never write that the payment will be tried again") {
		t.Errorf("the prompt forbids the retry promise billing's advice allows")
	}
}

func TestARetryPromiseIsRefusedOnceTheAdvisedRetryIsPast(t *testing.T) {
	d, _, _, _ := decideWithAdvice(t, &recoup.RetryAdvice{Class: recoup.DeclineInsufficientFunds, RetryAt: now.Add(-time.Hour), Remaining: 2, AdvisedAt: now.Add(-48 * time.Hour)})
	if d.DecidedBy != recoup.DecidedByRules || !strings.Contains(strings.Join(d.Violations, "; "), "advice: the advised retry is past") {
		t.Fatalf("decision %+v: want the retry promise refused once the advised retry is past", d)
	}
}
