package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/stripe"
	"github.com/recoup-dunning/recoup/internal/webhook"
	"github.com/recoup-dunning/recoup/workflows"
)

// adviceHook records the webhooks the real AdviseRetry sends.
type adviceHook struct {
	mu     sync.Mutex
	events []webhook.Event
}

func (h *adviceHook) Enabled() bool { return true }
func (h *adviceHook) Send(_ context.Context, e webhook.Event, _ time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	return nil
}

// A failed payment leads to one dunning.retry_advice webhook; billing's retry_failed counts
// against the budget and is advised on in turn; a redelivered retry_failed changes nothing.
func TestAFailureIsAdvisedOnceAndARetryFailedSpendsTheBudget(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "insufficient_funds"
	w.input.Failure.CardBIN = "424242"
	w.input.Failure.IssuerCountry = "US"
	w.input.Failure.Customer = &recoup.CustomerSnapshot{TimeZone: "America/New_York"}
	hook := &adviceHook{}
	acts := &activities.DunningActivities{Webhook: hook, ClassifyDecline: func(code string) recoup.DeclineClass {
		return map[string]recoup.DeclineClass{"insufficient_funds": recoup.DeclineInsufficientFunds, "try_again_later": recoup.DeclineIssuerUnavailable}[code]
	}}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	retryFailed := recoup.RetryResult{EventID: "evt_retry_1", AttemptID: "att_2", FailureCode: "try_again_later", OccurredAt: t0.Add(day)}
	w.at(day, recoup.SignalRetryResult, retryFailed)
	w.at(day+time.Hour, recoup.SignalRetryResult, retryFailed) // redelivered
	var afterFirst recoup.State
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryStatus)
		if err == nil {
			_ = v.Get(&afterFirst)
		}
	}, time.Hour)
	_, st := w.run()

	if afterFirst.Retry == nil || afterFirst.Retry.Advice == nil {
		t.Fatalf("no advice in the state an hour after the failure: %+v", afterFirst.Retry)
	}
	first := afterFirst.Retry.Advice
	ny, _ := time.LoadLocation("America/New_York")
	if first.Class != recoup.DeclineInsufficientFunds || first.DoNotRetry || first.RetryAt.In(ny).Hour() != 9 || first.Delivery != "sent" {
		t.Fatalf("first advice %+v: want insufficient_funds at 09:00 New York, sent", first)
	}
	if got := strings.Join(workflows.DetailLines(afterFirst), "\n"); !strings.Contains(got, "Retry advised at") {
		t.Errorf("details do not show the advice:\n%s", got)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.events) != 2 {
		t.Fatalf("%d retry-advice webhooks, want 2 (the failure, the retry_failed): %+v", len(hook.events), hook.events)
	}
	if e := hook.events[0]; e.Type != recoup.WebhookRetryAdvice || !strings.HasSuffix(e.ID, "/retry-advice/evt_first") {
		t.Errorf("first webhook %s %s", e.Type, e.ID)
	}
	second := st.Retry.Advice
	if len(st.Retry.Attempts) != 2 || st.Retry.Advised != 2 || second.FailureEventID != "evt_retry_1" ||
		second.Class != recoup.DeclineIssuerUnavailable || second.Remaining >= first.Remaining {
		t.Fatalf("after the retry_failed: %+v (advice %+v), want 2 attempts, 2 advices, less budget than %d", st.Retry, second, first.Remaining)
	}
}

// fakePayer records the Stripe executor's attempts.
type fakePayer struct {
	mu    sync.Mutex
	calls []string
	at    []time.Time
	now   func() time.Time
}

func (p *fakePayer) Pay(_ context.Context, invoiceID string, n int) (stripe.PayResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, stripe.AttemptKey(invoiceID, n))
	p.at = append(p.at, p.now())
	return stripe.PayResult{DeclineCode: "try_again_later"}, nil
}

// With the Stripe executor enabled the run pays the invoice once, at the advised time, with
// the attempt's idempotency key, and records what Stripe answered.
func TestTheStripeExecutorPaysOnceAtTheAdvisedTime(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "try_again_later"
	payer := &fakePayer{now: w.env.Now}
	acts := &activities.DunningActivities{Payer: payer, ClassifyDecline: func(string) recoup.DeclineClass { return recoup.DeclineIssuerUnavailable }}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	w.env.OnActivity(a.PayInvoice, mock.Anything, mock.Anything).Return(acts.PayInvoice)
	_, st := w.run()
	payer.mu.Lock()
	defer payer.mu.Unlock()
	if len(payer.calls) != 1 || payer.calls[0] != "recoup-inv_1-attempt-1" || !payer.at[0].Equal(t0.Add(time.Hour)) {
		t.Fatalf("Stripe attempts %v at %v, want one, recoup-inv_1-attempt-1, at %s", payer.calls, payer.at, t0.Add(time.Hour))
	}
	if adv := st.Retry.Advice; adv == nil || adv.Executed != "declined: try_again_later" {
		t.Fatalf("advice %+v, want the executor's answer recorded", adv)
	}
}

// The details show the retry advice on the "next" line while its time is ahead, a
// do-not-retry as such, nothing once the run ended; always three lines.
func TestDetailsShowTheRetryAdviceWhileItIsAhead(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 33, 0, 0, time.UTC)
	st := recoup.State{Status: recoup.StatusActive, Step: 1, TotalSteps: 3, NextAction: "step 2", NextActionAt: at.Add(72 * time.Hour),
		NextChannel: recoup.ChannelSMS, Decisions: []recoup.Decision{{Channel: recoup.ChannelEmail, Tone: "friendly", Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}}},
		Retry: &recoup.RetryState{Advice: &recoup.RetryAdvice{Class: recoup.DeclineInsufficientFunds, RetryAt: at.Add(24 * time.Hour), Remaining: 7}}}
	lines := workflows.DetailLinesAt(st, at)
	// Support's channel makes the second line too long for it: the advice takes the third.
	if len(lines) != 3 || lines[2] != "Retry advised at 2026-12-02 17:33 UTC (7 left)" || strings.Contains(lines[1], "…") {
		t.Fatalf("details %q: want the advice whole on the third line", lines)
	}
	st.NextChannel = ""
	if lines := workflows.DetailLinesAt(st, at); len(lines) != 3 || !strings.HasSuffix(lines[1], " · Retry advised at 2026-12-02 17:33 UTC (7 left)") {
		t.Fatalf("details %q: want the advice on the second line", lines)
	}
	if lines := workflows.DetailLinesAt(st, at.Add(25*time.Hour)); strings.Contains(strings.Join(lines, " "), "Retry") {
		t.Fatalf("details %q: an advice in the past is not what happens next", lines)
	}
	st.Retry.Advice = &recoup.RetryAdvice{Class: recoup.DeclineDoNotRetry, DoNotRetry: true}
	if lines := workflows.DetailLinesAt(st, at); !strings.Contains(strings.Join(lines, " "), "Retry: do not retry (do_not_retry)") {
		t.Fatalf("details %q: want the do-not-retry advice", lines)
	}
	st.Status = recoup.StatusRecovered
	if lines := workflows.DetailLinesAt(st, at); len(lines) > 3 || strings.Contains(strings.Join(lines, " "), "Retry") {
		t.Fatalf("details %q of an ended run show retry advice", lines)
	}
}

// cardUpdateWorld is a run whose card failed with expired_card (update_payment_method: no
// blind retry), advised through the real AdviseRetry.
func cardUpdateWorld(t *testing.T) (*world, *adviceHook) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "expired_card"
	hook := &adviceHook{}
	acts := &activities.DunningActivities{Webhook: hook, ClassifyDecline: func(code string) recoup.DeclineClass {
		return map[string]recoup.DeclineClass{"expired_card": recoup.DeclineUpdatePaymentMethod, "try_again_later": recoup.DeclineIssuerUnavailable}[code]
	}}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	return w, hook
}

// A card update without retry_requested sends no advice of its own; the next advice (after
// billing's own charge of the new card failed) counts it: do not retry the old card.
func TestACardUpdateWithoutARetryRequestMakesTheNextAdviceNoRetry(t *testing.T) {
	w, hook := cardUpdateWorld(t)
	w.at(day, recoup.SignalPaymentMethodUpdated, recoup.PaymentMethodUpdated{EventID: "evt_card", OccurredAt: t0.Add(day)})
	// billing's retry of the OLD card (before the update), reported after it: still no retry
	w.at(2*day, recoup.SignalRetryResult, recoup.RetryResult{EventID: "evt_retry_1", AttemptID: "att_2", FailureCode: "try_again_later", OccurredAt: t0.Add(12 * time.Hour)})
	afterUpdate := w.stateAt(day + time.Hour)
	_, st := w.run()

	if afterUpdate.Retry == nil || afterUpdate.Retry.CardUpdate == nil || afterUpdate.Retry.Advised != 1 {
		t.Fatalf("after the card update: %+v, want it kept for the next advice and no new advice", afterUpdate.Retry)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.events) != 2 || !strings.HasSuffix(hook.events[1].ID, "/retry-advice/evt_retry_1") {
		t.Fatalf("webhooks %+v, want 2: the failure's and the retry_failed's", hook.events)
	}
	adv := st.Retry.Advice
	if !adv.DoNotRetry || adv.FailureEventID != "evt_retry_1" || !strings.Contains(adv.Reason, "card was updated") {
		t.Fatalf("advice after the card update %+v, want do not retry (the card was updated)", adv)
	}
	if p := hook.events[1].Payload.(map[string]any); p["card_updated"] != true || p["retry_requested"] != false {
		t.Errorf("payload %v, want card_updated and no retry_requested", p)
	}
	if st.Retry.CardUpdate != nil {
		t.Errorf("card update %+v still pending after the advice counted it", st.Retry.CardUpdate)
	}
}

// With retry_requested, Recoup advises at once: one webhook keyed by the update's event id
// (a redelivered update sends no second one), a retry soon on the updated card.
func TestACardUpdateWithARetryRequestIsAdvisedAtOnce(t *testing.T) {
	w, hook := cardUpdateWorld(t)
	upd := recoup.PaymentMethodUpdated{EventID: "evt_card", RetryRequested: true, OccurredAt: t0.Add(day)}
	w.at(day, recoup.SignalPaymentMethodUpdated, upd)
	w.at(day+time.Hour, recoup.SignalPaymentMethodUpdated, upd) // redelivered
	afterUpdate := w.stateAt(day + 2*time.Hour)
	_, st := w.run()

	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.events) != 2 || !strings.HasSuffix(hook.events[1].ID, "/retry-advice/evt_card") {
		t.Fatalf("webhooks %+v, want 2: the failure's and one for the card update", hook.events)
	}
	first, adv := hook.events[0].Payload.(map[string]any), afterUpdate.Retry.Advice
	if first["do_not_retry"] != true {
		t.Errorf("first advice %v: want no blind retry before the customer acted", first)
	}
	if adv == nil || adv.DoNotRetry || adv.FailureEventID != "evt_card" || adv.Class != recoup.DeclineUpdatePaymentMethod ||
		adv.RetryAt.Before(t0.Add(day)) || !strings.Contains(adv.Reason, "the customer acted") {
		t.Fatalf("advice after the card update %+v, want a retry soon (the customer acted)", adv)
	}
	if p := hook.events[1].Payload.(map[string]any); p["card_updated"] != true || p["retry_requested"] != true {
		t.Errorf("payload %v, want card_updated and retry_requested", p)
	}
	if st.Retry.Advised != 2 || st.Retry.CardUpdate != nil {
		t.Errorf("retry state %+v: want 2 advices and the update counted", st.Retry)
	}
}

// issuerUnavailableWorld decides like the shipped plan for issuer_unavailable
// (after_failed_retry): no message while the run has seen only its first failure.
func issuerUnavailableWorld(t *testing.T) *world {
	w := newWorld(t)
	w.input.Failure.FailureCode = "try_again_later"
	w.decide = func(in activities.DecideInput) recoup.Decision {
		dec := decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
		if in.Step == 1 && in.Failures <= 1 { // as internal/model/templates: the wait applies to step 1 only
			dec.Channel = recoup.ChannelNone
		}
		dec.DeclineClass = recoup.DeclineIssuerUnavailable
		return dec
	}
	return w
}

// Step 1 sends nothing (the class waits for a retry); billing's failed retry an hour later
// ends the wait for step 2 at once: one message, then, not three days later.
func TestAFailedRetryEndsTheWaitOfAStepThatWaitedForIt(t *testing.T) {
	w := issuerUnavailableWorld(t)
	w.at(time.Hour, recoup.SignalRetryResult, recoup.RetryResult{EventID: "evt_retry_1", AttemptID: "att_2", FailureCode: "try_again_later", OccurredAt: t0.Add(time.Hour)})
	early := w.stateAt(2 * time.Hour)
	w.env.RegisterDelayedCallback(func() { w.env.CancelWorkflow() }, 4*day) // before step 3
	w.run()

	if len(w.sends) != 1 || w.sendTimes[0] != time.Hour {
		t.Fatalf("sends at %v, want one, right after the failed retry (1h)", w.sendTimes)
	}
	if len(early.Decisions) != 2 || early.Decisions[0].Channel != recoup.ChannelNone || early.Decisions[1].Step != 2 || early.RetryWait != "" {
		t.Fatalf("decisions %+v (retry wait %q): want step 1 silent, step 2 decided after the failed retry", early.Decisions, early.RetryWait)
	}
}

// Without a failed retry nothing happens before step 2's time; step 2 then sends even
// without a failed retry (the wait for a retry applies to step 1 only).
func TestWithoutAFailedRetryTheStepWaitsForItsTime(t *testing.T) {
	w := issuerUnavailableWorld(t)
	mid := w.stateAt(2 * day)
	w.env.RegisterDelayedCallback(func() { w.env.CancelWorkflow() }, 4*day) // before step 3
	w.run()

	if mid.RetryWait != "waiting" || len(mid.Decisions) != 1 {
		t.Fatalf("after step 1: retry wait %q, %d decisions; want waiting for a retry, one decision", mid.RetryWait, len(mid.Decisions))
	}
	if len(w.sends) != 1 || w.sendTimes[0] != 3*day {
		t.Fatalf("sends at %v, want one, step 2's at its time (day 3)", w.sendTimes)
	}
	if at := decidedAt(w); len(at) != 2 || !at[0].Equal(t0) || !at[1].Equal(t0.Add(3*day)) {
		t.Fatalf("decided at %v: want steps 1 and 2 at their times (day 0, day 3)", at)
	}
}

func decidedAt(w *world) []time.Time {
	var out []time.Time
	for _, in := range w.decisions {
		out = append(out, in.Now)
	}
	return out
}

// A run recorded before retry advice (no retry-advice marker) advises nothing, and keeps no
// backlog of failures that a later run (after continue-as-new) would advise all at once.
func TestARunFromBeforeRetryAdviceKeepsNoBacklog(t *testing.T) {
	w := newWorld(t)
	w.env.OnGetVersion(workflows.ChangeLeanRun, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion) // recorded before it too
	w.env.OnGetVersion(workflows.ChangeRetryAdvice, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	advised := 0
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.AdviseRetryInput) (activities.AdviseRetryResult, error) {
			advised++
			return activities.AdviseRetryResult{}, nil
		})
	for i, at := range []time.Duration{day, 2 * day} {
		w.at(at, recoup.SignalRetryResult, recoup.RetryResult{EventID: fmt.Sprintf("evt_retry_%d", i), AttemptID: fmt.Sprintf("att_%d", i+2), FailureCode: "try_again_later", OccurredAt: t0.Add(at)})
	}
	var later recoup.State
	w.env.RegisterDelayedCallback(func() {
		if v, err := w.env.QueryWorkflow(recoup.QueryStatus); err == nil {
			_ = v.Get(&later)
		}
	}, 2*day+time.Hour)
	w.at(3*day+time.Hour, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if advised != 0 {
		t.Errorf("%d advices from a run recorded before retry advice", advised)
	}
	if later.Retry != nil && len(later.Retry.Pending) > 0 {
		t.Errorf("the run keeps %d failures queued for advice: its next run would advise them at once", len(later.Retry.Pending))
	}
}
