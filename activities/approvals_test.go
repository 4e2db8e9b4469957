package activities_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// holdFor turns on the approval policy of the fixture's prompt set: a discount above 5%,
// the first SMS; 2 h, then the rules without incentive.
func holdFor(f *fixture) {
	ap := &f.acts.Prompts().Policy.Approval
	ap.Enabled, ap.Timeout, ap.OnTimeout = true, policy.Duration(2*time.Hour), recoup.ApprovalOnTimeoutRules
	ap.Rules.DiscountAbovePercent, ap.Rules.FirstSMS = 5, true
}

func TestADecisionTheApprovalRulesMatchAsksForApprovalNamingThem(t *testing.T) {
	f := newFixture(t)
	holdFor(f)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "discount_percent", 10, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	d, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t))
	if err != nil {
		t.Fatal(err)
	}
	req := d.Approval
	if req == nil || !slices.Equal(req.Rules, []string{"discount_above_percent 5", "first_sms"}) {
		t.Fatalf("approval = %+v, want the discount and first-SMS rules", req)
	}
	if req.Timeout != 2*time.Hour || req.OnTimeout != recoup.ApprovalOnTimeoutRules || req.Fallback == nil ||
		req.Fallback.DecidedBy != recoup.DecidedByRules || req.Fallback.Incentive.Kind != recoup.IncentiveNone {
		t.Fatalf("approval = %+v, want the rules' message without incentive as the fallback", req)
	}
	if l := req.Limits; l.Plan != "pro" || l.MaxDiscountPercent != 10 || !slices.Contains(l.Channels, recoup.ChannelSMS) {
		t.Fatalf("limits = %+v, want plan pro's caps", l)
	}
}

func TestAnEditOfAHeldMessagePassesTheModelsGuardrailsOrIsRefused(t *testing.T) {
	f := newFixture(t)
	in := decideInput(f, t)
	held := recoup.Decision{Step: 1, Channel: recoup.ChannelEmail, Tone: "friendly", Subject: "Your payment",
		Message: "Your card was declined. Updating it takes a minute.", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone},
		DecidedBy: recoup.DecidedByLLM, PromptVersion: "v1"}
	check := func(e recoup.ApprovalEdit) activities.CheckEditResult {
		t.Helper()
		res, err := f.acts.CheckApprovalEdit(context.Background(), activities.CheckEditInput{WorkflowID: wfID, InvoiceID: "inv_1", Step: 1,
			History: in.History, AmountMinor: 4900, Currency: "USD", Now: now, Held: held, Edit: e})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if v := check(recoup.ApprovalEdit{By: "bob", Message: "Pay now or we call a lawyer."}).Violations; len(v) == 0 || !strings.Contains(strings.Join(v, ";"), "threatens") {
		t.Fatalf("violations = %q, want the threat refused", v)
	}
	if v := check(recoup.ApprovalEdit{By: "bob", Incentive: &recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}}).Violations; len(v) != 0 {
		t.Fatalf("a 10%% discount on a text that does not speak of it: %q", v)
	}
	ext := &recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 30}
	if v := check(recoup.ApprovalEdit{By: "bob", Incentive: ext}).Violations; len(v) == 0 || !strings.Contains(v[0], "outside 1..14") {
		t.Fatalf("violations = %q, want the plan's cap", v)
	}
	res := check(recoup.ApprovalEdit{By: "bob", Reason: "loyal", Tone: "firm", Incentive: &recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7}})
	d := res.Decision
	if len(res.Violations) != 0 || d.Tone != "firm" || d.Incentive.Value != 7 || d.DecidedBy != recoup.DecidedBySupport || d.SendAt.IsZero() || d.PromptVersion != "v1" {
		t.Fatalf("result = %+v, want the edited decision with its window", res)
	}
}

// first_sms holds only the first SMS ever sent to the customer: once one went out (any run),
// the next SMS decision is not held for it.
func TestFirstSMSRuleHoldsOnlyTheFirstSMS(t *testing.T) {
	f := newFixture(t)
	holdFor(f)
	o := fakes.NewOpenAI(t, answer("sms", "friendly", "none", 0, "", "Your card was declined. Updating it takes a minute."))
	f.useLLM(t, o, 5*time.Second)
	if d, err := f.acts.DecideStrategy(context.Background(), decideInput(f, t)); err != nil || d.Approval == nil || d.Approval.Rules[0] != "first_sms" {
		t.Fatalf("first SMS decision: %+v, %v; want it held by first_sms", d.Approval, err)
	}
	if _, err := f.acts.SendSMS(context.Background(), sendInput(1, recoup.ChannelSMS)); err != nil {
		t.Fatal(err)
	}
	in := decideInput(f, t)
	in.Step = 2
	if d, err := f.acts.DecideStrategy(context.Background(), in); err != nil || d.Approval != nil {
		t.Fatalf("second SMS decision: %+v, %v; want it not held", d.Approval, err)
	}
}
