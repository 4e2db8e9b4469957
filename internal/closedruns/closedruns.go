// Package closedruns finds dunning runs that Temporal closed without the workflow recording
// their end — terminated from the Web UI or the CLI, reset (which terminates the old run),
// timed out by a workflow run timeout, failed — and records their true outcome in
// PostgreSQL (run_outcomes). Their search attribute DunningStatus keeps what the run last
// said of itself (paused, active, …) and cannot be changed after the close; `starter status`
// reads the true outcome from here and from the close event.
//
// The worker runs Reconciler.Run in a goroutine beside its pollers rather than as a
// workflow: each round is an idempotent scan (Temporal's visibility, one close event per
// run found, an insert that ignores duplicates) with no state worth making durable, so a
// workflow would only add history, a schedule to manage and determinism rules around I/O.
// Every worker replica may run it; two replicas recording the same run record it once.
package closedruns

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// Every is how often the worker looks for closed runs whose status disagrees with their
// outcome.
const Every = time.Minute

// lag is how far before the previous round's start a round looks again. Visibility is
// eventually consistent, and its queue backs up exactly when runs are terminated in bulk, so
// the window is wide: a run already recorded costs one PostgreSQL lookup per round while it
// stays in the window.
const lag = 24 * time.Hour

// Query is the visibility query for closed dunning runs the workflow did not end itself:
// every terminated or timed-out run whatever its DunningStatus (a run terminated while it
// retried recording its outcome already says exhausted or recovered, yet billing was never
// told and its episode is open), and any other closed run whose DunningStatus is not an end
// (recoup.Status.Ended), so a status added later is covered too.
var Query = fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus != 'Running' AND ExecutionStatus != 'ContinuedAsNew' AND "+
	"(ExecutionStatus = 'Terminated' OR ExecutionStatus = 'TimedOut' OR %s NOT IN ('%s', '%s', '%s', '%s'))",
	recoup.WorkflowType, recoup.SearchAttrDunningStatus,
	recoup.StatusRecovered, recoup.StatusExhausted, recoup.StatusCanceled, recoup.StatusFailed)

// Reconciler records the true outcome of closed runs.
type Reconciler struct {
	Temporal client.Client
	Store    *postgres.Store
	Logger   *slog.Logger
	since    time.Time // the previous round's start minus lag; zero: look at every closed run
}

// Run runs a round every interval until ctx ends; a failed round is logged and the next one
// tries again.
func (r *Reconciler) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := r.Round(ctx); err != nil && ctx.Err() == nil {
			r.Logger.Error("could not reconcile closed runs; trying again next round", "error", err)
		} else if n > 0 {
			r.Logger.Warn("closed runs whose status disagreed with their outcome recorded (terminated, reset or timed out outside the workflow)", "runs", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round records the outcome of every closed run the query finds and has not recorded yet,
// and says how many it recorded.
func (r *Reconciler) Round(ctx context.Context) (int, error) {
	start := time.Now().UTC()
	q := Query
	if !r.since.IsZero() {
		q += " AND CloseTime > '" + r.since.Format(time.RFC3339) + "'"
	}
	n := 0
	var token []byte
	for {
		resp, err := r.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 100, NextPageToken: token})
		if err != nil {
			return n, fmt.Errorf("list closed runs: %w", err)
		}
		for _, ex := range resp.Executions {
			recorded, err := r.record(ctx, ex)
			if err != nil {
				return n, err
			}
			if recorded {
				n++
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	r.since = start.Add(-lag)
	return n, nil
}

func (r *Reconciler) record(ctx context.Context, ex *workflowpb.WorkflowExecutionInfo) (bool, error) {
	wfID, runID := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
	if done, err := r.Store.HasRunOutcome(ctx, wfID, runID); err != nil || done {
		return false, err
	}
	o, err := CloseOutcome(ctx, r.Temporal, wfID, runID)
	if err != nil {
		return false, err
	}
	o.RecordedStatus = dunningStatus(ex)
	if !o.WorkflowGoesOn {
		o.FirstRunID = ex.GetFirstRunId()
		if o.FirstRunID == "" {
			o.FirstRunID = runID
		}
	}
	recorded, err := r.Store.RecordRunOutcome(ctx, o.RunOutcome)
	if recorded {
		// Not who closed it: a client's identity may be a person's email (a signed-in Web UI
		// user). It is in run_outcomes and `starter status`.
		r.Logger.Warn("a dunning run was closed outside the workflow; its outcome is recorded", "workflow_id", wfID,
			"run_id", runID, "outcome", o.Outcome, "recorded_status", o.RecordedStatus)
	}
	return recorded, err
}

// dunningStatus is the run's DunningStatus search attribute ("" when absent).
func dunningStatus(ex *workflowpb.WorkflowExecutionInfo) string {
	p := ex.GetSearchAttributes().GetIndexedFields()[recoup.SearchAttrDunningStatus]
	var s string
	if p == nil || converter.GetDefaultDataConverter().FromPayload(p, &s) != nil {
		return ""
	}
	return s
}

// Outcome is how a run closed; WorkflowGoesOn: a reset closed it and the workflow goes on in
// a new run (its episode stays open).
type Outcome struct {
	postgres.RunOutcome
	WorkflowGoesOn bool
}

// CloseOutcome reads a closed run's close event: how it ended, who closed it and why.
// RecordedStatus is left empty.
func CloseOutcome(ctx context.Context, tc client.Client, workflowID, runID string) (Outcome, error) {
	o := Outcome{RunOutcome: postgres.RunOutcome{WorkflowID: workflowID, RunID: runID}}
	o.InvoiceID, _ = recoup.InvoiceIDFromWorkflowID(workflowID)
	it := tc.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	var ev *historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return o, fmt.Errorf("read how %s (run %s) closed: %w", workflowID, runID, err)
		}
		ev = e
	}
	if ev == nil {
		return o, fmt.Errorf("%s (run %s) has no close event: it is still running", workflowID, runID)
	}
	o.ClosedAt = ev.GetEventTime().AsTime()
	describe(&o, ev)
	return o, nil
}

// resetterIdentity is the identity the Temporal server terminates a run with when a reset
// replaces it (go.temporal.io/server service/history/consts.IdentityResetter).
const resetterIdentity = "history-resetter"

// describe fills the outcome, who and why from a close event.
func describe(o *Outcome, ev *historypb.HistoryEvent) {
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		a := ev.GetWorkflowExecutionTerminatedEventAttributes()
		o.Outcome, o.ClosedBy, o.Reason = "terminated", a.GetIdentity(), a.GetReason()
		if a.GetIdentity() == resetterIdentity {
			// A reset terminates the run it replaces as the server's resetter, with the
			// reason given to the reset; the workflow goes on in the new run.
			o.WorkflowGoesOn = true
			o.Reason = strings.TrimSpace("reset: " + a.GetReason() + " (the workflow goes on in a new run)")
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		o.Outcome, o.Reason = "timed_out", "the workflow run timeout passed"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		o.Outcome, o.Reason = "failed", ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetMessage()
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		o.Outcome, o.Reason = "canceled", "canceled through Temporal"
	default:
		o.Outcome, o.Reason = "completed", "completed without its final status reaching DunningStatus"
	}
}
