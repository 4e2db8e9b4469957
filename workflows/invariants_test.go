package workflows_test

// Named regression tests for the defects behind the run's invariants (docs/INVARIANTS.md).
// The randomized simulation (simulation_test.go) checks the same invariants over generated
// histories; these pin each reported case.

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/workflows"
)

// I1: a payment whose value date is older than the newest failure (a bank transfer that
// settled later, or a billing host whose clock is behind) still settles the run.
func TestRecoveryWithOlderValueDateSettlesTheRun(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalRetryResult, retry("evt_fail2", false, t0.Add(time.Hour)))
	w.at(2*time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(-2 * time.Minute)})
	res, _ := w.run()
	if res.Status != recoup.StatusRecovered || len(w.sends) != 1 {
		t.Fatalf("result = %+v with %d sends, want recovered after the first message only", res, len(w.sends))
	}
	w.mustFinish(recoup.StatusRecovered)
}

// I1: a retry success whose occurred_at precedes an applied retry failure still recovers.
func TestRetrySuccessOlderThanAppliedFailureRecovers(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalRetryResult, retry("evt_fail2", false, t0.Add(time.Hour)))
	w.at(2*time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(30*time.Minute)))
	res, _ := w.run()
	if res.Status != recoup.StatusRecovered {
		t.Fatalf("result = %+v, want recovered", res)
	}
}

// I1: one future-dated failure cannot make every later event look stale.
func TestFutureDatedFailureDoesNotPoisonOrdering(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalRetryResult, retry("evt_future", false, t0.AddDate(1, 0, 0)))
	w.at(2*day, recoup.SignalRetryResult, retry("evt_next", false, t0.Add(2*day)))
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", OccurredAt: t0.Add(4 * day)})
	res, st := w.run()
	if res.Status != recoup.StatusCanceled || st.Failures != 3 {
		t.Fatalf("result = %+v, failures = %d: want canceled with all 3 failures applied", res, st.Failures)
	}
	if !strings.Contains(st.Signals[0].Note, "in the future") {
		t.Fatalf("the clamp is not recorded: %q", st.Signals[0].Note)
	}
}

// I5: a signal whose payload cannot be decoded is refused with a reason, and every later
// signal still applies.
func TestUndecodableSignalDoesNotStopLaterSignals(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalSetChannel, "sms")
	w.at(2*time.Hour, recoup.SignalPause, 42)
	w.at(3*time.Hour, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "paid by cheque"})
	res, st := w.run()
	if res.Status != recoup.StatusCanceled || len(w.sends) != 1 {
		t.Fatalf("result = %+v with %d sends, want canceled after one message", res, len(w.sends))
	}
	if len(st.Signals) < 2 || st.Signals[0].Applied || !strings.HasPrefix(st.Signals[0].Note, "refused") {
		t.Fatalf("signals = %+v, want the bad payload recorded as refused", st.Signals)
	}
}

// I1: a cancel (or recovery) that arrives while billing's webhook is down and the offer
// cannot be announced stops the run: the discount email never goes out.
func TestCancelWhileAnnouncingOfferSendsNothing(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}, 0)
	}
	w.down["AnnounceOffer"] = 30 * day
	w.at(13*time.Hour, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "churned"})
	res, _ := w.run()
	if res.Status != recoup.StatusCanceled || len(w.sends) != 0 {
		t.Fatalf("result = %+v with %d sends, want canceled and nothing sent", res, len(w.sends))
	}
	if w.attempts["AnnounceOffer"] < 2 {
		t.Fatalf("AnnounceOffer attempts = %d, want retries while billing was down", w.attempts["AnnounceOffer"])
	}
	w.mustFinish(recoup.StatusCanceled)
}

// I1: a pause while the offer is being announced holds the message until the resume.
func TestPauseWhileAnnouncingOfferHoldsTheMessage(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}, 0)
	}
	w.down["AnnounceOffer"] = 3 * time.Hour
	w.at(time.Hour, recoup.SignalPause, recoup.Pause{EventID: "evt_p"})
	w.at(10*time.Hour, recoup.SignalResume, recoup.Resume{EventID: "evt_r"})
	w.at(11*time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	w.run()
	if len(w.sends) != 1 || w.sendTimes[0] < 10*time.Hour {
		t.Fatalf("sends at %v, want one after the resume at 10h", w.sendTimes)
	}
}

// I2: an opt-out while the send is being retried (provider down) stops that send.
func TestOptOutWhileSendRetriesStopsTheSend(t *testing.T) {
	w := newWorld(t)
	w.decide = smsUnlessExcluded
	w.down["Send"] = 2 * time.Hour
	w.at(time.Hour, recoup.SignalOptOut, recoup.OptOut{EventID: "evt_stop", Channel: recoup.ChannelSMS})
	w.at(2*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
	_, st := w.run()
	for _, s := range w.sends {
		if s.Decision.Channel == recoup.ChannelSMS {
			t.Fatalf("an SMS left after the opt-out: %+v", w.sends)
		}
	}
	if len(st.Messages) != 1 || st.Messages[0].Delivery != "skipped" {
		t.Fatalf("messages = %+v, want step 1 recorded as skipped", st.Messages)
	}
}

// I4: act-now sent while an activity runs is refused; it cannot make the next step fire
// seconds after this one.
func TestActNowDuringActivityDoesNotAdvanceNextStep(t *testing.T) {
	w := newWorld(t)
	w.down["DecideStrategy"] = 20 * time.Second // retried: the step is working for ~30 s
	w.at(10*time.Second, recoup.SignalActNow, recoup.ActNowRequest{By: "bob"})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
	_, st := w.run()
	if len(w.sendTimes) != 2 || w.sendTimes[1] != 3*day {
		t.Fatalf("sends at %v, want step 2 at day 3", w.sendTimes)
	}
	var act *recoup.SignalRecord
	for i := range st.Signals {
		if st.Signals[i].Name == recoup.SignalActNow {
			act = &st.Signals[i]
		}
	}
	if act == nil || act.Applied || !strings.Contains(act.Note, "not waiting") {
		t.Fatalf("act-now record = %+v, want refused: not waiting", act)
	}
}

// I3: act-now does not override the customer's allowed hours.
func TestActNowDoesNotOverrideAllowedHours(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		d := decision(in, recoup.ChannelSMS, recoup.Incentive{}, 9*time.Hour)
		d.SendUntil = d.SendAt.Add(12 * time.Hour)
		return d
	}
	act := w.update(time.Hour, recoup.UpdateActNow, recoup.ActNowRequest{By: "bob"})
	w.at(10*time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	w.run()
	if act.rejected == nil || !strings.Contains(act.rejected.Error(), "allowed hours") {
		t.Fatalf("act-now = %+v, want rejected for the allowed hours", act)
	}
	if !slices.Equal(w.sendTimes, []time.Duration{9 * time.Hour}) {
		t.Fatalf("sends at %v, want one at 9h", w.sendTimes)
	}
}

// I3: a resume after the allowed window ended waits for the next window instead of sending
// at night; the send carries the window it may be handed over in.
func TestResumeAfterWindowWaitsForNextWindow(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		d := decision(in, recoup.ChannelSMS, recoup.Incentive{}, 2*time.Hour)
		d.SendUntil = d.SendAt.Add(time.Hour)
		return d
	}
	w.window = func(in activities.SendWindowInput) activities.SendWindowResult {
		next := t0.Add(day + 2*time.Hour) // tomorrow's window
		return activities.SendWindowResult{NotBefore: next, NotAfter: next.Add(12 * time.Hour)}
	}
	w.at(time.Hour, recoup.SignalPause, recoup.Pause{EventID: "evt_p"})
	w.at(5*time.Hour, recoup.SignalResume, recoup.Resume{EventID: "evt_r"})
	w.at(2*day, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	w.run()
	if !slices.Equal(w.sendTimes, []time.Duration{day + 2*time.Hour}) || len(w.windows) != 1 {
		t.Fatalf("sends at %v after %d window look-ups, want one at the next window (26h)", w.sendTimes, len(w.windows))
	}
	if s := w.sends[0]; !s.NotBefore.Equal(t0.Add(day+2*time.Hour)) || s.NotAfter.IsZero() {
		t.Fatalf("send window = %v..%v", s.NotBefore, s.NotAfter)
	}
}

// I3: a send refused by the worker's clock as outside the allowed hours waits for the
// next window and is sent once.
func TestSendRefusedOutsideHoursIsRetriedInNextWindow(t *testing.T) {
	w := newWorld(t)
	refused := false
	w.sendErr = func(in activities.SendInput) error {
		if !refused {
			refused = true
			return temporal.NewNonRetryableApplicationError("outside", recoup.ErrTypeOutsideAllowedHours, nil)
		}
		return nil
	}
	w.decide = func(in activities.DecideInput) recoup.Decision {
		d := decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
		d.SendUntil = d.SendAt.Add(time.Hour)
		return d
	}
	w.window = func(in activities.SendWindowInput) activities.SendWindowResult {
		return activities.SendWindowResult{NotBefore: in.Now.Add(10 * time.Hour), NotAfter: in.Now.Add(22 * time.Hour)}
	}
	w.at(day, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	_, st := w.run()
	if len(st.Messages) != 1 || st.Messages[0].Delivery != "sent" || len(w.windows) != 1 {
		t.Fatalf("messages = %+v after %d window look-ups, want one sent message", st.Messages, len(w.windows))
	}
}

// I7: PostgreSQL down for more than an hour delays the step; it does not skip it or fail
// the run. Billing's webhook down for two days delays the exhausted notice; the run still
// ends exhausted, with billing told.
func TestLongOutagesDelayButNeverFailTheRun(t *testing.T) {
	w := newWorld(t)
	w.down["FetchCustomerHistory"] = 3 * time.Hour
	w.down["FinishRun"] = 19 * day // two days past the end of the run
	res, _ := w.run()
	if err := w.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	if res.Status != recoup.StatusExhausted || len(w.sends) != 4 || w.sendTimes[0] < 3*time.Hour {
		t.Fatalf("result = %+v, sends at %v: want exhausted after 4 sends, the first after the outage", res, w.sendTimes)
	}
	w.mustFinish(recoup.StatusExhausted)
}

// I8: a second dunning episode of an invoice keys its bookkeeping and sends apart from the
// first, so it never finds the first run's message.
func TestSecondEpisodeHasItsOwnKeys(t *testing.T) {
	w := newWorld(t)
	w.input.Episode = 2
	w.at(time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	w.run()
	if len(w.sends) != 1 || w.sends[0].IdempotencyKey != "default-test-workflow-id#2/step-1/email" || w.sends[0].WorkflowID != "default-test-workflow-id#2" {
		t.Fatalf("send = %+v, want keys of episode 2", w.sends)
	}
	if w.finished[0].WorkflowID != "default-test-workflow-id#2" {
		t.Fatalf("FinishRun keyed %q", w.finished[0].WorkflowID)
	}
}

// A run with a long history continues as new while waiting, carrying its state; the new
// run goes on with the next step and never repeats a step already taken.
func TestLongRunContinuesAsNewWithItsState(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalOptOut, recoup.OptOut{EventID: "evt_stop", Channel: recoup.ChannelSMS})
	w.env.RegisterDelayedCallback(func() { w.env.SetContinueAsNewSuggested(true) }, 2*time.Hour)
	w.env.ExecuteWorkflow(workflows.DunningWorkflow, w.input)
	var can *workflow.ContinueAsNewError
	if err := w.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next recoup.DunningInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	c := next.Continued
	if c == nil || c.NextStep != 1 || c.State.Step != 1 || !slices.Contains(c.Excluded, recoup.ChannelSMS) || !slices.Contains(c.Seen, "evt_stop") {
		t.Fatalf("carried = %+v, want step 1 done, sms excluded, the opt-out remembered", c)
	}
	w2 := newWorld(t)
	w2.input = next
	w2.at(time.Hour, recoup.SignalOptOut, recoup.OptOut{EventID: "evt_stop", Channel: recoup.ChannelSMS}) // redelivered
	w2.at(4*day, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	res, st := w2.run()
	if res.Status != recoup.StatusRecovered || len(w2.sends) != 1 || w2.sends[0].Step != 2 {
		t.Fatalf("continued run: %+v, sends %+v: want step 2 only, then recovered", res, w2.sends)
	}
	if st.Signals[len(st.Signals)-2].Note != "duplicate" {
		t.Fatalf("the redelivered opt-out was not recognised: %+v", st.Signals)
	}
}

// I3: when the allowed hours cannot be looked up (PostgreSQL down past every retry), the run
// waits and asks again; it never makes a window up and sends outside the customer's hours.
func TestAllowedHoursLookupFailureNeverInventsAWindow(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		d := decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
		d.SendUntil = d.SendAt // already over: the next window is needed
		return d
	}
	w.down["SendWindow"] = 30 * time.Hour
	w.at(2*day, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid"})
	w.run()
	if len(w.sends) != 1 || w.sendTimes[0] < 30*time.Hour || len(w.windows) != 1 {
		t.Fatalf("sends at %v after %d answered look-ups, want one send after the look-up answered", w.sendTimes, len(w.windows))
	}
	if s := w.sends[0]; !s.NotBefore.Equal(w.windows[0].Now) {
		t.Fatalf("sent in window from %v, want the looked-up window from %v", s.NotBefore, w.windows[0].Now)
	}
}

func settledErr(eventID, typ string) error {
	return temporal.NewNonRetryableApplicationError("the invoice was settled", recoup.ErrTypeSettled, nil,
		recoup.SettledBy{EventID: eventID, Type: typ})
}

// I1: billing's settle was recorded but the relay is behind, so its signal has not reached
// the run; the send finds it recorded and refuses. The run ends recovered with it at once:
// no later step decides, announces an offer or sends, and billing is not told "exhausted".
// The signal, when it arrives, is a duplicate.
func TestSettleRecordedBeforeItReachesTheRunEndsIt(t *testing.T) {
	w := newWorld(t)
	w.sendErr = func(in activities.SendInput) error {
		if in.Step >= 2 {
			return settledErr("evt_paid", recoup.EventRecovered)
		}
		return nil
	}
	w.at(20*day, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0})
	res, st := w.run()
	if res.Status != recoup.StatusRecovered || len(w.sends) != 2 || len(w.decisions) != 2 {
		t.Fatalf("result %+v after %d sends and %d decisions; want recovered at step 2, nothing after", res, len(w.sends), len(w.decisions))
	}
	w.mustFinish(recoup.StatusRecovered)
	if last := st.Messages[len(st.Messages)-1]; last.Step != 2 || last.Delivery != "skipped" {
		t.Errorf("step 2's message = %+v, want skipped", last)
	}
	if !slices.ContainsFunc(st.Signals, func(r recoup.SignalRecord) bool { return r.EventID == "evt_paid" && r.Applied }) {
		t.Errorf("signals %+v: the settle is not recorded as applied", st.Signals)
	}
}

// I1/I7: every step ran, but billing's cancel was recorded before the outcome (its signal
// still on the way): FinishRun refuses "exhausted", and the run ends canceled instead.
func TestExhaustedRefusedForASettledInvoiceEndsWithTheSettle(t *testing.T) {
	w := newWorld(t)
	w.finishErr = func(in activities.FinishRunInput) error {
		if in.Outcome == recoup.StatusExhausted {
			return settledErr("evt_cancel", recoup.EventCancel)
		}
		return nil
	}
	res, _ := w.run()
	if res.Status != recoup.StatusCanceled {
		t.Fatalf("result %+v, want canceled", res)
	}
	w.mustFinish(recoup.StatusCanceled)
}

// I5: pauses and resumes apply in the order of their dates. A resume that reaches the run
// before the pause it ends (refused then: the run was not paused) makes that pause stale,
// so the run is not paused for ever; a pause dated after it still pauses the run.
func TestPauseDatedBeforeAReceivedResumeDoesNotPauseTheRun(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalResume, recoup.Resume{EventID: "evt_resume", OccurredAt: t0.Add(time.Hour)})
	w.at(time.Hour+time.Minute, recoup.SignalPause, recoup.Pause{EventID: "evt_pause", OccurredAt: t0.Add(30 * time.Minute)})
	res, st := w.run()
	if res.Status != recoup.StatusExhausted || len(w.sends) != 4 {
		t.Fatalf("result = %+v with %d sends, want exhausted after 4 sends on schedule", res, len(w.sends))
	}
	var notes []string
	for _, s := range st.Signals {
		notes = append(notes, s.Name+": "+s.Note)
	}
	want := []string{"resume: the run is not paused (type: ActionRejected, retryable: true)", "pause: stale: dated before a resume already received"}
	if !slices.Equal(notes, want) {
		t.Fatalf("signal notes = %q, want %q", notes, want)
	}

	w = newWorld(t)
	w.at(time.Hour, recoup.SignalResume, recoup.Resume{EventID: "evt_resume", OccurredAt: t0.Add(time.Hour)})
	w.at(2*time.Hour, recoup.SignalPause, recoup.Pause{EventID: "evt_pause", OccurredAt: t0.Add(2 * time.Hour)})
	w.at(5*day, recoup.SignalResume, recoup.Resume{EventID: "evt_resume2", OccurredAt: t0.Add(5 * day)})
	res, _ = w.run()
	// Step 2 (day 3) moves back by the pause (from 2 h to day 5).
	if res.Status != recoup.StatusExhausted || len(w.sendTimes) != 4 || w.sendTimes[1] != 8*day-2*time.Hour {
		t.Fatalf("result = %+v, sends at %v: want the later pause applied", res, w.sendTimes)
	}
}
