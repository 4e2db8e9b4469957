package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/worker/workertest"
	"github.com/recoup-dunning/recoup/workflows"
)

// A failure spike for one BIN range, through the real ingest path, detector workflow,
// PostgreSQL and worker: the detector opens an incident for the BIN; a new failure in that
// cohort holds its run's first message (status and search attribute "held", nothing sent);
// other failures are not held; an operator's release sends the held message exactly once.
func TestSpikeHoldsRunsUntilReleased(t *testing.T) {
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour}})
	ctx := context.Background()
	n := h.FailureSpike("spk", "411111")
	incs := mustIncidents(t, h)
	inc := incs[0]
	send := func(invoice, bin string) {
		n++
		h.Event(workertest.SpikeEvent("evt_"+invoice, invoice, "cus_"+invoice, bin, time.Now().UTC()))
	}
	if inc.Cohort != "bin=411111" || inc.Status != spike.Open || len(incs) != 1 {
		t.Fatalf("incident %+v, want one, open, for bin=411111", inc)
	}

	// A new failure in the cohort holds; one outside it does not.
	send("inv_spk_held", "411111")
	send("inv_spk_other", "424242")
	h.Eventually("the run to hold", func() bool { return h.State("inv_spk_held").Status == recoup.StatusHeld })
	h.Eventually("the other run's first message", func() bool { return h.Messages("inv_spk_other") == 1 })
	st := h.State("inv_spk_held")
	if st.Hold == nil || st.Hold.IncidentID != inc.ID || len(st.Messages) != 0 {
		t.Fatalf("held run: hold %+v, %d messages", st.Hold, len(st.Messages))
	}
	heldKey := activities.IdempotencyKey(recoup.WorkflowID("inv_spk_held"), 1, recoup.ChannelEmail)
	h.Eventually("the held status in visibility", func() bool {
		res, err := h.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("DunningStatus = 'held' AND WorkflowId = '%s'", recoup.WorkflowID("inv_spk_held"))})
		return err == nil && len(res.Executions) == 1
	})
	if got := h.Mail.Accepted(heldKey); got != 0 {
		t.Fatalf("the held run's message was accepted %d times before the release", got)
	}
	if _, held, _ := h.Store.Incidents(ctx, false, 10); held[inc.ID] < 1 {
		t.Fatalf("the incident lists %d held runs", held[inc.ID])
	}

	// The detector runs on its own task queue, not behind the runs on the dunning queue.
	if d, err := h.Client.DescribeWorkflowExecution(ctx, recoup.DetectorWorkflowID, ""); err != nil ||
		d.GetExecutionConfig().GetTaskQueue().GetName() != recoup.DetectorTaskQueue {
		t.Fatalf("the detector's task queue: %q (%v), want %q", d.GetExecutionConfig().GetTaskQueue().GetName(), err, recoup.DetectorTaskQueue)
	}

	// An operator's action on an unknown incident is refused; the release sends once.
	bad, err := h.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: recoup.DetectorWorkflowID,
		UpdateName: recoup.UpdateIncident, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{recoup.IncidentAction{IncidentID: "inc-nope", Action: "release"}}})
	if err == nil {
		err = bad.Get(ctx, nil)
	}
	if err == nil || !strings.Contains(err.Error(), `no incident "inc-nope"`) {
		t.Fatalf("releasing an unknown incident: %v, want a refusal naming it", err)
	}
	upd, err := h.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: recoup.DetectorWorkflowID,
		UpdateName: recoup.UpdateIncident, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{recoup.IncidentAction{IncidentID: inc.ID, Action: "release", By: "oncall", Note: "issuer confirmed up"}}})
	if err != nil {
		t.Fatal(err)
	}
	var released spike.Incident
	if err := upd.Get(ctx, &released); err != nil || released.Status != spike.Released {
		t.Fatalf("release: %+v, %v", released, err)
	}
	h.Eventually("the held message after the release", func() bool { return h.Mail.Accepted(heldKey) == 1 })
	h.Eventually("the run active again", func() bool { return h.State("inv_spk_held").Status == recoup.StatusActive })
	if got := h.Mail.Accepted(heldKey); got != 1 {
		t.Fatalf("the held message was accepted %d times, want exactly once", got)
	}
	if incs := mustIncidents(t, h); len(incs) != 1 || incs[0].Status != spike.Released {
		t.Fatalf("incidents after the release: %+v", incs)
	}
	// The detector's view agrees with PostgreSQL.
	v, err := h.Client.QueryWorkflow(ctx, recoup.DetectorWorkflowID, "", recoup.QueryIncidents)
	if err != nil {
		t.Fatal(err)
	}
	var ds workflows.DetectorStatus
	if err := v.Get(&ds); err != nil || len(ds.Incidents) != 1 || ds.Incidents[0].Status != spike.Released || ds.Records != n {
		t.Fatalf("detector: %d records (sent %d), incidents %+v, %v", ds.Records, n, ds.Incidents, err)
	}
	// Settle the held run so its recorded history ends.
	h.Event(map[string]any{"type": "payment.retry_succeeded", "event_id": "evt_spk_ok", "invoice_id": "inv_spk_held",
		"attempt_id": "att_spk", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano)})
	if res := h.Result("inv_spk_held"); res.Status != recoup.StatusRecovered {
		t.Fatalf("held run ended %+v", res)
	}
	h.Record("inv_spk_held", "held_released")
	h.RecordWorkflow(recoup.DetectorWorkflowID, "detector/released")
}

func mustIncidents(t *testing.T, h *workertest.Harness) []spike.Incident {
	t.Helper()
	incs, _, err := h.Store.Incidents(context.Background(), true, 10)
	if err != nil {
		t.Fatal(err)
	}
	return incs
}
