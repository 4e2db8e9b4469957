package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// support pauses the run for 30 minutes across the advised time. The executor
// finds the run paused at RetryAt, records "skipped" and never pays after the resume,
// although billing was told retry_at (and, with the executor on, relies on Recoup to pay).
func TestAPauseAcrossTheAdvisedTimeDefersThePaymentNotDropsIt(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "try_again_later"
	payer := &fakePayer{now: w.env.Now}
	acts := &activities.DunningActivities{Payer: payer, ClassifyDecline: func(string) recoup.DeclineClass { return recoup.DeclineIssuerUnavailable }}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	w.env.OnActivity(a.PayInvoice, mock.Anything, mock.Anything).Return(acts.PayInvoice)
	w.at(50*time.Minute, recoup.SignalPause, recoup.Pause{EventID: "evt_pause", By: "support", Reason: "check"})
	w.at(80*time.Minute, recoup.SignalResume, recoup.Resume{EventID: "evt_resume", By: "support"})
	_, st := w.run()
	payer.mu.Lock()
	defer payer.mu.Unlock()
	if len(payer.calls) != 1 {
		t.Fatalf("Stripe executor attempts %v after a 30-minute pause over the advised time (t0+1h), want 1 after the resume; advice %+v",
			payer.calls, st.Retry.Advice)
	}
}

// A run canceled while paused over the advised time never pays: the deferred payment waits
// for the run to be active again, and an ended run never is.
func TestARunEndedDuringAPauseOverTheAdvisedTimeNeverPays(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "try_again_later"
	payer := &fakePayer{now: w.env.Now}
	acts := &activities.DunningActivities{Payer: payer, ClassifyDecline: func(string) recoup.DeclineClass { return recoup.DeclineIssuerUnavailable }}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	w.env.OnActivity(a.PayInvoice, mock.Anything, mock.Anything).Return(acts.PayInvoice)
	w.at(50*time.Minute, recoup.SignalPause, recoup.Pause{EventID: "evt_pause", By: "support", Reason: "check"})
	w.at(80*time.Minute, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "customer left"})
	_, st := w.run()
	payer.mu.Lock()
	defer payer.mu.Unlock()
	if len(payer.calls) != 0 || !strings.HasPrefix(st.Retry.Advice.Executed, "skipped") {
		t.Fatalf("Stripe executor attempts %v for a run canceled while paused; advice %+v, want none, skipped", payer.calls, st.Retry.Advice)
	}
}
