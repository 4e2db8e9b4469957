// Package workflows holds DunningWorkflow: the deterministic orchestration of one failed
// invoice's dunning run. It does no I/O and imports no adapter; every side effect is an
// activity from package activities.
package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// Typed search-attribute keys, declared once.
var (
	CustomerIDKey    = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrCustomerID)
	InvoiceIDKey     = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrInvoiceID)
	DunningStatusKey = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrDunningStatus)
	DunningStepKey   = temporal.NewSearchAttributeKeyInt64(recoup.SearchAttrDunningStep)
	LastChannelKey   = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrLastChannel)
	PromptVersionKey = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrPromptVersion)
	DecidedByKey     = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrDecidedBy)
	AmountDueKey     = temporal.NewSearchAttributeKeyInt64(recoup.SearchAttrAmountDue)
	CurrencyKey      = temporal.NewSearchAttributeKeyKeyword(recoup.SearchAttrCurrency)
)

// FinalWait is how long a run waits for a retry outcome after its last step before it is
// exhausted, unless PlanRun says otherwise.
const FinalWait = 72 * time.Hour

// Activity options. Every activity has explicit timeouts and a retry policy; errors that
// retrying cannot fix come back as non-retryable application errors.
var (
	dbActivity = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	}
	decideActivity = workflow.ActivityOptions{
		StartToCloseTimeout:    90 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	}
	sendActivity = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 2 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		},
	}
)

// a is used only for typed method values; the worker registers the real struct.
var a *activities.Activities

type dunning struct {
	in          recoup.DunningInput
	state       recoup.State
	seen        map[string]bool  // event ids of signals already received
	excluded    []recoup.Channel // opted out or undeliverable for the rest of the run
	failureCode string           // of the newest applied failure
	pausedAt    time.Time        // when the current pause began
	pausedFor   time.Duration    // total time paused so far: later steps move back by it
	// actNowPending ends the current wait (support's act-now).
	actNowPending bool
	holdReleased  bool // the detector (or support) released the failure-spike hold
	log           log.Logger
}

// DunningWorkflow runs the dunning schedule of one failed invoice until it is recovered,
// exhausted or canceled. Its ID is recoup.WorkflowID(invoice id).
func DunningWorkflow(ctx workflow.Context, in recoup.DunningInput) (recoup.DunningResult, error) {
	d := &dunning{in: in, seen: map[string]bool{}}
	if err := d.setup(ctx); err != nil {
		return recoup.DunningResult{Status: recoup.StatusFailed, Reason: err.Error()}, err
	}
	return d.run(ctx)
}

func (d *dunning) setup(ctx workflow.Context) error {
	f := d.in.Failure
	switch {
	case f.InvoiceID == "":
		return temporal.NewNonRetryableApplicationError("input: failure.invoice_id is required", activities.ErrTypeInvalidInput, nil)
	case f.CustomerID == "":
		return temporal.NewNonRetryableApplicationError("input: failure.customer_id is required", activities.ErrTypeInvalidInput, nil)
	}
	d.log = log.With(workflow.GetLogger(ctx), "invoice_id", f.InvoiceID, "customer_id", f.CustomerID)
	d.state = recoup.State{
		InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, AmountMinor: f.AmountMinor, Currency: f.Currency,
		Status: recoup.StatusActive, StartedAt: workflow.Now(ctx), Failures: 1, LastApplied: f.OccurredAt,
	}
	if f.EventID != "" {
		d.seen[f.EventID] = true
	}
	d.failureCode = f.FailureCode
	if err := workflow.SetQueryHandler(ctx, recoup.QueryStatus, func() (recoup.State, error) {
		return d.state, nil
	}); err != nil {
		return err
	}
	if err := d.registerUpdates(ctx); err != nil {
		return err
	}
	d.upsert(ctx, CustomerIDKey.ValueSet(f.CustomerID), InvoiceIDKey.ValueSet(f.InvoiceID),
		DunningStatusKey.ValueSet(string(d.state.Status)), DunningStepKey.ValueSet(0))
	workflow.Go(ctx, d.receiveSignals)
	d.updateDetails(ctx)
	return nil
}

func (d *dunning) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		d.log.Warn("could not update search attributes", "error", err)
	}
}

func (d *dunning) setStatus(ctx workflow.Context, s recoup.Status, reason string) {
	if d.state.Status == s || d.state.Status.Ended() {
		return
	}
	d.state.Status = s
	d.state.Reason = reason
	if s.Ended() {
		d.state.NextAction, d.state.NextActionAt = "", time.Time{}
	}
	d.upsert(ctx, DunningStatusKey.ValueSet(string(s)))
	d.log.Info("dunning status changed", "status", string(s), "reason", reason)
	d.updateDetails(ctx)
}

// updateDetails keeps the run's current details (shown in the Web UI) up to date: status,
// step, next action and when, and the last decision in one line.
func (d *dunning) updateDetails(ctx workflow.Context) {
	st := d.state
	lines := []string{fmt.Sprintf("**%s** · step %d of %d", st.Status, st.Step, st.TotalSteps)}
	if st.Reason != "" {
		lines[0] += " · " + st.Reason
	}
	if st.NextAction != "" {
		lines = append(lines, fmt.Sprintf("Next: %s at %s", st.NextAction, st.NextActionAt.UTC().Format("2006-01-02 15:04 MST")))
	}
	if st.NextChannel != "" {
		lines = append(lines, "Next message by "+string(st.NextChannel)+" (set by support)")
	}
	if n := len(st.Decisions); n > 0 {
		lines = append(lines, "Last decision: "+decisionLine(st.Decisions[n-1]))
	}
	details := ""
	for i, l := range lines {
		if i > 0 {
			details += "\n\n"
		}
		details += l
	}
	workflow.SetCurrentDetails(ctx, details)
}

// decisionLine is a decision in one line, e.g. "Email · friendly · 10% off · decided by LLM".
func decisionLine(dec recoup.Decision) string {
	ch := map[recoup.Channel]string{recoup.ChannelEmail: "Email", recoup.ChannelSMS: "SMS", recoup.ChannelNone: "No message"}[dec.Channel]
	inc := "no incentive"
	switch dec.Incentive.Kind {
	case recoup.IncentiveDiscountPercent:
		inc = fmt.Sprintf("%d%% off", dec.Incentive.Value)
	case recoup.IncentiveExtensionDays:
		inc = fmt.Sprintf("%d more days", dec.Incentive.Value)
	}
	by := "rules"
	if dec.DecidedBy == recoup.DecidedByLLM {
		by = "LLM"
	}
	return fmt.Sprintf("%s · %s · %s · decided by %s", ch, dec.Tone, inc, by)
}

// withSummary returns ctx with activity options carrying a one-line summary for the UI.
func withSummary(ctx workflow.Context, opts workflow.ActivityOptions, summary string) workflow.Context {
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}

func (d *dunning) run(ctx workflow.Context) (recoup.DunningResult, error) {
	f := d.in.Failure
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	var plan activities.PlanRunResult
	err := dbCall(ctx, "Plan the run", a.PlanRun, activities.PlanRunInput{
		WorkflowID: wfID, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, StartedAt: d.state.StartedAt,
	}).Get(ctx, &plan)
	if err != nil {
		return d.finish(ctx, recoup.StatusFailed, "could not plan the run: "+err.Error())
	}
	finalWait := plan.FinalWait
	if finalWait <= 0 {
		finalWait = FinalWait
	}
	d.state.TotalSteps = len(plan.Schedule)
	for i, offset := range plan.Schedule {
		step := i + 1
		stepAt := func() time.Time { return d.state.StartedAt.Add(offset + d.pausedFor) }
		if !d.waitUntil(ctx, stepAt, fmt.Sprintf("step %d", step)) {
			break
		}
		d.state.Step = step
		d.upsert(ctx, DunningStepKey.ValueSet(int64(step)))
		if err := d.runStep(ctx, wfID, step); err != nil {
			var appErr *temporal.ApplicationError
			if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeUnknownCustomer {
				res, _ := d.finish(ctx, recoup.StatusFailed, appErr.Message())
				return res, temporal.NewNonRetryableApplicationError(appErr.Message(), activities.ErrTypeUnknownCustomer, nil)
			}
			d.log.Error("step could not complete; continuing with the schedule", "step", step, "error", err)
		}
	}
	if !d.state.Status.Ended() {
		exhaustAt := workflow.Now(ctx).Add(finalWait)
		pausedBefore := d.pausedFor
		d.waitUntil(ctx, func() time.Time { return exhaustAt.Add(d.pausedFor - pausedBefore) }, "exhaust if still unpaid")
	}
	if ctx.Err() != nil {
		d.setStatus(ctx, recoup.StatusCanceled, "workflow canceled through Temporal")
	}
	if !d.state.Status.Ended() {
		d.setStatus(ctx, recoup.StatusExhausted, fmt.Sprintf("no recovery after %d steps", d.state.Step))
	}
	return d.finish(ctx, d.state.Status, d.state.Reason)
}

// runStep fetches history, decides, waits for the allowed send time, announces any offer
// and sends. It returns an error only when the step could not be carried out.
func (d *dunning) runStep(ctx workflow.Context, wfID string, step int) error {
	f := d.in.Failure
	if step == 1 {
		d.holdIfIncident(ctx, wfID)
		if d.state.Status.Ended() {
			return nil
		}
	}
	var hist activities.CustomerHistory
	err := dbCall(ctx, fmt.Sprintf("Step %d · customer history", step), a.FetchCustomerHistory,
		activities.FetchHistoryInput{WorkflowID: wfID, CustomerID: f.CustomerID, InvoiceID: f.InvoiceID, Now: workflow.Now(ctx)},
	).Get(ctx, &hist)
	if err != nil {
		return err
	}
	if d.state.Status.Ended() {
		return nil
	}
	var dec recoup.Decision
	err = workflow.ExecuteActivity(withSummary(ctx, decideActivity, fmt.Sprintf("Step %d · decide channel, tone and incentive", step)), a.DecideStrategy, activities.DecideInput{
		WorkflowID: wfID, InvoiceID: f.InvoiceID, Step: step, TotalSteps: d.state.TotalSteps, History: hist,
		Excluded: slices.Clone(d.excluded), FailureCode: d.failureCode, AmountMinor: f.AmountMinor,
		Currency: f.Currency, Now: workflow.Now(ctx), Channel: d.state.NextChannel,
	}).Get(ctx, &dec)
	if err != nil {
		return err
	}
	if d.state.NextChannel != "" && dec.Channel == d.state.NextChannel {
		d.state.NextChannel = ""
	}
	d.state.Decisions = append(d.state.Decisions, dec)
	if changed(ctx, "decision-search-attributes") {
		d.upsert(ctx, PromptVersionKey.ValueSet(dec.PromptVersion), DecidedByKey.ValueSet(dec.DecidedBy))
	}
	d.updateDetails(ctx)
	d.log.Info("decided", "step", step, "channel", string(dec.Channel), "tone", dec.Tone,
		"incentive", dec.Incentive.Kind, "decided_by", dec.DecidedBy)
	if !dec.Channel.Valid() {
		return nil
	}
	if !d.waitUntil(ctx, func() time.Time { return dec.SendAt }, fmt.Sprintf("send step %d by %s", step, dec.Channel)) {
		return nil
	}
	if slices.Contains(d.excluded, dec.Channel) {
		d.state.Messages = append(d.state.Messages, recoup.MessageRecord{Step: step, Channel: dec.Channel,
			Delivery: "skipped", Error: "channel became unavailable while waiting (opt-out)", At: workflow.Now(ctx)})
		return nil
	}
	in := activities.SendInput{
		IdempotencyKey: activities.IdempotencyKey(wfID, step, dec.Channel), WorkflowID: wfID,
		InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, Step: step, Decision: dec,
		AmountMinor: f.AmountMinor, Currency: f.Currency,
	}
	if dec.Incentive.Kind != recoup.IncentiveNone {
		var offer activities.OfferResult
		err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Tell billing of the offer: "+decisionLine(dec)), a.AnnounceOffer, activities.OfferInput{
			WorkflowID: wfID, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, Step: step,
			Incentive: dec.Incentive, Now: workflow.Now(ctx),
		}).Get(ctx, &offer)
		if err != nil {
			// Billing could not be told of the offer, so the message must not promise it.
			d.log.Warn("offer could not be announced; sending without the incentive", "step", step, "error", err)
			in.Decision.Incentive = recoup.Incentive{Kind: recoup.IncentiveNone}
		} else {
			in.OfferExpiresAt = offer.ExpiresAt
			d.state.Offers = append(d.state.Offers, dec.Incentive)
		}
	}
	send, queue := a.SendEmail, recoup.EmailTaskQueue
	if dec.Channel == recoup.ChannelSMS {
		send, queue = a.SendSMS, recoup.SMSTaskQueue
	}
	opts := sendActivity
	if changed(ctx, "sends-task-queue") {
		opts.TaskQueue = queue // rate-limited per provider across all workers
	}
	var res activities.SendResult
	err = workflow.ExecuteActivity(withSummary(ctx, opts, decisionLine(in.Decision)), send, in).Get(ctx, &res)
	rec := recoup.MessageRecord{Step: step, Channel: dec.Channel, IdempotencyKey: in.IdempotencyKey,
		ProviderMessageID: res.ProviderMessageID, Delivery: res.Delivery, At: workflow.Now(ctx)}
	if err != nil {
		rec.Delivery, rec.Error = "failed", err.Error()
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && (appErr.Type() == activities.ErrTypeProviderRejected || appErr.Type() == activities.ErrTypeNotReachable) {
			d.exclude(dec.Channel) // e.g. an invalid phone number: the next steps use the other channel
		}
	}
	d.state.Messages = append(d.state.Messages, rec)
	d.upsert(ctx, LastChannelKey.ValueSet(string(dec.Channel)))
	d.updateDetails(ctx)
	return nil
}

func (d *dunning) exclude(ch recoup.Channel) {
	if !slices.Contains(d.excluded, ch) {
		d.excluded = append(d.excluded, ch)
	}
}

// waitUntil blocks until the time at() returns while the run is active, and for as long as
// it is paused (at() may move back by the pause). It returns false when the run ended.
func (d *dunning) waitUntil(ctx workflow.Context, at func() time.Time, what string) bool {
	for {
		if d.state.Status.Ended() || ctx.Err() != nil {
			return false
		}
		t := at()
		d.state.NextAction, d.state.NextActionAt = what, t
		if d.state.Status == recoup.StatusPaused {
			if err := workflow.Await(ctx, func() bool { return d.state.Status != recoup.StatusPaused }); err != nil {
				return false
			}
			continue
		}
		now := workflow.Now(ctx)
		if !now.Before(t) || d.actNowPending {
			d.actNowPending = false
			d.state.NextAction, d.state.NextActionAt = "", time.Time{}
			return true
		}
		d.updateDetails(ctx)
		if _, err := workflow.AwaitWithTimeout(ctx, t.Sub(now), func() bool {
			return d.state.Status != recoup.StatusActive || d.actNowPending
		}); err != nil {
			return false
		}
	}
}

// finish records the outcome (telling billing when exhausted) and ends the run.
func (d *dunning) finish(ctx workflow.Context, s recoup.Status, reason string) (recoup.DunningResult, error) {
	d.setStatus(ctx, s, reason)
	f := d.in.Failure
	// A disconnected context lets the outcome be recorded even when the run was canceled.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var res activities.FinishRunResult
	err := workflow.ExecuteActivity(withSummary(dctx, dbActivity, "Record the outcome: "+string(d.state.Status)), a.FinishRun, activities.FinishRunInput{
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID,
		Outcome: d.state.Status, Reason: d.state.Reason, Steps: d.state.Step, AmountMinor: f.AmountMinor,
		Currency: f.Currency, EndedAt: workflow.Now(ctx),
	}).Get(dctx, &res)
	result := recoup.DunningResult{Status: d.state.Status, Steps: d.state.Step, Reason: d.state.Reason}
	if err != nil {
		return result, fmt.Errorf("record outcome %s: %w", d.state.Status, err)
	}
	return result, nil
}
