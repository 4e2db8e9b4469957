package activities_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
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
