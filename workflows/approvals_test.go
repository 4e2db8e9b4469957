package workflows_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/workflows"
)

// limits are the edit bounds the tests' decisions carry (plan pro).
var limits = recoup.EditLimits{Plan: "pro", Tones: []string{"friendly", "firm"}, Channels: []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS},
	MaxDiscountPercent: 10, MaxExtensionDays: 14, SMSMaxChars: 160, EmailMaxChars: 1200, SubjectMaxChars: 100}

// heldAtStep1 makes step 1's decision (email, 10% off) ask for approval with onTimeout.
func heldAtStep1(w *world, onTimeout string) {
	w.decide = func(in activities.DecideInput) recoup.Decision {
		if in.Step != 1 {
			return decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
		}
		dec := decision(in, recoup.ChannelEmail, recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}, 0)
		dec.Subject = "Your payment"
		fb := decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
		fb.Message = "rules message"
		dec.Approval = &recoup.ApprovalRequest{Rules: []string{"amount_due_above USD 10.00"}, Timeout: day,
			OnTimeout: onTimeout, Fallback: &fb, Limits: limits}
		return dec
	}
	// The edit check: policy.CheckChoice stands in for the policy in force (no text lists).
	w.env.OnActivity(a.CheckApprovalEdit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CheckEditInput) (activities.CheckEditResult, error) {
			ans := activities.EditedAnswer(in.Held, in.Edit)
			if strings.Contains(ans.Message, "lawyer") {
				return activities.CheckEditResult{Violations: []string{`message threatens the customer ("lawyer")`}}, nil
			}
			dec := in.Held
			dec.Approval, dec.DecidedBy = nil, recoup.DecidedBySupport
			dec.Channel, dec.Tone, dec.Message = recoup.Channel(ans.Channel), ans.Tone, ans.Message
			dec.Incentive = recoup.Incentive{Kind: ans.Incentive.Kind, Value: ans.Incentive.Value}
			dec.SendAt, dec.SendUntil = in.Now, in.Now.Add(time.Hour)
			return activities.CheckEditResult{Decision: dec}, nil
		})
}

// releaseHeld stands in for ReleaseHeldMessage: what support (or the timeout) released goes
// as it is (the budget check has its own tests in activities); nothing sent is channel none.
func releaseHeld(in activities.ReleaseHeldInput) activities.ReleaseHeldResult {
	if in.Send == nil {
		d := in.Held
		d.Approval, d.Channel, d.Incentive = nil, recoup.ChannelNone, recoup.Incentive{Kind: recoup.IncentiveNone}
		return activities.ReleaseHeldResult{Decision: d}
	}
	return activities.ReleaseHeldResult{Decision: *in.Send}
}

func (w *world) stateAt(d time.Duration) *recoup.State {
	st := &recoup.State{}
	w.queryAt(d, st)
	return st
}

func approvalOutcomes(st recoup.State) []string {
	var out []string
	for _, r := range st.Approvals {
		out = append(out, r.Outcome+" by "+r.By)
	}
	return out
}

// counting is a metrics handler that counts recoup_approvals by outcome.
type counting struct {
	tags   map[string]string
	counts map[string]int64
}

func (c counting) WithTags(tags map[string]string) client.MetricsHandler {
	return counting{tags: tags, counts: c.counts}
}
func (c counting) Counter(name string) client.MetricsCounter {
	return counterFunc(func(n int64) {
		if name == workflows.MetricApprovals {
			c.counts[c.tags["outcome"]] += n
		}
	})
}
func (c counting) Gauge(string) client.MetricsGauge { return client.MetricsNopHandler.Gauge("") }
func (c counting) Timer(string) client.MetricsTimer { return client.MetricsNopHandler.Timer("") }

type counterFunc func(int64)

func (f counterFunc) Inc(n int64) { f(n) }

func TestAnApprovalRuleHoldsTheMessageUntilApprovedThenSendsItOnce(t *testing.T) {
	metrics := counting{counts: map[string]int64{}}
	w := newWorldWith(t, func(s *testsuite.WorkflowTestSuite) { s.SetMetricsHandler(metrics) })
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	held := w.stateAt(time.Hour)
	early := w.update(time.Hour, recoup.UpdateActNow, recoup.ActNowRequest{By: "bob"})
	approve := w.update(2*time.Hour, recoup.UpdateApprove, recoup.Approval{By: "alice", Reason: "checked the account"})
	again := w.update(3*time.Hour, recoup.UpdateApprove, recoup.Approval{By: "bob"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()

	if held.Status != recoup.StatusAwaitingApproval || held.Approval == nil || held.Approval.Rules[0] != "amount_due_above USD 10.00" {
		t.Fatalf("state while held = %s %+v, want awaiting_approval naming the rule", held.Status, held.Approval)
	}
	if !strings.Contains(held.Reason, "amount_due_above") || !strings.Contains(held.Reason, "10% off") {
		t.Fatalf("reason while held = %q, want the rule and the held message", held.Reason)
	}
	if early.rejected == nil || !strings.Contains(early.rejected.Error(), "approval") {
		t.Fatalf("act-now while held: %v, want a refusal naming the approval", early.rejected)
	}
	if approve.rejected != nil || !strings.Contains(approve.result.Message, "approved") {
		t.Fatalf("approve: %+v", approve)
	}
	if again.rejected == nil || !strings.Contains(again.rejected.Error(), "not awaiting approval") {
		t.Fatalf("second approve: %v, want 'not awaiting approval'", again.rejected)
	}
	// Step 2 moves back by the 2 hours step 1 was held.
	if !slices.Equal(w.sendTimes, []time.Duration{2 * time.Hour, 3*day + 2*time.Hour}) || w.sends[0].Decision.Incentive.Value != 10 {
		t.Fatalf("sends at %v (%+v), want step 1 once when approved (2h) and step 2 on day 3 plus the 2h held", w.sendTimes, w.sends)
	}
	if got := approvalOutcomes(st); !slices.Equal(got, []string{"approved by alice"}) || st.Approvals[0].Sent == nil {
		t.Fatalf("approvals = %q, want approved by alice with what was sent", got)
	}
	if metrics.counts["requested"] != 1 || metrics.counts["approved"] != 1 || len(metrics.counts) != 2 {
		t.Fatalf("recoup_approvals = %v, want requested 1, approved 1", metrics.counts)
	}
}

func TestARejectedMessageIsNeverSent(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutRules)
	noReason := w.update(time.Hour, recoup.UpdateReject, recoup.Approval{By: "alice"})
	noBy := w.update(time.Hour, recoup.UpdateReject, recoup.Approval{Reason: "too generous"})
	reject := w.update(2*time.Hour, recoup.UpdateReject, recoup.Approval{By: "alice", Reason: "key account: calling them"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()
	if noReason.rejected == nil || !strings.Contains(noReason.rejected.Error(), "reason is required") {
		t.Fatalf("reject without reason: %v", noReason.rejected)
	}
	if noBy.rejected == nil || !strings.Contains(noBy.rejected.Error(), "by is required") {
		t.Fatalf("reject without by: %v", noBy.rejected)
	}
	if reject.rejected != nil {
		t.Fatalf("reject: %v", reject.rejected)
	}
	if !slices.Equal(w.sendTimes, []time.Duration{3*day + 2*time.Hour}) || len(w.offers) != 0 {
		t.Fatalf("sends at %v, offers %d: want nothing for step 1, step 2 on day 3 plus the 2h held", w.sendTimes, len(w.offers))
	}
	if got := approvalOutcomes(st); !slices.Equal(got, []string{"rejected by alice"}) || st.Messages[0].Delivery != "skipped" {
		t.Fatalf("approvals = %q, messages = %+v", got, st.Messages)
	}
}

func TestAnEditWithinTheGuardrailsSendsTheEditedMessage(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	tooMuch := w.update(time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob",
		Incentive: &recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 50}})
	badTone := w.update(time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Tone: "threatening"})
	threat := w.update(time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Message: "or we call a lawyer"})
	edit := w.update(2*time.Hour, recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Reason: "no discount for this one",
		Tone: "firm", Incentive: &recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7}, Message: "please update your card"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()
	if tooMuch.rejected == nil || !strings.Contains(tooMuch.rejected.Error(), "discount 50% is outside 1..10%") {
		t.Fatalf("edit to 50%% off: %v, want the validator's refusal", tooMuch.rejected)
	}
	if badTone.rejected == nil || !strings.Contains(badTone.rejected.Error(), `tone "threatening"`) {
		t.Fatalf("edit to an unknown tone: %v", badTone.rejected)
	}
	if threat.err == nil || !strings.Contains(threat.err.Error(), "lawyer") {
		t.Fatalf("edit with a threat: %+v, want the guardrails' refusal", threat)
	}
	if edit.rejected != nil || edit.err != nil {
		t.Fatalf("edit: %+v", edit)
	}
	if len(w.sends) != 2 || w.sendTimes[0] != 2*time.Hour {
		t.Fatalf("sends at %v, want the edited step 1 at 2h", w.sendTimes)
	}
	got := w.sends[0].Decision
	if got.Tone != "firm" || got.Incentive.Kind != recoup.IncentiveExtensionDays || got.Message != "please update your card" || got.DecidedBy != recoup.DecidedBySupport {
		t.Fatalf("sent %+v, want the edited message", got)
	}
	if len(w.offers) != 1 || w.offers[0].Incentive.Kind != recoup.IncentiveExtensionDays {
		t.Fatalf("offers = %+v, want the edited incentive announced", w.offers)
	}
	if outcomes := approvalOutcomes(st); !slices.Equal(outcomes, []string{"edited by bob"}) {
		t.Fatalf("approvals = %q", outcomes)
	}
}

func TestAnApprovalTimeoutAppliesOnTimeout(t *testing.T) {
	for _, tc := range []struct {
		onTimeout string
		sends     []time.Duration
	}{
		// Step 2 moves back by the day step 1 was held.
		{recoup.ApprovalOnTimeoutSkip, []time.Duration{4 * day}},
		{recoup.ApprovalOnTimeoutRules, []time.Duration{day, 4 * day}},
	} {
		t.Run(tc.onTimeout, func(t *testing.T) {
			w := newWorld(t)
			heldAtStep1(w, tc.onTimeout)
			w.at(5*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
			_, st := w.run()
			if !slices.Equal(w.sendTimes, tc.sends) {
				t.Fatalf("sends at %v, want %v", w.sendTimes, tc.sends)
			}
			if tc.onTimeout == recoup.ApprovalOnTimeoutRules {
				if s := w.sends[0].Decision; s.Message != "rules message" || s.Incentive.Kind != recoup.IncentiveNone || len(w.offers) != 0 {
					t.Fatalf("sent on timeout %+v (offers %d), want the rules' message without incentive", s, len(w.offers))
				}
			}
			if len(st.Approvals) != 1 || st.Approvals[0].Outcome != "timed_out" || !strings.Contains(st.Approvals[0].Reason, tc.onTimeout) {
				t.Fatalf("approvals = %+v", st.Approvals)
			}
		})
	}
}

func TestAPaymentWhileAwaitingApprovalSendsNothing(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutRules)
	w.at(time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(time.Hour)})
	// Approved in the same moment the payment arrives: the payment wins.
	late := &updateOutcome{}
	w.env.RegisterDelayedCallback(func() {
		w.env.SignalWorkflow(recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid2", OccurredAt: t0.Add(2 * time.Hour)})
		w.env.UpdateWorkflow(recoup.UpdateApprove, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { late.rejected = err }, OnAccept: func() {}, OnComplete: func(any, error) {}},
			recoup.Approval{By: "alice"})
	}, time.Hour)
	res, st := w.run()
	if res.Status != recoup.StatusRecovered || len(w.sends) != 0 || len(w.offers) != 0 {
		t.Fatalf("result %+v with %d sends, %d offers: want recovered and nothing sent", res, len(w.sends), len(w.offers))
	}
	if late.rejected == nil || !strings.Contains(late.rejected.Error(), "already ended (recovered)") {
		t.Fatalf("approve after the payment: %v, want a refusal saying the run ended", late.rejected)
	}
	if len(st.Approvals) != 1 || st.Approvals[0].Outcome != "ended" {
		t.Fatalf("approvals = %+v, want the hold recorded as ended", st.Approvals)
	}
	w.mustFinish(recoup.StatusRecovered)
}

func TestPauseWhileAwaitingApprovalComesBackToTheHold(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	w.update(time.Hour, recoup.UpdatePause, recoup.Pause{By: "bob", Reason: "customer called"})
	w.update(2*time.Hour, recoup.UpdateResume, recoup.Resume{By: "bob"})
	resumed := w.stateAt(3 * time.Hour)
	w.update(4*time.Hour, recoup.UpdateApprove, recoup.Approval{By: "alice"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if resumed.Status != recoup.StatusAwaitingApproval {
		t.Fatalf("status after resume = %s, want awaiting_approval", resumed.Status)
	}
	if len(w.sendTimes) == 0 || w.sendTimes[0] != 4*time.Hour {
		t.Fatalf("sends at %v, want step 1 when approved (4h)", w.sendTimes)
	}
}

// The validator uses the policy's own check of a model answer's choice.
func TestEditLimitsAreTheModelAnswersChecks(t *testing.T) {
	held := recoup.Decision{Channel: recoup.ChannelEmail, Tone: "friendly", Subject: "s", Message: "m"}
	v := policy.CheckChoice(limits, activities.EditedAnswer(held, recoup.ApprovalEdit{Channel: "fax"}))
	if len(v) != 1 || !strings.Contains(v[0], `channel "fax"`) {
		t.Fatalf("violations = %q", v)
	}
}

// An approved message whose incentive billing then refuses goes without it, and the
// approval record says so: support reads what the customer got, not what was approved.
// (The simulation found the record still naming the refused incentive.)
func TestAnApprovedOfferBillingRefusesIsRecordedAsSentWithoutIt(t *testing.T) {
	w := newWorld(t)
	heldAtStep1(w, recoup.ApprovalOnTimeoutSkip)
	w.offerErr = temporal.NewNonRetryableApplicationError("webhook: HTTP 410", recoup.ErrTypeWebhookRejected, nil)
	w.update(time.Hour, recoup.UpdateApprove, recoup.Approval{By: "alice", Reason: "checked the account"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	_, st := w.run()

	if len(w.offers) != 1 || len(w.sends) == 0 || w.sends[0].Decision.Incentive.Kind != recoup.IncentiveNone {
		t.Fatalf("offers %d, sends %+v: want the refused offer, then step 1 sent without it", len(w.offers), w.sends)
	}
	if len(st.Approvals) != 1 || st.Approvals[0].Sent == nil {
		t.Fatalf("approvals = %+v, want one with what was sent", st.Approvals)
	}
	rec := st.Approvals[0]
	if rec.Sent.Incentive.Kind != recoup.IncentiveNone || !strings.Contains(rec.Reason, "billing refused the offer") {
		t.Fatalf("approval record sent %+v, reason %q: want no incentive and the refusal named", rec.Sent.Incentive, rec.Reason)
	}
}
