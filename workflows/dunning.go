// Package workflows holds DunningWorkflow: the deterministic orchestration of one failed
// invoice's dunning run. It does no I/O and imports no adapter; every side effect is an
// activity from package activities.
package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// FinalWait is how long a run waits for a retry outcome after its last step before it is
// exhausted, unless PlanRun says otherwise.
const FinalWait = 72 * time.Hour

// Activity options. Every activity has explicit timeouts and a retry policy; errors that
// retrying cannot fix come back as non-retryable application errors.
var (
	// Every activity is idempotent, so none has a schedule-to-close limit: an outage of any
	// length (PostgreSQL, billing's webhook, a provider) delays the run and never fails it
	// (invariant I7). While they fail, the SDK's activity-failure metrics and the activities'
	// own error metrics alert; a settle, cancel or pause stops the wait (see stoppable).
	//
	// Each has a heartbeat timeout (livenessTimeout): the worker heartbeats every activity
	// while it runs (activities.KeepAlive), so the next attempt of an activity whose worker
	// died starts within seconds on a live worker instead of after its start-to-close
	// timeout, which still bounds an attempt that hangs.
	dbActivity = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		HeartbeatTimeout:    livenessTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	}
	decideActivity = workflow.ActivityOptions{
		StartToCloseTimeout: 90 * time.Second,
		HeartbeatTimeout:    livenessTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	}
	// A send's next attempt after its worker died finds the reservation and marks the
	// message for reconciliation without calling the provider (activities/send.go).
	sendActivity = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    livenessTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		},
	}
)

// livenessTimeout is the heartbeat timeout of the runs' activities: how long after the last
// heartbeat of a worker that died the server times its attempt out and schedules the next.
// Changing an activity's options changes no command a workflow emits (replay matches an
// activity by its id and type only), so it needs no GetVersion; an activity already scheduled
// keeps the options it was scheduled with.
const livenessTimeout = 5 * time.Second

// a is used only for typed method values; the worker registers the real struct.
var a *activities.DunningActivities

// detectorActs is used only for typed method values of the detector's activities.
var detectorActs *activities.DetectorActivities

// waitKind is what a run is waiting for; support's act-now ends only some of them.
type waitKind string

const (
	waitNone  waitKind = ""
	waitStep  waitKind = "step"  // the schedule's next step: act-now ends it
	waitHold  waitKind = "hold"  // a failure-spike hold: act-now ends it
	waitFinal waitKind = "final" // the wait for a retry outcome after the last step: act-now ends it
	waitHours waitKind = "hours" // the customer's allowed hours: nobody overrides them
	waitRetry waitKind = "retry" // before trying a step that could not complete again: act-now ends it
	// waitEvidence: the reconcile window of a send whose outcome is unknown; nobody ends it
	// early (resending before the provider's events could name the message may duplicate it).
	waitEvidence waitKind = "evidence"
)

// stepRetryInterval is how long a run waits before trying a step that could not complete.
const stepRetryInterval = time.Hour

// actNowEnds reports whether act-now may end a wait of kind k.
func (k waitKind) actNowEnds() bool {
	return k == waitStep || k == waitHold || k == waitFinal || k == waitRetry
}

// maxSeen bounds the event ids a run remembers (and carries across continue-as-new); the
// relay redelivers recent events, never thousands back.
const maxSeen = 5000

// maxSignalRecords bounds the signal records kept in the state (the oldest are counted in
// State.SignalsOmitted).
const maxSignalRecords = 200

type dunning struct {
	in     recoup.DunningInput
	state  recoup.State
	wfID   string // the workflow ID: what the detector and support signal
	runKey string // recoup.RunKey: what PostgreSQL and idempotency keys know the run by
	// settleAnyTime: a settling event (recovered, retry success, cancel) applies whatever
	// its occurred_at; only failures can be stale (change "settle-any-time").
	settleAnyTime bool
	// lean: the run takes "lean-run" (fewer billable Actions; localreads.go); deferred are
	// search attributes kept for its next upsert.
	lean     bool
	deferred []temporal.SearchAttributeUpdate
	// expected: LastChannel was set with the step's decision (expectChannel); the value
	// before it, until the step's send is recorded.
	expected    *string
	seen        map[string]bool  // event ids of signals already received
	seenOrder   []string         // the same ids, oldest first (bounded by maxSeen)
	excluded    []recoup.Channel // opted out or undeliverable for the rest of the run
	failureCode string           // of the newest applied failure
	pausedAt    time.Time        // when the current pause began
	pausedFor   time.Duration    // total time paused so far: later steps move back by it
	waiting     waitKind         // what the run waits for right now
	// actNowPending ends the current wait (support's act-now); set only while waiting.
	actNowPending bool
	holdReleased  bool // the detector (or support) released the failure-spike hold
	schedule      []time.Duration
	finalWait     time.Duration
	nextStep      int // 0-based index of the next step of the schedule
	exhaustAt     time.Time
	exhaustPaused time.Duration
	signalChans   []workflow.ReceiveChannel
	// pendingReplies are replies received and not yet handled (replies.go); pauseGen counts
	// changes of a pause, so that a wait while paused notices a new one.
	pendingReplies []recoup.Reply
	pauseGen       int
	support        supportActions
	// history is the customer's history of the current step (an edit of a held message is
	// checked with it); approval is support's answer to the held message (approvals.go),
	// pending while an edit is checked.
	history  activities.CustomerHistory
	approval *approvalAnswer
	log      log.Logger
}

// DunningWorkflow runs the dunning schedule of one failed invoice until it is recovered,
// exhausted or canceled. Its ID is recoup.WorkflowID(invoice id).
func DunningWorkflow(ctx workflow.Context, in recoup.DunningInput) (recoup.DunningResult, error) {
	d := newDunning(in)
	if err := d.setup(ctx); err != nil {
		return recoup.DunningResult{Status: recoup.StatusFailed, Reason: err.Error()}, err
	}
	return d.run(ctx)
}

func newDunning(in recoup.DunningInput) *dunning {
	d := &dunning{in: in, seen: map[string]bool{}}
	d.support = d.supportActions()
	return d
}

// setup validates the input, takes over the state of a run continued as new (or starts
// one), registers the query and the support actions' Updates, sets the search attributes
// and starts applying the signals.
func (d *dunning) setup(ctx workflow.Context) error {
	f := d.in.Failure
	switch {
	case f.InvoiceID == "":
		return temporal.NewNonRetryableApplicationError("input: failure.invoice_id is required", recoup.ErrTypeInvalidInput, nil)
	case f.CustomerID == "":
		return temporal.NewNonRetryableApplicationError("input: failure.customer_id is required", recoup.ErrTypeInvalidInput, nil)
	}
	d.wfID = workflow.GetInfo(ctx).WorkflowExecution.ID
	d.runKey = recoup.RunKey(d.wfID, d.in.Episode)
	d.log = log.With(workflow.GetLogger(ctx), "invoice_id", f.InvoiceID, "customer_id", f.CustomerID)
	if c := d.in.Continued; c != nil {
		d.restore(c)
	} else {
		d.state = recoup.State{
			InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, AmountMinor: f.AmountMinor, Currency: f.Currency,
			Status: recoup.StatusActive, StartedAt: workflow.Now(ctx), Failures: 1,
			LastApplied: clampFuture(f.OccurredAt, workflow.Now(ctx)),
		}
		d.remember(f.EventID)
		d.failureCode = f.FailureCode
		d.recordAttempt(recoup.RetryAttempt{EventID: f.EventID, At: d.state.LastApplied, Code: f.FailureCode, AdviceCode: f.AdviceCode})
	}
	d.lean = leanRun(ctx) // before any other command
	d.settleAnyTime = d.in.Continued != nil || version(ctx, ChangeSettleAnyTime, 1) >= 1
	if err := setQuery(ctx, recoup.QueryStatus, func() (recoup.State, error) { return d.state, nil }); err != nil {
		return err
	}
	if err := d.registerUpdates(ctx); err != nil {
		return err
	}
	if d.in.Continued == nil && !(d.lean && startedWithAttributes(ctx)) {
		d.upsert(ctx, recoup.CustomerIDKey.ValueSet(f.CustomerID), recoup.InvoiceIDKey.ValueSet(f.InvoiceID),
			recoup.DunningStatusKey.ValueSet(string(d.state.Status)), recoup.DunningStepKey.ValueSet(0))
	}
	d.startSignals(ctx)
	d.startReplies(ctx)
	d.startRetryAdvice(ctx)
	d.updateDetails(ctx)
	return nil
}

// remember records an event id as seen (bounded).
func (d *dunning) remember(id string) {
	if id == "" || d.seen[id] {
		return
	}
	d.seen[id] = true
	d.seenOrder = append(d.seenOrder, id)
	if len(d.seenOrder) > maxSeen {
		delete(d.seen, d.seenOrder[0])
		d.seenOrder = d.seenOrder[1:]
	}
}

// startedWithAttributes reports whether the run was started with its search attributes (the
// ingest's SignalWithStart sets them; a start without them gets them from setup's upsert).
func startedWithAttributes(ctx workflow.Context) bool {
	_, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(recoup.InvoiceIDKey)
	return ok
}

// upsert sets search attributes in one command, together with any the run deferred
// (deferUpsert); of two values of one key the later wins (the SDK applies them in order).
func (d *dunning) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if len(d.deferred) > 0 {
		updates = append(d.deferred, updates...)
		d.deferred = nil
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		d.log.Warn("could not update search attributes", "error", err)
	}
}

// deferUpsert keeps search attributes for the run's next upsert (one command, one billable
// Action, instead of two); flushUpsert sets them now if no upsert took them yet.
func (d *dunning) deferUpsert(updates ...temporal.SearchAttributeUpdate) {
	d.deferred = append(d.deferred, updates...)
}

func (d *dunning) flushUpsert(ctx workflow.Context) {
	if len(d.deferred) > 0 {
		d.upsert(ctx)
	}
}

func (d *dunning) setStatus(ctx workflow.Context, s recoup.Status, reason string) {
	d.changeStatus(ctx, s, reason, false)
}

// changeStatus sets the run's status; with later, its search attribute goes in the run's
// next upsert (deferUpsert), for a status the run changes just before it upserts anyway.
func (d *dunning) changeStatus(ctx workflow.Context, s recoup.Status, reason string, later bool) {
	if d.state.Status == s || d.state.Status.Ended() {
		return
	}
	d.state.Status = s
	d.state.Reason = reason
	if s.Ended() {
		d.state.NextAction, d.state.NextActionAt = "", time.Time{}
	}
	if later {
		d.deferUpsert(recoup.DunningStatusKey.ValueSet(string(s)))
	} else {
		d.upsert(ctx, recoup.DunningStatusKey.ValueSet(string(s)))
	}
	d.log.Info("dunning status changed", "status", string(s), "reason", reason)
	d.updateDetails(ctx)
}

// updateDetails keeps the run's current details (shown in the Web UI, which shows three
// lines) up to date with detailLines.
func (d *dunning) updateDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, strings.Join(detailLinesAt(d.state, workflow.Now(ctx)), "\n\n"))
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
	switch dec.DecidedBy {
	case recoup.DecidedByLLM:
		by = "LLM"
	case recoup.DecidedBySupport:
		by = "support"
	}
	line := fmt.Sprintf("%s · %s · %s · decided by %s", ch, dec.Tone, inc, by)
	if dec.DeclineClass != "" {
		line += " · decline " + string(dec.DeclineClass)
	}
	return line
}

// withSummary returns ctx with activity options carrying a one-line summary for the UI.
func withSummary(ctx workflow.Context, opts workflow.ActivityOptions, summary string) workflow.Context {
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}

// run carries out the schedule's steps, then waits for a retry outcome until the run is
// exhausted, unless it ends first (recovered, canceled) or continues as new.
func (d *dunning) run(ctx workflow.Context) (recoup.DunningResult, error) {
	if d.in.Continued == nil {
		if err := d.plan(ctx); err != nil {
			return d.finish(ctx, recoup.StatusFailed, "could not plan the run: "+err.Error())
		}
	}
	for ; d.nextStep < len(d.schedule); d.nextStep++ {
		if res, done, err := d.scheduledStep(ctx); done {
			return res, err
		}
	}
	if d.awaitOutcome(ctx) == waitContinueAsNew {
		return d.continueAsNew(ctx)
	}
	return d.end(ctx)
}

// plan records the run in PostgreSQL and takes its schedule (PlanRun).
func (d *dunning) plan(ctx workflow.Context) error {
	f := d.in.Failure
	var plan activities.PlanRunResult
	err := dbCall(ctx, "Plan the run", a.PlanRun, activities.PlanRunInput{
		WorkflowID: d.runKey, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID, StartedAt: d.state.StartedAt,
	}).Get(ctx, &plan)
	if err != nil {
		return err
	}
	d.schedule, d.finalWait = plan.Schedule, plan.FinalWait
	if d.finalWait <= 0 {
		d.finalWait = FinalWait
	}
	d.state.TotalSteps = len(d.schedule)
	return nil
}

// scheduledStep waits for the schedule's next step and carries it out; done when the run
// ends or continues as new instead.
func (d *dunning) scheduledStep(ctx workflow.Context) (res recoup.DunningResult, done bool, err error) {
	step := d.nextStep + 1
	offset := d.schedule[d.nextStep]
	stepAt := func() time.Time { return d.state.StartedAt.Add(offset + d.pausedFor) }
	switch d.waitUntil(ctx, stepAt, fmt.Sprintf("step %d", step), waitStep) {
	case waitContinueAsNew:
		res, err := d.continueAsNew(ctx)
		return res, true, err
	case waitEnded:
		res, err := d.end(ctx)
		return res, true, err
	}
	d.state.Step = step
	if d.lean {
		// Set with the step's decision or the run's next status change (runStep flushes it).
		d.deferUpsert(recoup.DunningStepKey.ValueSet(int64(step)))
	} else {
		d.upsert(ctx, recoup.DunningStepKey.ValueSet(int64(step)))
	}
	return d.carryOut(ctx, step, stepAt)
}

// carryOut runs a step until it completes. A step that could not complete (a dependency
// failed past its retries, or answered with an error retrying cannot fix) is tried again
// later, never skipped (I7); an unknown customer fails the run (done).
func (d *dunning) carryOut(ctx workflow.Context, step int, stepAt func() time.Time) (res recoup.DunningResult, done bool, err error) {
	for attempt := 1; ; attempt++ {
		err := d.runStep(ctx, step, stepAt())
		if err == nil || d.state.Status.Ended() || ctx.Err() != nil {
			return res, false, nil
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == recoup.ErrTypeUnknownCustomer {
			res, _ := d.finish(ctx, recoup.StatusFailed, appErr.Message())
			return res, true, temporal.NewNonRetryableApplicationError(appErr.Message(), recoup.ErrTypeUnknownCustomer, nil)
		}
		d.log.Error("step could not complete; trying it again in an hour", "step", step, "attempt", attempt, "error", err)
		retryAt := workflow.Now(ctx).Add(stepRetryInterval)
		if d.waitUntil(ctx, func() time.Time { return retryAt }, fmt.Sprintf("try step %d again", step), waitRetry) != waitDone {
			return res, false, nil
		}
	}
}

// awaitOutcome waits, after the last step, for a retry outcome until FinalWait has passed
// (moved back by pauses).
func (d *dunning) awaitOutcome(ctx workflow.Context) waitResult {
	if d.state.Status.Ended() || ctx.Err() != nil {
		return waitEnded
	}
	if d.exhaustAt.IsZero() {
		d.exhaustAt, d.exhaustPaused = workflow.Now(ctx).Add(d.finalWait), d.pausedFor
	}
	at := func() time.Time { return d.exhaustAt.Add(d.pausedFor - d.exhaustPaused) }
	return d.waitUntil(ctx, at, "exhaust if still unpaid", waitFinal)
}

// end settles the run's final status and records it.
func (d *dunning) end(ctx workflow.Context) (recoup.DunningResult, error) {
	d.applyPendingSignals(ctx) // a settle delivered with the final timer decides the outcome
	if ctx.Err() != nil {
		d.setStatus(ctx, recoup.StatusCanceled, "workflow canceled through Temporal")
	}
	if !d.state.Status.Ended() {
		d.setStatus(ctx, recoup.StatusExhausted, fmt.Sprintf("no recovery after %d steps", d.state.Step))
	}
	return d.finish(ctx, d.state.Status, d.state.Reason)
}

// finish records the outcome (telling billing when exhausted) and ends the run. FinishRun
// retries until PostgreSQL and billing's webhook answer; only a definite rejection (a 4xx
// from the webhook) is given up on, and then the run still completes with its outcome.
func (d *dunning) finish(ctx workflow.Context, s recoup.Status, reason string) (recoup.DunningResult, error) {
	d.setStatus(ctx, s, reason)
	f := d.in.Failure
	// A disconnected context lets the outcome be recorded even when the run was canceled.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var res activities.FinishRunResult
	in := activities.FinishRunInput{
		WorkflowID: d.runKey, InvoiceID: f.InvoiceID, CustomerID: f.CustomerID,
		Outcome: d.state.Status, Reason: d.state.Reason, Steps: d.state.Step, AmountMinor: f.AmountMinor,
		Currency: f.Currency, EndedAt: workflow.Now(ctx),
	}
	var err error
	for {
		err = workflow.ExecuteActivity(withSummary(dctx, dbActivity, "Record the outcome: "+string(d.state.Status)), a.FinishRun, in).Get(dctx, &res)
		if by, ok := settledBy(err); ok && d.state.Status == recoup.StatusExhausted {
			// Billing reported the invoice settled before the outcome was recorded (its
			// event had not reached the run): the run ends with it, billing is not told
			// "exhausted".
			d.state.Status = recoup.StatusActive
			d.applySettledBy(ctx, by)
			in.Outcome, in.Reason = d.state.Status, d.state.Reason
			continue
		}
		var appErr *temporal.ApplicationError
		if err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
			break
		}
		// Retries ran out (a worker configured with a limit): billing must still learn the
		// outcome once it is reachable, so try again in an hour.
		d.log.Error("the outcome could not be recorded yet; trying again in an hour", "error", err)
		_ = workflow.NewTimerWithOptions(dctx, stepRetryInterval, workflow.TimerOptions{Summary: "record the outcome again (1h)"}).Get(dctx, nil)
	}
	result := recoup.DunningResult{Status: d.state.Status, Steps: d.state.Step, Reason: d.state.Reason}
	if err != nil {
		d.log.Error("the outcome could not be recorded or announced; the run ends with it anyway", "status", string(d.state.Status), "error", err)
		result.Reason = strings.TrimPrefix(result.Reason+"; ", "; ") + "outcome not recorded: " + err.Error()
	}
	return result, nil
}
