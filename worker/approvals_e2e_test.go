package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// A message the approval policy holds is findable by DunningStatus = "awaiting_approval",
// leaves exactly once after support edits it within the guardrails, and the next step's
// message, held too, is sent nothing once support rejects it.
func TestHeldMessageEditedThenSentOnceAndNextRejected(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 5 * time.Second}, FinalWait: 2 * time.Second,
		Configure: func(a *activities.Activities) { workertest.HoldForApproval(t, a, "pro") }})
	now := time.Now().UTC()
	e.Event(workertest.Failed("evt_apr_e2e", "inv_apr_e2e", "cus_apr_e2e", now))
	ctx := context.Background()
	e.Eventually("the held run in a DunningStatus list filter", func() bool {
		resp, err := e.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "CustomerId = 'cus_apr_e2e' AND DunningStatus = 'awaiting_approval'"})
		return err == nil && len(resp.Executions) == 1
	})
	update := func(name string, arg any) (recoup.ActionResult, error) {
		h, err := e.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: recoup.WorkflowID("inv_apr_e2e"),
			UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
		var res recoup.ActionResult
		if err == nil {
			err = h.Get(ctx, &res)
		}
		return res, err
	}
	if _, err := update(recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Message: "Please call our lawyer"}); err == nil || !strings.Contains(err.Error(), "threatens") {
		t.Fatalf("edit with a threat: %v, want the guardrails' refusal", err)
	}
	if _, err := update(recoup.UpdateEdit, recoup.ApprovalEdit{By: "bob", Reason: "loyal customer", Tone: "firm",
		Incentive: &recoup.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7}}); err != nil {
		t.Fatalf("edit within the guardrails: %v", err)
	}
	key := recoup.WorkflowID("inv_apr_e2e") + "/step-1/email"
	e.Eventually("the edited message", func() bool { return e.Mail.Accepted(key) == 1 })
	e.Eventually("step 2 held", func() bool {
		st := e.State("inv_apr_e2e")
		return st.Approval != nil && st.Approval.Step == 2
	})
	if _, err := update(recoup.UpdateReject, recoup.Approval{By: "alice", Reason: "one message is enough"}); err != nil {
		t.Fatalf("reject: %v", err)
	}
	if res := e.Result("inv_apr_e2e"); res.Status != recoup.StatusExhausted {
		t.Fatalf("result = %+v, want exhausted", res)
	}
	st := e.State("inv_apr_e2e")
	if e.Mail.Accepted(key) != 1 || len(st.Approvals) != 2 || st.Approvals[0].Outcome != "edited" || st.Approvals[1].Outcome != "rejected" {
		t.Fatalf("accepted %d, approvals %+v: want step 1 edited and sent once, step 2 rejected", e.Mail.Accepted(key), st.Approvals)
	}
	if n := e.Messages("inv_apr_e2e"); n != 2 || st.Messages[1].Delivery != "skipped" {
		t.Fatalf("messages = %+v, want step 1 sent and step 2 skipped", st.Messages)
	}
	e.Record("inv_apr_e2e", "approvals_edited_rejected")
}
