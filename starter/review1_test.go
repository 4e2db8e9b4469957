package main

// Hostile-review tests (branch review1) of the closed-runs reconciler, on a real dev server
// and PostgreSQL.

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/closedruns"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// rv1ClosedRun starts a DunningWorkflow run that no worker picks up, with the given
// DunningStatus and an open episode in invoice_runs, and terminates it as identity with
// reason; it returns the run id once visibility lists the run as terminated.
func rv1ClosedRun(t *testing.T, h *workertest.Harness, invoiceID, status, identity, reason string) string {
	t.Helper()
	ctx := context.Background()
	wfID := recoup.WorkflowID(invoiceID)
	run, err := h.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: "review1-nobody",
		TypedSearchAttributes: temporal.NewSearchAttributes(recoup.DunningStatusKey.ValueSet(status), recoup.InvoiceIDKey.ValueSet(invoiceID))},
		recoup.WorkflowType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.Pool().Exec(ctx, `INSERT INTO invoice_runs (invoice_id, episode, run_key, status, opened_at, run_id)
		VALUES ($1, 1, $2, 'open', now() - interval '1 day', $3)`, invoiceID, wfID, run.GetRunID()); err != nil {
		t.Fatal(err)
	}
	as, err := client.NewClientFromExisting(h.Client, client.Options{Identity: identity})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.TerminateWorkflow(ctx, wfID, run.GetRunID(), reason); err != nil {
		t.Fatal(err)
	}
	h.Eventually("visibility lists "+wfID+" as terminated", func() bool {
		resp, err := h.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowId = '" + wfID + "' AND ExecutionStatus = 'Terminated'"})
		return err == nil && len(resp.Executions) == 1
	})
	return run.GetRunID()
}

func TestReview1_Reconciler(t *testing.T) {
	h := workertest.Start(t, workertest.Options{NoWorker: true})
	ctx := context.Background()
	var logs bytes.Buffer
	rec := &closedruns.Reconciler{Temporal: h.Client, Store: h.Store, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}

	// 1. The run set DunningStatus=exhausted, then FinishRun retried for hours (billing's
	// webhook down: "trying again in an hour"); ops terminated the stuck run. Billing was
	// never told, the episode was never closed — yet the reconciler's query skips the run
	// because its DunningStatus is an ended one: run_outcomes never records it and its
	// invoice_runs episode stays open (only `starter status`, reading the close event, knows).
	exhaustedRun := rv1ClosedRun(t, h, "inv_rv1_exh", string(recoup.StatusExhausted), "temporal-cli:ops@host", "stuck recording its outcome")
	// 2. A paused run terminated from the Web UI by a signed-in user: the Web UI's identity
	// is the user's email.
	rv1ClosedRun(t, h, "inv_rv1_pii", string(recoup.StatusPaused), "alice.smith@example.com", "cleanup")

	if _, err := rec.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := h.Store.FindRunOutcome(ctx, recoup.WorkflowID("inv_rv1_exh"), exhaustedRun); err != nil || !ok {
		t.Errorf("a run terminated while recording its outcome (DunningStatus exhausted) is not recorded (%v): "+
			"run_outcomes lacks it although billing was never told and the run was terminated", err)
	}
	var episode string
	if err := h.Store.Pool().QueryRow(ctx, `SELECT status FROM invoice_runs WHERE invoice_id = 'inv_rv1_exh'`).Scan(&episode); err != nil || episode != "open" {
		t.Logf("episode %s (%v)", episode, err)
	} else {
		t.Errorf("the terminated run's episode in invoice_runs stays open")
	}
	if strings.Contains(logs.String(), "@example.com") {
		t.Errorf("the reconciler logs an email address (the terminating user's identity):\n%s", logs.String())
	}
}
