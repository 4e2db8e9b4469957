package workflows_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/workflows"
)

const day = 24 * time.Hour

// a is used only for typed method values of both workflows' activities.
var a struct {
	*activities.DunningActivities
	*activities.DetectorActivities
}

var t0 = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)

func input() recoup.DunningInput {
	return recoup.DunningInput{Failure: recoup.PaymentFailed{
		EventID: "evt_first", InvoiceID: "inv_1", CustomerID: "cus_1", AttemptID: "att_1",
		AmountMinor: 4900, Currency: "USD", FailureCode: "card_declined", OccurredAt: t0,
	}}
}

// decision is a decision for the step of in, sent after the given delay.
func decision(in activities.DecideInput, ch recoup.Channel, inc recoup.Incentive, after time.Duration) recoup.Decision {
	if inc.Kind == "" {
		inc.Kind = recoup.IncentiveNone
	}
	return recoup.Decision{Step: in.Step, Channel: ch, Tone: "friendly", Incentive: inc, Message: "please pay",
		DecidedBy: recoup.DecidedByRules, SendAt: in.Now.Add(after)}
}

// smsUnlessExcluded prefers SMS, and uses email once SMS is excluded from the run.
func smsUnlessExcluded(in activities.DecideInput) recoup.Decision {
	if slices.Contains(in.Excluded, recoup.ChannelSMS) {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
	}
	return decision(in, recoup.ChannelSMS, recoup.Incentive{}, 0)
}

// world is what the mocked activities see and record.
type world struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	decide  func(in activities.DecideInput) recoup.Decision
	sendErr func(in activities.SendInput) error
	// sendRes, when set and returning non-nil, is the send's result (e.g. reconcile).
	sendRes  func(in activities.SendInput, now time.Time) *activities.SendResult
	fetchErr error
	offerErr error
	// finishErr, when set, may refuse FinishRun (e.g. a settle recorded but not signalled).
	finishErr func(in activities.FinishRunInput) error
	hold      func(in activities.HoldInput) activities.HoldResult // nil: no incident holds the run
	// window answers SendWindow (nil: from now for an hour).
	window func(in activities.SendWindowInput) activities.SendWindowResult
	// down makes an activity fail with a retryable error until that much workflow time has
	// passed since the start (an outage).
	down  map[string]time.Duration
	input recoup.DunningInput

	// mu guards what the activity fakes record: the test environment runs activities in
	// goroutines of their own, and a run's retry advice runs beside its steps.
	mu       sync.Mutex
	windows  []activities.SendWindowInput
	attempts map[string]int // activity attempts, failed ones included

	holdChecks []activities.HoldInput

	decisions []activities.DecideInput
	sends     []activities.SendInput
	sendTimes []time.Duration // workflow time since start at each send
	offers    []activities.OfferInput
	finished  []activities.FinishRunInput
}

func newWorld(t *testing.T) *world { return newWorldWith(t, nil) }

// newWorldWith is newWorld with the test suite configured first (e.g. a metrics handler).
func newWorldWith(t *testing.T, configure func(*testsuite.WorkflowTestSuite)) *world {
	var s testsuite.WorkflowTestSuite
	if configure != nil {
		configure(&s)
	}
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflow(workflows.DunningWorkflow)
	env.RegisterActivity(&activities.DunningActivities{})
	env.RegisterActivity(&activities.DetectorActivities{})
	w := &world{t: t, env: env, down: map[string]time.Duration{}, attempts: map[string]int{}, input: input()}
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{}, 0)
	}
	start := t0
	outage := func(name string) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.attempts[name]++
		if left := w.down[name] - env.Now().Sub(start); left > 0 {
			// The next attempt comes when the outage ends: the test environment caps
			// activities at 10 attempts (the server does not), so an outage of days must
			// not take 10 of them.
			return temporal.NewApplicationErrorWithOptions(name+": dependency down", "Outage",
				temporal.ApplicationErrorOptions{NextRetryDelay: min(left, 6*time.Hour)})
		}
		return nil
	}
	env.OnActivity(a.SendWindow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendWindowInput) (activities.SendWindowResult, error) {
			if err := outage("SendWindow"); err != nil {
				return activities.SendWindowResult{}, err
			}
			w.mu.Lock()
			w.windows = append(w.windows, in)
			w.mu.Unlock()
			if w.window != nil {
				return w.window(in), nil
			}
			return activities.SendWindowResult{NotBefore: in.Now, NotAfter: in.Now.Add(time.Hour)}, nil
		})
	env.OnActivity(a.PlanRun, mock.Anything, mock.Anything).Return(activities.PlanRunResult{
		Schedule: []time.Duration{0, 3 * day, 7 * day, 14 * day}, FinalWait: 3 * day}, nil)
	env.OnActivity(a.FetchCustomerHistory, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FetchHistoryInput) (activities.CustomerHistory, error) {
			if w.fetchErr != nil {
				return activities.CustomerHistory{}, w.fetchErr
			}
			if err := outage("FetchCustomerHistory"); err != nil {
				return activities.CustomerHistory{}, err
			}
			return activities.CustomerHistory{CustomerID: in.CustomerID, Plan: "pro", EmailReachable: true, SMSReachable: true}, nil
		})
	env.OnActivity(a.CheckHold, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.HoldInput) (activities.HoldResult, error) {
			w.mu.Lock()
			w.holdChecks = append(w.holdChecks, in)
			w.mu.Unlock()
			if w.hold == nil {
				return activities.HoldResult{}, nil
			}
			return w.hold(in), nil
		})
	env.OnActivity(a.DecideStrategy, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DecideInput) (recoup.Decision, error) {
			if err := outage("DecideStrategy"); err != nil {
				return recoup.Decision{}, err
			}
			w.mu.Lock()
			w.decisions = append(w.decisions, in)
			w.mu.Unlock()
			return w.decide(in), nil
		})
	env.OnActivity(a.AnnounceOffer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.OfferInput) (activities.OfferResult, error) {
			if err := outage("AnnounceOffer"); err != nil {
				return activities.OfferResult{}, err
			}
			w.mu.Lock()
			w.offers = append(w.offers, in)
			w.mu.Unlock()
			if w.offerErr != nil {
				return activities.OfferResult{}, w.offerErr
			}
			return activities.OfferResult{OfferKey: "k", ExpiresAt: in.Now.Add(14 * day)}, nil
		})
	send := func(_ context.Context, in activities.SendInput) (activities.SendResult, error) {
		if err := outage("Send"); err != nil {
			return activities.SendResult{}, err
		}
		w.mu.Lock()
		w.sends = append(w.sends, in)
		w.sendTimes = append(w.sendTimes, env.Now().Sub(start))
		w.mu.Unlock()
		if w.sendErr != nil {
			if err := w.sendErr(in); err != nil {
				return activities.SendResult{}, err
			}
		}
		if w.sendRes != nil {
			if res := w.sendRes(in, env.Now()); res != nil {
				return *res, nil
			}
		}
		return activities.SendResult{Delivery: "sent", ProviderMessageID: "msg-" + in.IdempotencyKey}, nil
	}
	env.OnActivity(a.ReleaseHeldMessage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReleaseHeldInput) (activities.ReleaseHeldResult, error) {
			return releaseHeld(in), nil
		})
	env.OnActivity(a.SendEmail, mock.Anything, mock.Anything).Return(send)
	env.OnActivity(a.SendSMS, mock.Anything, mock.Anything).Return(send)
	env.OnActivity(a.FinishRun, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishRunInput) (activities.FinishRunResult, error) {
			if err := outage("FinishRun"); err != nil {
				return activities.FinishRunResult{}, err
			}
			if w.finishErr != nil {
				if err := w.finishErr(in); err != nil {
					return activities.FinishRunResult{}, err
				}
			}
			w.mu.Lock()
			w.finished = append(w.finished, in)
			w.mu.Unlock()
			return activities.FinishRunResult{}, nil
		})
	return w
}

// at delivers a signal after d of workflow time.
func (w *world) at(d time.Duration, name string, payload any) {
	w.env.RegisterDelayedCallback(func() { w.env.SignalWorkflow(name, payload) }, d)
}

func (w *world) run() (recoup.DunningResult, recoup.State) {
	w.t.Helper()
	w.env.ExecuteWorkflow(workflows.DunningWorkflow, w.input)
	if !w.env.IsWorkflowCompleted() {
		w.t.Fatal("workflow did not complete")
	}
	var res recoup.DunningResult
	if err := w.env.GetWorkflowError(); err == nil {
		if err := w.env.GetWorkflowResult(&res); err != nil {
			w.t.Fatal(err)
		}
	}
	v, err := w.env.QueryWorkflow(recoup.QueryStatus)
	if err != nil {
		w.t.Fatalf("query status: %v", err)
	}
	var st recoup.State
	if err := v.Get(&st); err != nil {
		w.t.Fatal(err)
	}
	return res, st
}

func (w *world) mustFinish(outcome recoup.Status) {
	w.t.Helper()
	if len(w.finished) != 1 || w.finished[0].Outcome != outcome {
		w.t.Fatalf("FinishRun calls = %+v, want one with outcome %s", w.finished, outcome)
	}
}

func retry(id string, ok bool, at time.Time) recoup.RetryResult {
	return recoup.RetryResult{EventID: id, AttemptID: "att_" + id, Succeeded: ok, FailureCode: "insufficient_funds", OccurredAt: at}
}

func TestRecoveredAtStep1(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalRetryResult, retry("evt_ok", true, t0.Add(time.Hour)))
	res, st := w.run()
	if res.Status != recoup.StatusRecovered || res.Steps != 1 {
		t.Fatalf("result = %+v, want recovered after step 1", res)
	}
	if len(w.sends) != 1 {
		t.Fatalf("sends = %d, want 1", len(w.sends))
	}
	if got := w.sends[0].IdempotencyKey; got != "default-test-workflow-id/step-1/email" {
		t.Fatalf("idempotency key = %q", got)
	}
	if st.Status != recoup.StatusRecovered || len(st.Messages) != 1 || st.Messages[0].ProviderMessageID == "" {
		t.Fatalf("state = %+v", st)
	}
	w.mustFinish(recoup.StatusRecovered)
}

func TestRecoveredAtStep3(t *testing.T) {
	w := newWorld(t)
	w.at(7*day+time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(7 * day)})
	res, _ := w.run()
	if res.Status != recoup.StatusRecovered || res.Steps != 3 || len(w.sends) != 3 {
		t.Fatalf("result = %+v with %d sends, want recovered after 3 steps and 3 sends", res, len(w.sends))
	}
	w.mustFinish(recoup.StatusRecovered)
}

func TestExhaustedAfterSchedule(t *testing.T) {
	w := newWorld(t)
	res, st := w.run()
	if res.Status != recoup.StatusExhausted || res.Steps != 4 {
		t.Fatalf("result = %+v, want exhausted after 4 steps", res)
	}
	want := []time.Duration{0, 3 * day, 7 * day, 14 * day}
	if !slices.Equal(w.sendTimes, want) {
		t.Fatalf("sends at %v, want %v", w.sendTimes, want)
	}
	if len(st.Decisions) != 4 || st.TotalSteps != 4 {
		t.Fatalf("state has %d decisions, total %d", len(st.Decisions), st.TotalSteps)
	}
	w.mustFinish(recoup.StatusExhausted)
	if w.finished[0].AmountMinor != 4900 || w.finished[0].Steps != 4 {
		t.Fatalf("FinishRun = %+v", w.finished[0])
	}
}

func TestCanceled(t *testing.T) {
	w := newWorld(t)
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_cancel", Reason: "customer churned", OccurredAt: t0.Add(4 * day)})
	res, st := w.run()
	if res.Status != recoup.StatusCanceled || res.Reason != "customer churned" || len(w.sends) != 2 {
		t.Fatalf("result = %+v with %d sends, want canceled with reason after 2 sends", res, len(w.sends))
	}
	if st.Status != recoup.StatusCanceled {
		t.Fatalf("status = %s", st.Status)
	}
	w.mustFinish(recoup.StatusCanceled)
}

func TestPauseSendsNothingAndResumeContinues(t *testing.T) {
	w := newWorld(t)
	w.at(day, recoup.SignalPause, recoup.Pause{EventID: "evt_pause", Reason: "support ticket"})
	var paused recoup.State
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryStatus)
		if err == nil {
			_ = v.Get(&paused)
		}
	}, 2*day)
	w.at(5*day, recoup.SignalResume, recoup.Resume{EventID: "evt_resume"})
	w.at(8*day, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(8 * day)})
	res, _ := w.run()
	if paused.Status != recoup.StatusPaused {
		t.Fatalf("status while paused = %s, want paused", paused.Status)
	}
	// Step 2 was due on day 3; paused from day 1 to day 5, it moves back by 4 days to day 7.
	want := []time.Duration{0, 7 * day}
	if !slices.Equal(w.sendTimes, want) {
		t.Fatalf("sends at %v, want %v", w.sendTimes, want)
	}
	if res.Status != recoup.StatusRecovered {
		t.Fatalf("result = %+v", res)
	}
}

func TestOptOutSwitchesChannel(t *testing.T) {
	w := newWorld(t)
	w.decide = smsUnlessExcluded
	w.at(time.Hour, recoup.SignalOptOut, recoup.OptOut{EventID: "evt_stop", Channel: recoup.ChannelSMS, OccurredAt: t0.Add(time.Hour)})
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
	_, st := w.run()
	if len(w.sends) != 2 || w.sends[0].Decision.Channel != recoup.ChannelSMS || w.sends[1].Decision.Channel != recoup.ChannelEmail {
		t.Fatalf("sends = %+v, want sms then email", w.sends)
	}
	if !slices.Contains(w.decisions[1].Excluded, recoup.ChannelSMS) {
		t.Fatalf("step 2 decision input excluded %v, want sms", w.decisions[1].Excluded)
	}
	if !slices.Equal(st.OptedOut, []recoup.Channel{recoup.ChannelSMS}) {
		t.Fatalf("opted out = %v", st.OptedOut)
	}
}

func TestDuplicateAndStaleFailuresIgnored(t *testing.T) {
	w := newWorld(t)
	failed := retry("evt_r1", false, t0.Add(time.Hour))
	w.at(time.Hour, recoup.SignalRetryResult, failed)
	w.at(2*time.Hour, recoup.SignalRetryResult, failed) // duplicate
	// A failure that happened before the failure already applied: stale, not counted.
	w.at(3*time.Hour, recoup.SignalRetryResult, retry("evt_old", false, t0.Add(30*time.Minute)))
	w.at(4*time.Hour, recoup.SignalPaymentFailed, input().Failure) // the starting event again
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	res, st := w.run()
	if res.Status != recoup.StatusCanceled {
		t.Fatalf("result = %+v, want canceled", res)
	}
	if st.Failures != 2 {
		t.Fatalf("failures = %d, want 2 (first + one retry)", st.Failures)
	}
	type sig struct {
		id      string
		applied bool
	}
	var got []sig
	for _, s := range st.Signals {
		got = append(got, sig{s.EventID, s.Applied})
	}
	want := []sig{{"evt_r1", true}, {"evt_r1", false}, {"evt_old", false}, {"evt_first", false}, {"evt_c", true}}
	if !slices.Equal(got, want) {
		t.Fatalf("signals = %+v, want %+v", got, want)
	}
	if st.Signals[1].Note != "duplicate" || st.Signals[2].Note != "stale: older than the newest applied failure" {
		t.Fatalf("notes = %q, %q", st.Signals[1].Note, st.Signals[2].Note)
	}
}

func TestUnknownCustomerFailsWithoutSending(t *testing.T) {
	w := newWorld(t)
	w.fetchErr = temporal.NewNonRetryableApplicationError("unknown customer \"cus_1\"", recoup.ErrTypeUnknownCustomer, nil)
	w.run()
	err := w.env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != recoup.ErrTypeUnknownCustomer {
		t.Fatalf("workflow error = %v, want an UnknownCustomer application error", err)
	}
	if len(w.sends) != 0 || len(w.decisions) != 0 {
		t.Fatalf("sent %d messages, decided %d steps; want none", len(w.sends), len(w.decisions))
	}
	w.mustFinish(recoup.StatusFailed)
}

func TestRejectedSMSMovesToEmail(t *testing.T) {
	w := newWorld(t)
	w.decide = smsUnlessExcluded
	w.sendErr = func(in activities.SendInput) error {
		if in.Decision.Channel == recoup.ChannelSMS {
			return temporal.NewNonRetryableApplicationError("twilio: HTTP 400 code 21211", recoup.ErrTypeProviderRejected, nil)
		}
		return nil
	}
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
	_, st := w.run()
	if len(st.Messages) != 2 || st.Messages[0].Delivery != "failed" || st.Messages[1].Channel != recoup.ChannelEmail {
		t.Fatalf("messages = %+v, want a failed sms then an email", st.Messages)
	}
}

func TestIncentiveAnnouncedBeforeSend(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10}, 0)
	}
	w.at(time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(time.Hour)})
	_, st := w.run()
	if len(w.offers) != 1 || len(w.sends) != 1 || w.sends[0].OfferExpiresAt.IsZero() {
		t.Fatalf("offers = %d, sends = %+v: want the offer announced and its expiry passed to the send", len(w.offers), w.sends)
	}
	if len(st.Offers) != 1 || st.Offers[0].Value != 10 {
		t.Fatalf("state offers = %+v", st.Offers)
	}
}

func TestUnannouncedIncentiveIsNotPromised(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7}, 0)
	}
	w.offerErr = temporal.NewNonRetryableApplicationError("webhook: HTTP 410", recoup.ErrTypeWebhookRejected, nil)
	w.at(time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(time.Hour)})
	w.run()
	if len(w.sends) != 1 || w.sends[0].Decision.Incentive.Kind != recoup.IncentiveNone {
		t.Fatalf("sends = %+v, want one without the incentive", w.sends)
	}
}

func TestQuietHoursDelaySend(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{}, 9*time.Hour)
	}
	w.at(10*time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(10 * time.Hour)})
	w.run()
	if !slices.Equal(w.sendTimes, []time.Duration{9 * time.Hour}) {
		t.Fatalf("sends at %v, want one at 9h (the allowed send time)", w.sendTimes)
	}
}

func TestRecoveredWhileWaitingForSendTimeSendsNothing(t *testing.T) {
	w := newWorld(t)
	w.decide = func(in activities.DecideInput) recoup.Decision {
		return decision(in, recoup.ChannelEmail, recoup.Incentive{}, 9*time.Hour)
	}
	w.at(time.Hour, recoup.SignalRecovered, recoup.Recovered{EventID: "evt_paid", OccurredAt: t0.Add(time.Hour)})
	res, _ := w.run()
	if res.Status != recoup.StatusRecovered || len(w.sends) != 0 {
		t.Fatalf("result %+v with %d sends, want recovered and nothing sent", res, len(w.sends))
	}
}

// update sends an update at d and records how it ended.
type updateOutcome struct {
	rejected error
	result   recoup.ActionResult
	err      error
}

func (w *world) update(d time.Duration, name string, arg any) *updateOutcome {
	out := &updateOutcome{}
	w.env.RegisterDelayedCallback(func() {
		w.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.rejected = err },
			OnAccept: func() {},
			OnComplete: func(v interface{}, err error) {
				out.err = err
				if r, ok := v.(recoup.ActionResult); ok {
					out.result = r
				}
			},
		}, arg)
	}, d)
	return out
}

func TestSupportUpdates(t *testing.T) {
	w := newWorld(t)
	pause := w.update(time.Hour, recoup.UpdatePause, recoup.Pause{By: "alice", Reason: "customer called"})
	pauseAgain := w.update(2*time.Hour, recoup.UpdatePause, recoup.Pause{By: "bob"})
	actWhilePaused := w.update(3*time.Hour, recoup.UpdateActNow, recoup.ActNowRequest{By: "bob"})
	resume := w.update(4*time.Hour, recoup.UpdateResume, recoup.Resume{By: "alice"})
	w.at(5*time.Hour, recoup.SignalOptOut, recoup.OptOut{EventID: "evt_stop", Channel: recoup.ChannelSMS})
	toSMS := w.update(6*time.Hour, recoup.UpdateSetChannel, recoup.SetChannelRequest{By: "bob", Channel: recoup.ChannelSMS})
	toFax := w.update(6*time.Hour, recoup.UpdateSetChannel, recoup.SetChannelRequest{By: "bob", Channel: "fax"})
	toEmail := w.update(7*time.Hour, recoup.UpdateSetChannel, recoup.SetChannelRequest{By: "bob", Channel: recoup.ChannelEmail})
	// Step 2 is due on day 3 (plus the 3 h paused); acting now on day 1 sends it then.
	actNow := w.update(day, recoup.UpdateActNow, recoup.ActNowRequest{By: "carol", Reason: "customer asked for the link again"})
	cancel := w.update(2*day, recoup.UpdateCancel, recoup.Cancel{By: "dave", Reason: "refunded"})
	res, st := w.run()

	if pause.rejected != nil || pause.result.Status != recoup.StatusPaused {
		t.Fatalf("pause: %+v", pause)
	}
	for name, u := range map[string]*updateOutcome{"pause again": pauseAgain, "act now while paused": actWhilePaused, "opted-out channel": toSMS, "unknown channel": toFax} {
		if u.rejected == nil {
			t.Errorf("%s was accepted, want a rejection", name)
		}
	}
	if resume.rejected != nil || toEmail.rejected != nil || actNow.rejected != nil || cancel.rejected != nil {
		t.Fatalf("rejections: resume %v, email %v, act now %v, cancel %v", resume.rejected, toEmail.rejected, actNow.rejected, cancel.rejected)
	}
	if !strings.Contains(toSMS.rejected.Error(), "opted out") || !strings.Contains(toFax.rejected.Error(), "unknown channel") {
		t.Fatalf("rejection messages: %v / %v", toSMS.rejected, toFax.rejected)
	}
	if !slices.Equal(w.sendTimes, []time.Duration{0, day}) {
		t.Fatalf("sends at %v, want the first at once and the second when support acted (day 1)", w.sendTimes)
	}
	if w.decisions[1].Channel != recoup.ChannelEmail {
		t.Fatalf("step 2 decided with channel %q, want email (set by support)", w.decisions[1].Channel)
	}
	if res.Status != recoup.StatusCanceled || res.Reason != "refunded" {
		t.Fatalf("result = %+v", res)
	}
	var actions []string
	for _, a := range st.Actions {
		actions = append(actions, a.Action+" by "+a.By)
	}
	want := []string{"pause by alice", "resume by alice", "set-next-channel email by bob", "act-now by carol", "cancel by dave"}
	if !slices.Equal(actions, want) {
		t.Fatalf("actions = %q, want %q", actions, want)
	}
}

// A decline class that waits for a failed retry (issuer_unavailable) decides from how many
// failures the run has seen: the workflow tells DecideStrategy at every step.
func TestEachStepIsDecidedKnowingHowManyFailuresTheRunHasSeen(t *testing.T) {
	w := newWorld(t)
	w.at(time.Hour, recoup.SignalRetryResult, retry("evt_r1", false, t0.Add(time.Hour)))
	w.at(4*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if len(w.decisions) < 2 || w.decisions[0].Failures != 1 || w.decisions[1].Failures != 2 {
		var got []int
		for _, d := range w.decisions {
			got = append(got, d.Failures)
		}
		t.Fatalf("failures seen by the steps' decisions = %v, want [1 2]", got)
	}
}
