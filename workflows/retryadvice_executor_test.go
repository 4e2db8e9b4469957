package workflows_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/workflows"
)

// the Stripe executor's scheduled payment lives only in the advice goroutine. A
// run that continues as new while that goroutine waits for RetryAt drops it: the advice was
// popped from Pending before execute, so the new run never pays. Billing was told (and the
// customer's message may say) the payment will be retried; nobody retries it.
func TestContinueAsNewBeforeTheAdvisedTimeStillPaysTheInvoice(t *testing.T) {
	w := newWorld(t)
	w.input.Failure.FailureCode = "try_again_later"
	payer := &fakePayer{now: w.env.Now}
	acts := &activities.DunningActivities{Payer: payer, ClassifyDecline: func(string) recoup.DeclineClass { return recoup.DeclineIssuerUnavailable }}
	w.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts.AdviseRetry)
	w.env.OnActivity(a.PayInvoice, mock.Anything, mock.Anything).Return(acts.PayInvoice)
	w.env.RegisterDelayedCallback(func() { w.env.SetContinueAsNewSuggested(true) }, 30*time.Minute)
	w.env.ExecuteWorkflow(workflows.DunningWorkflow, w.input)
	var can *workflow.ContinueAsNewError
	if err := w.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("first run ended with %v, want continue-as-new before the advised time (t0+1h)", err)
	}
	var next recoup.DunningInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if r := next.Continued.State.Retry; r == nil || r.Advice == nil || r.Advice.DoNotRetry {
		t.Fatalf("carried retry state %+v: want the advised retry", r)
	}
	w2 := newWorld(t)
	w2.input = next
	payer2 := &fakePayer{now: w2.env.Now}
	acts2 := &activities.DunningActivities{Payer: payer2, ClassifyDecline: acts.ClassifyDecline}
	w2.env.OnActivity(a.AdviseRetry, mock.Anything, mock.Anything).Return(acts2.AdviseRetry)
	w2.env.OnActivity(a.PayInvoice, mock.Anything, mock.Anything).Return(acts2.PayInvoice)
	_, st := w2.run()
	if n := len(payer.calls) + len(payer2.calls); n != 1 {
		t.Fatalf("Stripe executor attempts across the continue-as-new: %d (%v %v), want 1; advice %+v",
			n, payer.calls, payer2.calls, st.Retry.Advice)
	}
}
