package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// Retry advice. Every failure the run applies (the one that started it, a later
// payment.failed, a payment.retry_failed) is an attempt on the card and is queued for
// advice; billing's retry results (failed or succeeded) count against the networks'
// budgets. The advice goroutine asks AdviseRetry, one failure at a time and in order, which
// decides the advice and sends billing the dunning.retry_advice webhook (one per failure
// event id). The state keeps the attempts, the failures not yet advised on, and the newest
// advice; it carries across continue-as-new with the state.

// recordAttempt adds an attempt to the run's retry bookkeeping; a failure is queued for advice.
func (d *dunning) recordAttempt(at recoup.RetryAttempt) {
	r := d.state.Retry
	if r == nil {
		r = &recoup.RetryState{}
		d.state.Retry = r
	}
	r.Attempts = append(r.Attempts, at)
	if n := len(r.Attempts) - recoup.MaxRetryAttempts; n > 0 {
		r.Attempts = r.Attempts[n:]
	}
	if !at.Succeeded {
		r.Pending = append(r.Pending, at)
	}
}

// recordCardUpdate keeps billing's payment_method.updated for the next advice, which counts
// it (CardUpdated: no retry of the old card unless billing asked). With retry_requested it
// queues a fresh advice at once, keyed by the update's event id (its webhook id), on the
// newest failure's code.
func (d *dunning) recordCardUpdate(ctx workflow.Context, s recoup.PaymentMethodUpdated) {
	r := d.state.Retry
	if r == nil {
		r = &recoup.RetryState{}
		d.state.Retry = r
	}
	s.OccurredAt = clampFuture(s.OccurredAt, workflow.Now(ctx))
	r.CardUpdate = &s
	if !s.RetryRequested {
		return
	}
	code := d.in.Failure.FailureCode
	for _, at := range r.Attempts {
		if !at.Succeeded && at.Code != "" {
			code = at.Code
		}
	}
	r.Pending = append(r.Pending, recoup.RetryAttempt{EventID: s.EventID, At: s.OccurredAt, Code: code})
}

// cardUpdateFor is the card update the advice on failure counts, and whether that advice
// uses it up: a retry-requested update is kept for its own advice. An update counts only
// for failures that happened before it (the old card's): a failure after it is the new
// card's, advised on its own merits, and makes a plain update moot.
func cardUpdateFor(r *recoup.RetryState, failure recoup.RetryAttempt) (cu *recoup.PaymentMethodUpdated, consumed bool) {
	cu = r.CardUpdate
	if cu == nil {
		return nil, false
	}
	if cu.EventID != failure.EventID && failure.At.After(cu.OccurredAt) {
		return nil, !cu.RetryRequested
	}
	return cu, !cu.RetryRequested || cu.EventID == failure.EventID
}

// executeScheduled marks an advice the Stripe executor is to pay at its time; it carries
// across continue-as-new in State.Retry, and the next run resumes the wait.
const executeScheduled = "scheduled"

// executorAttempt is the attempt number in the executor's Idempotency-Key for the run's n-th
// advice: unique across the invoice's runs (episode e numbers from (e-1)*100000+1), stable
// across activity retries and continue-as-new (n carries in State.Retry.Advised).
func (d *dunning) executorAttempt(n int) int {
	if e := d.in.Episode; e > 1 {
		return (e-1)*100_000 + n
	}
	return n
}

func (d *dunning) advicePending() bool {
	return d.state.Retry != nil && len(d.state.Retry.Pending) > 0
}

// startRetryAdvice starts the goroutine that advises billing on each queued failure for as
// long as the run lives. Runs recorded before ChangeRetryAdvice advise nothing (and drop
// what they queue).
func (d *dunning) startRetryAdvice(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		if r := d.state.Retry; r != nil && r.Advice != nil && r.Advice.Executed == executeScheduled {
			d.execute(ctx, r.Advice, r.Advised) // carried by continue-as-new: resume the wait
		}
		for {
			if err := workflow.Await(ctx, func() bool { return d.advicePending() || d.ended() }); err != nil || d.ended() {
				return
			}
			if version(ctx, ChangeRetryAdvice, 1) < 1 {
				// A run recorded before retry advice advises nothing; it keeps its queue empty
				// so that its next run (after continue-as-new) does not advise a backlog at once.
				d.state.Retry.Pending = nil
				continue
			}
			if cu := d.state.Retry.CardUpdate; cu != nil && cu.EventID == d.state.Retry.Pending[0].EventID &&
				version(ctx, ChangeCardUpdate, 1) < 1 {
				d.state.Retry.Pending = d.state.Retry.Pending[1:]
				continue
			}
			execute, ok := d.advise(ctx, d.state.Retry.Pending[0])
			if !ok {
				return
			}
			d.state.Retry.Pending = d.state.Retry.Pending[1:]
			if execute {
				d.state.Retry.Advice.Executed = executeScheduled
				d.execute(ctx, d.state.Retry.Advice, d.state.Retry.Advised)
			}
		}
	})
}

// advise asks AdviseRetry about one failure and records the advice; ok is false when the
// run ended first; execute when the Stripe executor is to pay the invoice at the advised time.
func (d *dunning) advise(ctx workflow.Context, failure recoup.RetryAttempt) (execute, ok bool) {
	f := d.in.Failure
	in := activities.AdviseRetryInput{
		WorkflowID: d.runKey, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, Failure: failure,
		Attempts: attemptsUpTo(d.state.Retry.Attempts, failure.EventID), CardBIN: f.CardBIN,
		Country: f.IssuerCountry, Now: workflow.Now(ctx),
	}
	if f.Customer != nil {
		in.TimeZone = f.Customer.TimeZone
	}
	cu, consumed := cardUpdateFor(d.state.Retry, failure)
	if cu != nil {
		in.CardUpdated, in.RetryAfterCardUpdate = true, cu.RetryRequested && consumed
	}
	var res activities.AdviseRetryResult
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		summary := "Advise billing on retrying " + failure.EventID
		if d.lean { // bounded calls (PostgreSQL, billing's webhook), keyed by the failure's event id
			opts := dbLocalActivity
			opts.Summary = summary
			return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), a.AdviseRetry, in)
		}
		return workflow.ExecuteActivity(withSummary(ctx, dbActivity, summary), a.AdviseRetry, in)
	}, &res)
	if stopped || d.ended() {
		return false, false
	}
	if err != nil { // retries ran out (a worker configured with a limit): recorded, not advised
		d.log.Error("could not advise billing on the retry", "failure_event_id", failure.EventID, "error", err)
		res.Advice = recoup.RetryAdvice{FailureEventID: failure.EventID, Reason: "not advised: " + err.Error(), AdvisedAt: workflow.Now(ctx), Delivery: "failed"}
	}
	d.state.Retry.Advice = &res.Advice
	d.state.Retry.Advised++
	if consumed {
		d.state.Retry.CardUpdate = nil
	}
	d.updateDetails(ctx)
	return res.Execute && err == nil, true
}

// execute is the Stripe executor: at the advised time it pays the invoice (PayInvoice,
// idempotency key recoup-<invoice>-attempt-<n>, n the advice's number, see executorAttempt).
// A newer failure arriving first supersedes the advice, and a run that ends pays nothing; a
// run not active at the time (paused, held, waiting for support or approval) pays once it is
// active again. While it waits the advice is "scheduled", which continue-as-new carries. The
// outcome comes back through Stripe's webhooks as any payment does. Only runs whose AdviseRetry answered Execute (the executor
// enabled on the worker) emit these commands, so recorded runs replay unchanged.
func (d *dunning) execute(ctx workflow.Context, adv *recoup.RetryAdvice, n int) {
	wait := adv.RetryAt.Sub(workflow.Now(ctx))
	if wait > 0 {
		superseded, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait,
			TimerOptions: workflow.TimerOptions{Summary: "pay the invoice through Stripe at the advised time (" + humanDuration(wait) + ")"}},
			func() bool { return d.ended() || d.advicePending() })
		if err != nil || superseded {
			adv.Executed = "skipped: a newer failure or the run's end came first"
			return
		}
	}
	if err := workflow.Await(ctx, func() bool {
		return d.state.Status == recoup.StatusActive || d.ended() || d.advicePending()
	}); err != nil || d.ended() || d.advicePending() {
		adv.Executed = "skipped: a newer failure or the run's end came first"
		return
	}
	f := d.in.Failure
	var res activities.PayInvoiceResult
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(withSummary(ctx, dbActivity, fmt.Sprintf("Pay the invoice through Stripe (attempt %d)", n)), a.PayInvoice,
			activities.PayInvoiceInput{InvoiceID: f.InvoiceID, N: d.executorAttempt(n)})
	}, &res)
	switch {
	case stopped:
		adv.Executed = "skipped: the run ended"
	case err != nil:
		adv.Executed = "failed: " + err.Error()
	case res.Paid:
		adv.Executed = "paid"
	default:
		adv.Executed = "declined: " + res.DeclineCode
	}
	d.updateDetails(ctx)
}

// attemptsUpTo are the attempts up to and including the one with event id id.
func attemptsUpTo(as []recoup.RetryAttempt, id string) []recoup.RetryAttempt {
	for i, at := range as {
		if at.EventID == id {
			return as[:i+1]
		}
	}
	return as
}

// retryLine is the newest advice in a few words, for the current details.
func retryLine(adv *recoup.RetryAdvice) string {
	switch {
	case adv == nil || adv.Delivery == "failed":
		return ""
	case adv.DoNotRetry:
		return fmt.Sprintf("Retry: do not retry (%s)", adv.Class)
	}
	return fmt.Sprintf("Retry advised at %s (%d left)", when(adv.RetryAt), adv.Remaining)
}

// retryAhead is the newest advice for the details while the run is open and the advice's
// time is ahead of now (zero now: always); "" otherwise.
func retryAhead(st recoup.State, now time.Time) string {
	if st.Status.Ended() || st.Retry == nil {
		return ""
	}
	adv := st.Retry.Advice
	if adv != nil && !adv.DoNotRetry && !now.IsZero() && adv.RetryAt.Before(now) {
		return ""
	}
	return retryLine(adv)
}
