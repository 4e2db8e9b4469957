package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// runStep fetches history, decides, waits for the customer's allowed hours, announces any
// offer and sends. It returns an error only when the step could not be carried out.
func (d *dunning) runStep(ctx workflow.Context, step int, scheduledAt time.Time) error {
	f := d.in.Failure
	defer d.flushUpsert(ctx) // the step's DunningStep, when nothing set it yet (lean-run)
	if step == 1 {
		d.holdIfIncident(ctx, d.wfID)
		if d.state.Status.Ended() {
			return nil
		}
	}
	var hist activities.CustomerHistory
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		return dbCall(ctx, fmt.Sprintf("Step %d · customer history", step), a.FetchCustomerHistory,
			activities.FetchHistoryInput{WorkflowID: d.runKey, CustomerID: f.CustomerID, InvoiceID: f.InvoiceID, Now: workflow.Now(ctx)})
	}, &hist)
	if stopped || err != nil || d.state.Status.Ended() {
		return err
	}
	var dec recoup.Decision
	failures := d.state.Failures
	stopped, err = d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		return d.decide(ctx, step, scheduledAt, hist)
	}, &dec)
	if stopped || err != nil || d.state.Status.Ended() {
		return err
	}
	d.state.Hardship = false // offered (or not allowed) once
	if d.state.NextChannel != "" && dec.Channel == d.state.NextChannel {
		d.state.NextChannel = ""
	}
	d.state.Decisions = append(d.state.Decisions, dec)
	d.noteRetryWait(ctx, dec, failures)
	if changed(ctx, ChangeDecisionSearchAttributes) {
		sa := []temporal.SearchAttributeUpdate{recoup.PromptVersionKey.ValueSet(dec.PromptVersion), recoup.DecidedByKey.ValueSet(dec.DecidedBy)}
		if d.lean && dec.Channel.Valid() && dec.Approval == nil {
			sa = append(sa, d.expectChannel(ctx, dec.Channel))
		}
		d.upsert(ctx, sa...)
	}
	d.updateDetails(ctx)
	d.log.Info("decided", "step", step, "channel", string(dec.Channel), "tone", dec.Tone,
		"incentive", dec.Incentive.Kind, "decided_by", dec.DecidedBy)
	if !dec.Channel.Valid() {
		return nil
	}
	d.history = hist
	if dec, ok := d.awaitApproval(ctx, step, dec); ok && !d.state.Status.Ended() {
		d.deliver(ctx, step, dec)
	}
	d.unexpectChannel()
	return nil
}

// decide starts the step's DecideStrategy: a local activity for runs with "lean-run" (in the
// same workflow task as the step's reads: no round trip of its own), an activity before it.
func (d *dunning) decide(ctx workflow.Context, step int, scheduledAt time.Time, hist activities.CustomerHistory) workflow.Future {
	f := d.in.Failure
	in := activities.DecideInput{
		WorkflowID: d.runKey, InvoiceID: f.InvoiceID, Step: step, TotalSteps: d.state.TotalSteps, History: hist,
		Excluded: slices.Clone(d.excluded), FailureCode: d.failureCode, AmountMinor: f.AmountMinor,
		Currency: f.Currency, Now: workflow.Now(ctx), ScheduledAt: scheduledAt, Channel: d.state.NextChannel,
		Hardship: d.state.Hardship, Failures: d.state.Failures, Advice: newestAdvice(d.state.Retry),
	}
	summary := fmt.Sprintf("Step %d · decide channel, tone and incentive", step)
	if d.lean {
		opts := decideLocalActivity
		opts.Summary = summary
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), a.DecideStrategy, in)
	}
	return workflow.ExecuteActivity(withSummary(ctx, decideActivity, summary), a.DecideStrategy, in)
}

// expectChannel (lean-run) is LastChannel set with the step's decision, in its upsert, to
// the channel its message goes by: recordSend then needs no upsert of its own. Should no send
// be recorded (the run ended, the channel became unavailable), unexpectChannel sets the
// previous value back.
func (d *dunning) expectChannel(ctx workflow.Context, ch recoup.Channel) temporal.SearchAttributeUpdate {
	prev, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(recoup.LastChannelKey)
	d.expected = &prev
	return recoup.LastChannelKey.ValueSet(string(ch))
}

func (d *dunning) unexpectChannel() {
	if d.expected == nil {
		return
	}
	if prev := *d.expected; prev == "" {
		d.deferUpsert(recoup.LastChannelKey.ValueUnset())
	} else {
		d.deferUpsert(recoup.LastChannelKey.ValueSet(prev))
	}
	d.expected = nil
}

// noteRetryWait remembers a step that sent nothing because the failure's decline class waits
// for a retry (no channel, a class, the run's first failure only): a failed retry then
// ends the wait for the next step at once (onRetryFailure). A failure that arrived while
// the step was decided counts at once.
func (d *dunning) noteRetryWait(ctx workflow.Context, dec recoup.Decision, failures int) {
	if d.state.RetryWait == retryWaiting {
		d.state.RetryWait = "" // this step was decided: it no longer waits
	}
	if dec.Channel != recoup.ChannelNone || dec.DeclineClass == "" || failures > 1 || d.nextStep+1 >= len(d.schedule) {
		return
	}
	d.state.RetryWait = retryWaiting
	if d.state.Failures > failures {
		d.onRetryFailure(ctx)
	}
}

// onRetryFailure: a retry failed (payment.retry_failed, a later payment.failed) while the run
// waits for one; the wait for the next step ends at once. Runs recorded before
// ChangeActOnFailedRetry wait for the step's time.
func (d *dunning) onRetryFailure(ctx workflow.Context) {
	if d.state.RetryWait != retryWaiting {
		return
	}
	d.state.RetryWait = ""
	if version(ctx, ChangeActOnFailedRetry, 1) >= 1 {
		d.state.RetryWait = retryFailed
	}
}

// The values of State.RetryWait.
const (
	retryWaiting = "waiting"
	retryFailed  = "failed"
)

// window is an allowed-hours window; a zero until means no end is known (decisions
// recorded before windows existed).
type window struct{ from, until time.Time }

func (w window) passed(now time.Time) bool { return !w.until.IsZero() && !now.Before(w.until) }

// delivery is the state of one step's message on its way to the provider.
type delivery struct {
	step      int
	dec       recoup.Decision
	in        activities.SendInput
	win       window
	announced bool   // the offer (if any) was announced, or refused by billing
	what      string // the wait for the allowed hours, as the UI shows it
}

// next says how a delivery goes on after one of its steps.
type next int

const (
	proceed  next = iota // go on to the delivery's next step
	again                // start over: check the window and the run again
	finished             // the delivery is over (sent, failed, skipped or stopped)
)

// deliver hands the step's message to the provider once, inside the customer's allowed
// hours, while the run is active: a settle, cancel, opt-out or pause that arrives at any
// moment before the send starts (waiting, announcing the offer, retrying the send) stops it.
// A pause moves the message to the first allowed window after the resume.
func (d *dunning) deliver(ctx workflow.Context, step int, dec recoup.Decision) {
	f := d.in.Failure
	dl := &delivery{step: step, dec: dec, win: window{from: dec.SendAt, until: dec.SendUntil},
		announced: dec.Incentive.Kind == recoup.IncentiveNone || dec.Incentive.Kind == "",
		what:      fmt.Sprintf("send step %d by %s", step, dec.Channel),
		in: activities.SendInput{
			IdempotencyKey: activities.IdempotencyKey(d.runKey, step, dec.Channel), WorkflowID: d.runKey,
			InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, Step: step, Decision: dec,
			AmountMinor: f.AmountMinor, Currency: f.Currency,
		}}
	for {
		switch d.reachWindow(ctx, dl) {
		case again:
			continue
		case finished:
			return
		}
		if slices.Contains(d.excluded, dec.Channel) {
			d.skipUnreachable(ctx, dl)
			return
		}
		if !dl.announced {
			d.announceOffer(ctx, dl)
			continue // the announcement may have taken long: check the window and the run again
		}
		if d.send(ctx, dl) == finished {
			return
		}
	}
}

// reachWindow waits, while the run is active, until the message may go: inside the
// customer's allowed hours, asking for the next window when the current one has passed.
func (d *dunning) reachWindow(ctx workflow.Context, dl *delivery) next {
	d.applyPendingSignals(ctx)
	if d.state.Status.Ended() || ctx.Err() != nil {
		return finished
	}
	if dl.win.passed(workflow.Now(ctx)) {
		w, ok := d.nextWindow(ctx, dl.dec.Channel)
		if !ok {
			retryAt := workflow.Now(ctx).Add(stepRetryInterval)
			if d.waitUntil(ctx, func() time.Time { return retryAt }, "look up the allowed hours again", waitRetry) != waitDone {
				return finished
			}
			return again
		}
		dl.win = w
	}
	if d.waitUntil(ctx, func() time.Time { return dl.win.from }, dl.what, waitHours) != waitDone {
		return finished
	}
	if dl.win.passed(workflow.Now(ctx)) || d.state.Status != recoup.StatusActive {
		return again // a pause or a hold outlasted the window
	}
	if d.repliesPending() {
		// No message leaves while a reply waits to be classified: it may stop or pause
		// the run. Wait until every received reply is handled, then check again.
		_ = workflow.Await(ctx, func() bool { return !d.repliesPending() || d.state.Status.Ended() })
		return again
	}
	d.applyPendingSignals(ctx)
	if d.state.Status.Ended() {
		return finished
	}
	return proceed
}

// skipUnreachable records the message as skipped: its channel became unavailable.
func (d *dunning) skipUnreachable(ctx workflow.Context, dl *delivery) {
	d.state.Messages = append(d.state.Messages, recoup.MessageRecord{Step: dl.step, Channel: dl.dec.Channel,
		Delivery: "skipped", Error: "channel became unavailable before sending (opt-out or undeliverable)", At: workflow.Now(ctx)})
	d.updateDetails(ctx)
}

// announceOffer tells billing of the decision's incentive before the message promises it;
// refused, the message goes without it. Stopped (the run paused or ended, the channel
// became unavailable), it is tried again.
func (d *dunning) announceOffer(ctx workflow.Context, dl *delivery) {
	f, dec := d.in.Failure, dl.dec
	var offer activities.OfferResult
	stopped, err := d.stoppable(ctx, d.sendStops(dec.Channel), func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Tell billing of the offer: "+decisionLine(dec)), a.AnnounceOffer, activities.OfferInput{
			WorkflowID: d.runKey, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, Step: dl.step,
			Incentive: dec.Incentive, Now: workflow.Now(ctx),
		})
	}, &offer)
	if stopped {
		return
	}
	dl.announced = true
	if err != nil {
		// Billing refused the offer, so the message must not promise it.
		d.log.Warn("offer could not be announced; sending without the incentive", "step", dl.step, "error", err)
		dl.in.Decision.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
		d.offerWithdrawn(dl.step, err)
		return
	}
	dl.in.OfferExpiresAt = offer.ExpiresAt
	d.state.Offers = append(d.state.Offers, dec.Incentive)
}

// offerWithdrawn corrects the approval record of a held step whose approved (or edited, or
// fallback) decision promised the incentive billing then refused: support reads what the
// customer got, not what was approved (INVARIANTS.md I13).
func (d *dunning) offerWithdrawn(step int, err error) {
	for i := len(d.state.Approvals) - 1; i >= 0; i-- {
		rec := &d.state.Approvals[i]
		if rec.Step != step || rec.Sent == nil {
			continue
		}
		sent := *rec.Sent
		sent.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
		rec.Sent = &sent
		rec.Reason += " (incentive withdrawn: billing refused the offer: " + err.Error() + ")"
		return
	}
}

// send hands the message to the provider on its channel's task queue and records how it
// went; again when it was stopped or reached the provider outside the allowed hours.
func (d *dunning) send(ctx workflow.Context, dl *delivery) next {
	dec := dl.dec
	dl.in.NotBefore, dl.in.NotAfter = dl.win.from, dl.win.until
	send, queue := a.SendEmail, recoup.EmailTaskQueue
	if dec.Channel == recoup.ChannelSMS {
		send, queue = a.SendSMS, recoup.SMSTaskQueue
	}
	opts := sendActivity
	if changed(ctx, ChangeSendsTaskQueue) {
		opts.TaskQueue = queue // rate-limited per provider across all workers
	}
	in := dl.in
	var res activities.SendResult
	stopped, err := d.stoppable(ctx, d.sendStops(dec.Channel), func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteActivity(withSummary(ctx, opts, decisionLine(in.Decision)), send, in)
	}, &res)
	if stopped {
		return again
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == recoup.ErrTypeOutsideAllowedHours {
		d.log.Info("the send reached the provider step outside the allowed hours; waiting for the next window", "step", dl.step)
		dl.win.until = workflow.Now(ctx) // ask for the next window
		return again
	}
	d.recordSend(ctx, dl, res, err)
	if err == nil && d.awaitEvidence(ctx, dl, res) {
		return again // the provider never accepted it: sent again, once (dl.in.Resend)
	}
	return finished
}

// awaitEvidence waits, after a send whose outcome is unknown, for its reconcile window to
// pass, and says whether to send again with Resend: the send activity then settles the
// message from the provider's events (nothing is sent when an event named it) or sends it
// once more. A resend is never resent. Runs recorded before ChangeReconcileResend keep the
// message in reconcile.
func (d *dunning) awaitEvidence(ctx workflow.Context, dl *delivery, res activities.SendResult) bool {
	if res.Delivery != recoup.DeliveryReconcile || res.ReconcileAt.IsZero() || dl.in.Resend {
		return false
	}
	if version(ctx, ChangeReconcileResend, 1) < 1 {
		return false
	}
	what := fmt.Sprintf("wait for the provider's evidence of step %d", dl.step)
	if d.waitUntil(ctx, func() time.Time { return res.ReconcileAt }, what, waitEvidence) != waitDone {
		return false
	}
	dl.in.Resend = true
	return true
}

// recordSend records the message's outcome. A settle billing recorded before the send ends
// the run; a definite rejection excludes the channel from the run's next steps.
func (d *dunning) recordSend(ctx workflow.Context, dl *delivery, res activities.SendResult, err error) {
	ch := dl.dec.Channel
	rec := recoup.MessageRecord{Step: dl.step, Channel: ch, IdempotencyKey: dl.in.IdempotencyKey,
		ProviderMessageID: res.ProviderMessageID, Delivery: res.Delivery, At: workflow.Now(ctx)}
	if res.ResendKey != "" {
		rec.IdempotencyKey = res.ResendKey // the step's one resend
	}
	if err != nil {
		var appErr *temporal.ApplicationError
		errors.As(err, &appErr)
		rec.Delivery, rec.Error = "failed", err.Error()
		if by, ok := settledBy(err); ok {
			// Billing's settle is recorded and on its way to this run as a signal: the
			// run ends with it now.
			rec.Delivery, rec.Error = "skipped", appErr.Message()
			d.state.Messages = append(d.state.Messages, rec)
			d.applySettledBy(ctx, by)
			d.updateDetails(ctx)
			return
		}
		if appErr != nil && (appErr.Type() == recoup.ErrTypeProviderRejected || appErr.Type() == recoup.ErrTypeNotReachable) {
			d.exclude(ch) // e.g. an invalid phone number: the next steps use the other channel
		}
	}
	d.state.Messages = append(d.state.Messages, rec)
	if cur, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(recoup.LastChannelKey); !d.lean || cur != string(ch) {
		d.upsert(ctx, recoup.LastChannelKey.ValueSet(string(ch)))
	}
	d.expected = nil // LastChannel is the recorded send's
	d.updateDetails(ctx)
}

// nextWindow asks for the customer's next allowed-hours window on a channel. ok is false
// when none could be had (the look-up failed past its retries, or answered nonsense): the
// caller waits and asks again, and never invents a window.
func (d *dunning) nextWindow(ctx workflow.Context, ch recoup.Channel) (w window, ok bool) {
	opts := dbLocalActivity
	opts.Summary = "Next allowed hours by " + string(ch)
	var res activities.SendWindowResult
	stopped, err := d.stoppable(ctx, d.ended, func(ctx workflow.Context) workflow.Future {
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), a.SendWindow, activities.SendWindowInput{
			CustomerID: d.in.Failure.CustomerID, Channel: ch, Now: workflow.Now(ctx),
		})
	}, &res)
	if stopped || err != nil || res.NotBefore.IsZero() || (!res.NotAfter.IsZero() && !res.NotAfter.After(workflow.Now(ctx))) {
		if err != nil {
			d.log.Error("could not look up the customer's allowed hours; asking again in an hour", "error", err)
		}
		return window{}, false
	}
	return window{from: res.NotBefore, until: res.NotAfter}, true
}

// ended is the stop condition of the activities that only an ended run stops.
func (d *dunning) ended() bool { return d.state.Status.Ended() }

// sendStops is the stop condition of announcing and sending on ch: the run ended, was
// paused or needs support's attention (a reply), or the customer can no longer be reached on ch (an opt-out).
func (d *dunning) sendStops(ch recoup.Channel) func() bool {
	return func() bool {
		return d.ended() || d.pausedLike() || slices.Contains(d.excluded, ch) || d.repliesPending()
	}
}

// stoppable runs an activity and waits for it, unless stop() becomes true first: then the
// activity is canceled and stopped is true. Activities
// retry without limit, so this is what lets a settle or a cancel end a run whose
// dependency is down.
func (d *dunning) stoppable(ctx workflow.Context, stop func() bool, start func(workflow.Context) workflow.Future, out any) (stopped bool, err error) {
	cctx, cancel := workflow.WithCancel(ctx)
	f := start(cctx)
	if !f.IsReady() {
		_ = workflow.Await(ctx, func() bool { return f.IsReady() || stop() })
	}
	if !f.IsReady() {
		cancel()
		return true, nil
	}
	return false, f.Get(ctx, out)
}

func (d *dunning) exclude(ch recoup.Channel) {
	if !slices.Contains(d.excluded, ch) {
		d.excluded = append(d.excluded, ch)
	}
}

// newestAdvice is a copy of the run's newest retry advice for a decision (nil: none yet).
func newestAdvice(r *recoup.RetryState) *recoup.RetryAdvice {
	if r == nil || r.Advice == nil {
		return nil
	}
	adv := *r.Advice
	return &adv
}
