package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/closedruns"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// The support subcommands run Updates on a real run and print its answer or its refusal.
func TestSupportCommands(t *testing.T) {
	h := workertest.Start(t, workertest.Options{})
	h.Event(workertest.Failed("evt_sup_1", "inv_sup", "cus_sup", time.Now().UTC()))
	h.Eventually("the first message", func() bool { return h.Messages("inv_sup") == 1 })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client}
	do := func(args ...string) (string, error) { return runWithDeps(d, args...) }
	if out, err := do("pause", "inv_sup", "--by", "alice", "--reason", "customer called"); err != nil || !strings.Contains(out, "status paused") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	if _, err := do("pause", "inv_sup"); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "already paused") {
		t.Fatalf("pause again: %v (exit %d), want a refusal", err, exitCode(err))
	}
	if _, err := do("set-channel", "inv_sup", "fax"); exitCode(err) != 2 {
		t.Fatalf("set-channel fax: %v", err)
	}
	if _, err := do("resolve", "inv_sup"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--note") {
		t.Fatalf("resolve without a note: %v, want a usage error", err)
	}
	if _, err := do("resolve", "inv_sup", "--note", "called"); exitCode(err) != 2 || !strings.Contains(err.Error(), "does not need attention") {
		t.Fatalf("resolve a paused run: %v, want a refusal", err)
	}
	if out, err := do("resume", "inv_sup", "--by", "alice"); err != nil || !strings.Contains(out, "status active") {
		t.Fatalf("resume: %q, %v", out, err)
	}
	if out, err := do("set-channel", "inv_sup", "sms", "--by", "bob"); err != nil || !strings.Contains(out, "sms") {
		t.Fatalf("set-channel: %q, %v", out, err)
	}
	if out, err := do("act-now", "inv_sup", "--by", "bob", "--reason", "asked for the link"); err != nil {
		t.Fatalf("act-now: %q, %v", out, err)
	}
	h.Eventually("the second message, by SMS", func() bool { return h.Messages("inv_sup") == 2 })
	st := h.State("inv_sup")
	if st.Messages[1].Channel != recoup.ChannelSMS {
		t.Fatalf("second message by %s, want sms", st.Messages[1].Channel)
	}
	if _, err := do("cancel", "inv_sup"); exitCode(err) != 2 {
		t.Fatalf("cancel without reason: %v, want a usage error", err)
	}
	if out, err := do("cancel", "inv_sup", "--reason", "refunded", "--by", "dave"); err != nil || !strings.Contains(out, "canceled") {
		t.Fatalf("cancel: %q, %v", out, err)
	}
	if res := h.Result("inv_sup"); res.Status != recoup.StatusCanceled {
		t.Fatalf("result = %+v", res)
	}
	if _, err := do("pause", "inv_nobody"); err == nil || !strings.Contains(err.Error(), "no dunning run") {
		t.Fatalf("unknown run: %v", err)
	}
	if len(st.Actions) != 4 {
		t.Fatalf("actions = %+v, want pause, resume, set-next-channel, act-now recorded", st.Actions)
	}
}

// A paused run terminated from the Web UI (which bypasses the workflow) keeps
// DunningStatus=paused for good; the worker's reconciler records that it was terminated, and
// `starter status` shows the true outcome, never a next step. While it was paused, status
// gave no time for a step that waits for the resume, and the history names its waits.
func TestTerminatedPausedRunIsRecordedAndShownAsTerminated(t *testing.T) {
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour}})
	h.Event(workertest.Failed("evt_term_1", "inv_term", "cus_term", time.Now().UTC()))
	h.Eventually("the first message", func() bool { return h.Messages("inv_term") == 1 })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client, st: h.Store}
	do := func(args ...string) (string, error) { return runWithDeps(d, args...) }
	if out, err := do("pause", "inv_term", "--by", "alice", "--reason", "customer called"); err != nil || !strings.Contains(out, "status paused") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	out, err := do("status", "inv_term")
	if err != nil || !strings.Contains(out, "step 2, once the run is resumed") {
		t.Fatalf("status of the paused run: %v\n%s", err, out)
	}
	wfID := recoup.WorkflowID("inv_term")
	if summaries := timerSummaries(t, h, wfID); !slices.Contains(summaries, "wait for step 2 (1 day)") {
		t.Errorf("timer summaries %q, want the wait for step 2 named", summaries)
	}
	ctx := context.Background()
	if err := h.Client.TerminateWorkflow(ctx, wfID, "", "cleanup from the UI"); err != nil {
		t.Fatal(err)
	}
	rec := &closedruns.Reconciler{Temporal: h.Client, Store: h.Store, Logger: slog.New(slog.DiscardHandler)}
	runID := ""
	h.Eventually("the reconciler records the terminated run", func() bool {
		if _, err := rec.Round(ctx); err != nil {
			t.Logf("round: %v", err)
			return false
		}
		desc, err := h.Client.DescribeWorkflowExecution(ctx, wfID, "")
		if err != nil {
			return false
		}
		runID = desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		_, ok, _ := h.Store.FindRunOutcome(ctx, wfID, runID)
		return ok
	})
	o, _, _ := h.Store.FindRunOutcome(ctx, wfID, runID)
	if o.Outcome != "terminated" || o.RecordedStatus != "paused" || o.Reason != "cleanup from the UI" || o.ClosedBy == "" || o.InvoiceID != "inv_term" {
		t.Fatalf("recorded outcome %+v, want terminated (was paused) with who and why", o)
	}
	if n, err := rec.Round(ctx); err != nil || n != 0 {
		t.Fatalf("a second round recorded %d runs (%v), want none: the outcome is recorded once", n, err)
	}
	var episode, note string
	var closedAt time.Time
	if err := h.Store.Pool().QueryRow(ctx, `SELECT status, close_note, closed_at FROM invoice_runs WHERE invoice_id = 'inv_term'`).
		Scan(&episode, &note, &closedAt); err != nil || episode != "closed" || !closedAt.Equal(o.ClosedAt) || !strings.Contains(note, "terminated") {
		t.Fatalf("the invoice's run in PostgreSQL: %s %q at %v (%v), want closed as terminated at %v", episode, note, closedAt, err, o.ClosedAt)
	}
	out, err = do("status", "inv_term")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"terminated by " + o.ClosedBy, "cleanup from the UI", "recorded itself paused", "recorded in PostgreSQL"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "next") {
		t.Errorf("status of a closed run shows a next step:\n%s", out)
	}
	t.Logf("status of the terminated run:\n%s", out)
	out, err = do("status", "--json", "inv_term")
	var js struct {
		recoup.State
		Closed struct{ Outcome string } `json:"closed"`
	}
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || js.Closed.Outcome != "terminated" || js.NextAction != "" || strings.Contains(out, "0001-01-01") {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
}

// The Web UI's Cancel button (a workflow cancellation request) goes through the workflow: a
// paused run records canceled itself, in DunningStatus too, and the reconciler finds nothing
// to correct.
func TestTemporalCancelOfAPausedRunRecordsCanceled(t *testing.T) {
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour}})
	h.Event(workertest.Failed("evt_cxl_1", "inv_cxl", "cus_cxl", time.Now().UTC()))
	h.Eventually("the first message", func() bool { return h.Messages("inv_cxl") == 1 })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client, st: h.Store}
	if out, err := runWithDeps(d, "pause", "inv_cxl", "--by", "alice"); err != nil || !strings.Contains(out, "status paused") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	ctx := context.Background()
	if err := h.Client.CancelWorkflow(ctx, recoup.WorkflowID("inv_cxl"), ""); err != nil {
		t.Fatal(err)
	}
	if res := h.Result("inv_cxl"); res.Status != recoup.StatusCanceled {
		t.Fatalf("result %+v, want canceled", res)
	}
	h.Eventually("DunningStatus = canceled in the list", func() bool {
		resp, err := h.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "InvoiceId = 'inv_cxl' AND DunningStatus = 'canceled'"})
		return err == nil && len(resp.Executions) == 1
	})
	rec := &closedruns.Reconciler{Temporal: h.Client, Store: h.Store, Logger: slog.New(slog.DiscardHandler)}
	if n, err := rec.Round(ctx); err != nil || n != 0 {
		t.Fatalf("the reconciler recorded %d runs (%v), want none: the run's status is true", n, err)
	}
	out, err := runWithDeps(d, "status", "inv_cxl")
	if err != nil || !strings.Contains(out, "canceled") || strings.Contains(out, "next") || strings.Contains(out, "closed outside") {
		t.Fatalf("status: %v\n%s", err, out)
	}
}

// timerSummaries are the summaries of a run's timers, as the Web UI's history shows them.
func timerSummaries(t *testing.T, h *workertest.Harness, wfID string) []string {
	t.Helper()
	it := h.Client.GetWorkflowHistory(context.Background(), wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() != enumspb.EVENT_TYPE_TIMER_STARTED {
			continue
		}
		var s string
		if p := ev.GetUserMetadata().GetSummary(); p != nil {
			_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
		}
		out = append(out, s)
	}
	return out
}
