package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// The approvals subcommands list the runs holding a message and answer one through the
// run's Updates; a refusal (an edit beyond the plan's caps, a run not holding anything, a
// run that ended) is exit status 2 with the reason.
func TestApprovalsCommands(t *testing.T) {
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Hour},
		Configure: func(a *activities.Activities) { workertest.HoldForApproval(t, a, "pro") }})
	h.Event(workertest.Failed("evt_apr_1", "inv_apr", "cus_apr", time.Now().UTC()))
	h.Eventually("the first message held", func() bool { return h.State("inv_apr").Status == recoup.StatusAwaitingApproval })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client}
	do := func(args ...string) (string, error) { return runWithDeps(d, args...) }
	h.Eventually("the run listed as awaiting approval", func() bool {
		out, err := do("approvals")
		return err == nil && strings.Contains(out, "inv_apr") && strings.Contains(out, "plan pro")
	})
	if _, err := do("approvals", "reject", "inv_apr", "--by", "alice"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("reject without a reason: %v, want a usage error", err)
	}
	if _, err := do("approvals", "edit", "inv_apr", "--incentive", "discount:x"); exitCode(err) != 2 || !strings.Contains(err.Error(), "whole number") {
		t.Fatalf("edit with a malformed incentive: %v", err)
	}
	if _, err := do("approvals", "edit", "inv_apr", "--by", "bob", "--incentive", "discount:50"); exitCode(err) != 2 || !strings.Contains(err.Error(), "outside 1..10%") {
		t.Fatalf("edit beyond the plan's cap: %v, want the run's refusal", err)
	}
	if h.Messages("inv_apr") != 0 {
		t.Fatal("a message left while it was held")
	}
	out, err := do("approvals", "edit", "inv_apr", "--by", "bob", "--reason", "long-standing customer", "--incentive", "extension:7", "--tone", "firm")
	if err != nil || !strings.Contains(out, "edited") || !strings.Contains(out, "7 more days") {
		t.Fatalf("edit: %q, %v", out, err)
	}
	h.Eventually("the edited message sent", func() bool { return h.Messages("inv_apr") == 1 })
	if _, err := do("approvals", "approve", "inv_apr", "--by", "alice"); exitCode(err) != 2 || !strings.Contains(err.Error(), "not awaiting approval") {
		if h.State("inv_apr").Status != recoup.StatusAwaitingApproval { // step 2 may already hold its message
			t.Fatalf("approve with nothing held: %v, want a refusal", err)
		}
	}
	if _, err := do("cancel", "inv_apr", "--reason", "test over", "--by", "dave"); err != nil {
		t.Fatal(err)
	}
	h.Result("inv_apr")
	if _, err := do("approvals", "approve", "inv_apr", "--by", "alice"); exitCode(err) != 2 || !strings.Contains(err.Error(), "has ended") {
		t.Fatalf("approve after the run ended: %v, want a refusal saying it ended", err)
	}
	st := h.State("inv_apr")
	if len(st.Approvals) == 0 || st.Approvals[0].Outcome != "edited" || st.Approvals[0].By != "bob" {
		t.Fatalf("approvals = %+v, want step 1 edited by bob", st.Approvals)
	}
}

// A run holding a message is paused (the customer called). The approval's clock stands
// still while paused (workflows TestAnApprovalTimeoutDoesNotRunOutWhilePaused), and the
// held message stays in `starter approvals`: support still sees it waiting.
func TestAPausedRunHoldingAMessageIsListedAsAwaitingApproval(t *testing.T) {
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Hour},
		Configure: func(a *activities.Activities) { workertest.HoldForApproval(t, a, "pro") }})
	h.Event(workertest.Failed("evt_apr_p", "inv_apr_p", "cus_apr_p", time.Now().UTC()))
	h.Eventually("the first message held", func() bool { return h.State("inv_apr_p").Status == recoup.StatusAwaitingApproval })
	cfg, _ := config.FromEnv(func(string) string { return "" })
	d := &deps{cfg: cfg, tc: h.Client}
	do := func(args ...string) (string, error) { return runWithDeps(d, args...) }
	if out, err := do("pause", "inv_apr_p", "--by", "alice", "--reason", "customer called"); err != nil || !strings.Contains(out, "status paused") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	h.Eventually("visibility says paused", func() bool {
		resp, err := h.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "InvoiceId = 'inv_apr_p' AND DunningStatus = 'paused'"})
		return err == nil && len(resp.Executions) == 1
	})
	if st := h.State("inv_apr_p"); st.Approval == nil {
		t.Fatalf("the paused run no longer holds its message: %+v", st)
	}
	out, err := do("approvals")
	if err != nil || !strings.Contains(out, "inv_apr_p") {
		t.Fatalf("approvals while the holding run is paused: %v\n%s\nwant inv_apr_p listed (its message still waits, and its timeout runs)", err, out)
	}
}
