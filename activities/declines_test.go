package activities_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

func TestDecideRefusesAModelPromisingARetryForADoNotRetryDecline(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("email", "friendly", "none", 0, "Your payment", "No worries, we will try again automatically tomorrow."))
	f.useLLM(t, o, 5*time.Second)
	in := decideInput(f, t)
	in.FailureCode = "stripe:stolen_card"
	d, err := f.acts.DecideStrategy(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if d.DecidedBy != recoup.DecidedByRules || d.DeclineClass != recoup.DeclineDoNotRetry ||
		!strings.Contains(strings.Join(d.Violations, "; "), "decline class do_not_retry promises no retry") {
		t.Fatalf("decision %+v: want the rules to decide, refusing the model's retry promise", d)
	}
	if !strings.Contains(d.Message, "Please use a different card or payment method.") {
		t.Errorf("rules message %q: want do_not_retry's own", d.Message)
	}
	// The model was told the class and its plan.
	req, _ := json.Marshal(modelRequest(t, o, 0))
	for _, want := range []string{"decline class do_not_retry", "Never write that the payment will be tried again"} {
		if !strings.Contains(string(req), want) {
			t.Errorf("the prompt lacks %q", want)
		}
	}
}

func TestDecideForAnIssuerOutageSendsNothingUntilARetryFailed(t *testing.T) {
	f := newFixture(t)
	o := fakes.NewOpenAI(t, answer("email", "friendly", "none", 0, "Your payment", "Please check your payment details."))
	f.useLLM(t, o, 5*time.Second)
	in := decideInput(f, t)
	in.FailureCode, in.Failures = "iso8583:91", 1
	d, err := f.acts.DecideStrategy(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Channel != recoup.ChannelNone || d.DeclineClass != recoup.DeclineIssuerUnavailable || !strings.Contains(d.DeciderNote, "until a retry of the payment has failed") {
		t.Fatalf("decision %+v: want nothing sent, and why", d)
	}
	if n := len(o.Requests()); n != 0 {
		t.Errorf("the model was asked %d times for a step that sends nothing", n)
	}
	in.Step, in.Failures = 2, 2 // a retry failed with the same code
	if d, err = f.acts.DecideStrategy(context.Background(), in); err != nil || !d.Channel.Valid() {
		t.Fatalf("after a failed retry: %+v, %v; want a message", d, err)
	}
}

func TestUnknownFailureCodesAreCountedByNamespaceNotByCode(t *testing.T) {
	f := newFixture(t)
	reg := withMetrics(f)
	for _, code := range []string{"totally_new_code", "adyen:999", "worldpay:REFUSED", "card_declined"} {
		in := decideInput(f, t)
		in.FailureCode = code
		d, err := f.acts.DecideStrategy(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if want := recoup.DeclineUnknown; code != "card_declined" && d.DeclineClass != want {
			t.Errorf("%s: class %s, want %s", code, d.DeclineClass, want)
		}
	}
	for ns, want := range map[string]float64{"stripe": 1, "adyen": 1, "other": 1} {
		if got := value(t, reg, "recoup_decline_codes_unknown_total", map[string]string{"namespace": ns}); got != want {
			t.Errorf("unknown codes in namespace %s: %v, want %v", ns, got, want)
		}
	}
}

func TestAnEditContradictingTheHeldMessagesDeclineClassIsRefused(t *testing.T) {
	f := newFixture(t)
	in := decideInput(f, t)
	check := func(class recoup.DeclineClass, msg string) []string {
		t.Helper()
		held := recoup.Decision{Step: 1, Channel: recoup.ChannelEmail, Tone: "friendly", Subject: "Your payment",
			Message: "Your bank declined the payment.", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone},
			DecidedBy: recoup.DecidedByLLM, PromptVersion: "v1", DeclineClass: class}
		res, err := f.acts.CheckApprovalEdit(context.Background(), activities.CheckEditInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1,
			History: in.History, AmountMinor: 4900, Currency: "USD", Now: now, Held: held, Edit: recoup.ApprovalEdit{By: "bob", Message: msg}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Violations) == 0 && res.Decision.DeclineClass != class {
			t.Errorf("edited decision's class %s, want %s", res.Decision.DeclineClass, class)
		}
		return res.Violations
	}
	if v := check(recoup.DeclineDoNotRetry, "We will retry the payment tomorrow."); !strings.Contains(strings.Join(v, ";"), "promises no retry") {
		t.Errorf("violations %q, want the retry promise refused", v)
	}
	if v := check(recoup.DeclineAuthenticationRequired, "Please update your card."); !strings.Contains(strings.Join(v, ";"), "asks for card details") {
		t.Errorf("violations %q, want the card details refused", v)
	}
	if v := check(recoup.DeclineInsufficientFunds, "We will retry the payment in a few days."); len(v) != 0 {
		t.Errorf("insufficient_funds may promise a retry: %q", v)
	}
}

func TestAnUnknownFailureCodeIsLoggedOncePerProcessForOperatorsToAdd(t *testing.T) {
	f := newFixture(t)
	var logs strings.Builder
	f.acts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	code := "stripe:code_nobody_knows_" + strings.ReplaceAll(t.Name(), "/", "_") // unique to this test
	for step := 1; step <= 3; step++ {
		in := decideInput(f, t)
		in.FailureCode, in.Step = code, step
		if _, err := f.acts.DecideStrategy(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "failure code not in declines.yaml"); n != 1 || !strings.Contains(logs.String(), "namespace=stripe") {
		t.Errorf("logged %d times, want once with its namespace:\n%s", n, logs.String())
	}
}
